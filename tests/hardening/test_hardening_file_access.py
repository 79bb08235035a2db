"""The file-access rule: library code opens, reads, writes, copies and lists files only
through ``reskill_gym.safe_files`` (links and FIFOs refused, reads and listings bounded) and
``reskill_gym.atomic`` (temp file and rename). Any other ``open``/``read_text``/
``write_bytes``/``shutil``/``os.open`` -- or folder listing: ``iterdir``/``glob``/``rglob``/
``os.walk``/``os.listdir``/``scandir`` -- in ``reskill_gym`` or the adapters fails this test
unless the line is in the reviewed allow-list below, each entry with the reason it is safe.
A new call site is either moved to the safe layer (``safe_files.list_folder`` /
``walk_tree`` for listings) or added here with its reason, in review.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("reskill_gym", "adapters/local/reskill_local", "adapters/verl/reskill_verl")
SAFE_LAYER = {"reskill_gym/safe_files.py", "reskill_gym/atomic.py"}

DIRECT = re.compile(
    r"(?<![\w.])open\("  # builtin open
    r"|\bos\.open\("
    r"|\.open\((?:[\"']|encoding|mode|newline)"  # Path.open(...)
    r"|\.(?:read_text|read_bytes|write_text|write_bytes)\("
    r"|\bshutil\.(?!which\b)\w+"
    r"|\b(?:copytree|copyfile|copy2)\b"
    # folder listings: each would follow a linked folder and type entries by their target
    r"|(?<![\w.])(?:scandir|listdir)\("
    r"|\.(?:iterdir|walk|fwalk|listdir|scandir|glob|rglob|iglob)\("
)
SAFE_CALL = re.compile(r"\bsafe_files\.\w+\(")

#: (file, text on the line) -> why it is safe without the layer.
ALLOWED: dict[tuple[str, str], str] = {
    # --- own safe readers, same technique as safe_files ---------------------------------
    ("reskill_gym/skills/skillmd.py", "fd = os.open(p, flags)"): (
        "the skill-file reader: O_NOFOLLOW|O_NONBLOCK and an fstat regular-file check, "
        "with SkillError messages naming the skill"
    ),
    ("reskill_gym/skills/journal.py", "fd = os.open(hist, os.O_WRONLY"): (
        "truncating a torn history line: O_NOFOLLOW, on a file just read through safe_files"
    ),
    # --- deletions of folders the code itself made (rmtree never follows links) ---------
    ("reskill_gym/skills/library.py", "shutil.rmtree(path_, ignore_errors=True)"): (
        "removes the .reskill/ folder this call created when init fails; not when it is a link"
    ),
    ("reskill_gym/runfolder.py", "shutil.rmtree(final)"): "a stale checkpoint folder replaced",
    ("reskill_gym/runfolder.py", "shutil.rmtree(tmp, ignore_errors=True)"): (
        "the checkpoint's own mkdtemp folder after a failed write"
    ),
    ("reskill_gym/runfolder.py", "shutil.rmtree(old, ignore_errors=True)"): (
        "checkpoints beyond run.keep_checkpoints (named step_*, inside checkpoints/)"
    ),
    ("reskill_gym/runfolder.py", "shutil.rmtree(aside, ignore_errors=True)"): (
        "a failed start's folder (only its config and library, checked while locked), "
        "renamed aside by this code"
    ),
    ("reskill_gym/runfolder.py", "fd = os.open(marker, os.O_RDWR"): (
        "the .starting lock: O_NOFOLLOW|O_NONBLOCK, opened only to flock, never read"
    ),
    ("reskill_gym/runfolder.py", "shutil.rmtree(stale, ignore_errors=True)"): (
        "leftover .step_* temp folders of killed checkpoint writes"
    ),
    ("reskill_gym/llm/local.py", "shutil.rmtree(tmp, ignore_errors=True)"): (
        "the GGUF conversion's own temp folder"
    ),
    ("reskill_gym/envs/search/retrievers.py", "shutil.rmtree(folder, ignore_errors=True)"): (
        "the retriever's own index cache folder (rebuilt)"
    ),
    ("reskill_gym/envs/search/retrievers.py", "shutil.rmtree(folder)"): (
        "the retriever's own index cache folder (replaced by the fresh build)"
    ),
    ("reskill_gym/envs/search/retrievers.py", "shutil.rmtree(tmp, ignore_errors=True)"): (
        "the retriever's own temp build folder"
    ),
    ("reskill_gym/policy_folder.py", "shutil.rmtree(tmp, ignore_errors=True)"): (
        "the policy folder's own mkdtemp folder after a failed write"
    ),
    ("reskill_gym/policy_folder.py", "shutil.rmtree(old, ignore_errors=True)"): (
        "the replaced policy folder, renamed aside by this code"
    ),
    ("reskill_gym/run_export.py", "shutil.rmtree(tmp, ignore_errors=True)"): (
        "the export's own mkdtemp folder after a failed export"
    ),
    ("reskill_gym/envs/twcooking/games.py", "shutil.rmtree(tmp, ignore_errors=True)"): (
        "the TextWorld generator's own temp folder"
    ),
    (
        "adapters/verl/reskill_verl/checkpoint_policy.py",
        "shutil.rmtree(work, ignore_errors=True)",
    ): ("the policy export's own mkdtemp work folder"),
    # --- writes into a temp path the code made ------------------------------------------
    ("reskill_gym/llm/local.py", '(tmp / "reskill-gguf.json").write_text('): (
        "a marker inside the conversion's own temp folder, renamed into place as a whole"
    ),
    ("reskill_gym/llm/model_packages.py", 'with atomic_path(target) as tmp, tmp.open("wb")'): (
        "writes the temp path reskill_gym.atomic handed out"
    ),
    ("reskill_gym/envs/twcooking/games.py", 'with open(src, "rb") as fh:'): (
        "fsync of a game the TextWorld generator just wrote into its own temp folder"
    ),
    # --- package data (inside the installed package or a model wheel) -------------------
    ("reskill_gym/llm/model_packages.py", 'with p.open("rb") as src:'): (
        "split model files shipped inside an installed llm-* wheel"
    ),
    ("reskill_gym/creator/prompts.py", 'ref.read_text(encoding="utf-8")'): (
        "the prompts shipped in reskill_gym/creator/prompts (importlib.resources)"
    ),
    ("reskill_gym/view/app.py", 'joinpath(rel).read_text(encoding="utf-8")'): (
        "the viewer's own static files (importlib.resources)"
    ),
    # --- /proc (the kernel's files, not a user folder) ----------------------------------
    ("reskill_gym/envs/scienceworld/engine.py", '(entry / "cmdline").read_bytes()'): "/proc",
    ("reskill_gym/envs/scienceworld/engine.py", '(entry / "stat").read_text()'): "/proc",
    ("reskill_gym/envs/scienceworld/engine.py", '/status").read_text()'): "/proc",
    ("reskill_gym/testing/workload.py", '/status").read_text()'): "/proc",
    ("reskill_gym/testing/workload.py", '(t / "children").read_text()'): "/proc",
    ("reskill_gym/testing/workload.py", 'Path("/proc/cpuinfo").read_text()'): "/proc",
    # --- ALFWorld engine data: the alfworld package's data and its download layout ------
    ("reskill_gym/envs/alfworld/render.py", "(Path(BUILTIN_DATA_PATH) / name).read_text()"): (
        "alfworld package data"
    ),
    ("reskill_gym/envs/alfworld/generator.py", "json.loads(obj_file.read_text())"): (
        "alfworld package data (object classes)"
    ),
    ("reskill_gym/envs/alfworld/generator.py", "json.loads(rec_file.read_text())"): (
        "alfworld package data (receptacles)"
    ),
    ("reskill_gym/envs/alfworld/generator.py", '-objects.json").read_text()'): (
        "alfworld package data (layouts)"
    ),
    ("reskill_gym/envs/alfworld/spec.py", "data = json.loads(path.read_text())"): (
        "a task spec the generator wrote into the env's own cache"
    ),
    ("reskill_gym/envs/alfworld/worker.py", "data = json.loads(path.read_text())"): (
        "the task spec the parent process wrote for this engine worker"
    ),
    ("reskill_gym/envs/alfworld/official.py", "known = json.loads(cache_file.read_text())"): (
        "the env's own cache of solvable official games"
    ),
    ("reskill_gym/envs/alfworld/official.py", "json.loads(gamefile.read_text())"): (
        "official ALFWorld game files (the data the alfworld package downloads)"
    ),
    # --- listings that stay (safe_files.list_folder is the rule) -------------------------
    ("reskill_gym/run_export.py", "any(dest.iterdir())"): (
        "is the export destination the user typed empty: one entry read, nothing opened"
    ),
    ("reskill_gym/skills/source.py", "any(dest.iterdir())"): (
        "is the checkout destination the user typed empty: one entry read, nothing opened"
    ),
    ("reskill_gym/runfolder.py", "any(run_dir.iterdir())"): (
        "is the new run folder empty: one entry read, nothing opened"
    ),
    ("reskill_gym/envs/scienceworld/engine.py", 'Path("/proc").iterdir()'): "/proc",
    ("reskill_gym/testing/workload.py", '/task").iterdir()'): "/proc",
    ("reskill_gym/envs/alfworld/official.py", 'base.glob("*/*/game.tw-pddl")'): (
        "official ALFWorld game files (the data the alfworld package downloads)"
    ),
    # --- a user's own dotfile, read to detect a login ------------------------------------
    ("adapters/verl/reskill_verl/preflight.py", 'netrc.read_text(errors="ignore")'): (
        "~/.netrc, read only to say whether a W&B login exists"
    ),
}


def _library_files() -> list[Path]:
    return sorted(p for root in ROOTS for p in (REPO / root).rglob("*.py"))


def _direct_uses() -> list[tuple[str, int, str]]:
    hits = []
    for path in _library_files():
        rel = path.relative_to(REPO).as_posix()
        if rel in SAFE_LAYER:
            continue
        in_doc = False
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(("#", ">>>", "...")):
                continue
            if stripped.count('"""') == 1:  # a docstring opens or closes here
                in_doc = not in_doc
                continue
            if in_doc:
                continue
            code = SAFE_CALL.sub("SAFE(", line.split("  # ")[0])
            if DIRECT.search(code) and not re.search(r"\bdef open\(", code):
                hits.append((rel, n, stripped))
    return hits


def test_library_code_opens_files_only_through_the_safe_layer() -> None:
    unreviewed = [
        f"{rel}:{n}: {text}"
        for rel, n, text in _direct_uses()
        if not any(rel == f and snippet in text for f, snippet in ALLOWED)
    ]
    assert not unreviewed, (
        "direct file access outside reskill_gym.safe_files / reskill_gym.atomic; use the "
        "safe layer or add a reviewed entry to ALLOWED:\n" + "\n".join(unreviewed)
    )


def test_every_allow_list_entry_is_still_used() -> None:
    uses = _direct_uses()
    stale = [
        f"{f}: {snippet}"
        for f, snippet in ALLOWED
        if not any(rel == f and snippet in text for rel, _, text in uses)
    ]
    assert not stale, "allow-list entries that match nothing (remove them):\n" + "\n".join(stale)


def test_the_rule_sees_what_it_forbids() -> None:
    """The pattern itself: each forbidden form is caught, the safe calls are not."""
    caught = [
        'with open(p, "rb") as fh:',
        "data = p.read_bytes()",
        'p.write_text("x")',
        'with p.open("a", encoding="utf-8") as fh:',
        "shutil.copytree(a, b)",
        "fd = os.open(p, os.O_RDONLY)",
        "for p in sorted(folder.iterdir()):",
        'for p in root.glob("step_*"):',
        'files = list(folder.rglob("*.json"))',
        "for root, dirs, files in os.walk(src, followlinks=False):",
        "entries = list(os.scandir(here))",
        "names = os.listdir(folder)",
        "for dirpath, _, names in folder.walk():",
    ]
    fine = [
        "data = safe_files.read_bytes(p)",
        "with safe_files.open_regular(p) as fh:",
        "lib = SkillLibrary.open(root)",
        "shutil.which('java')",
        'for e in safe_files.list_folder(root, match="step_*"):',
        "entries = safe_files.walk_tree(src)",
        "entries = list_folder(path)",
    ]
    assert all(DIRECT.search(SAFE_CALL.sub("SAFE(", c)) for c in caught)
    assert not any(DIRECT.search(SAFE_CALL.sub("SAFE(", c)) for c in fine)
