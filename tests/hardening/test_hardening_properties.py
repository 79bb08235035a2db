"""Property-based: arbitrary SKILL.md text, trigger patterns, version expressions and store
entries never raise anything but our typed errors, never take over a second, and never
write outside the library."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reskill_gym.skills import (
    LibraryError,
    Operation,
    Skill,
    SkillError,
    SkillLibrary,
    Trigger,
    UnsafePatternError,
)
from reskill_gym.skills.model import parse_skill_id
from reskill_gym.skills.skillmd import parse_skill_md, read_skill
from reskill_gym.skills.store import content_version, put_blob
from reskill_gym.skills.triggers import PatternSet, compile_pattern

FAST = settings(max_examples=60, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
STORE = settings(max_examples=25, deadline=1000, suppress_health_check=[HealthCheck.too_slow])

yaml_atoms = st.sampled_from(
    ["name: x", "name: plan", "description: d", "metadata:", "  reskill.trigger.type: general",
     "  reskill.trigger.type: action_pattern", "  reskill.trigger.pattern: '^open '",
     "  reskill.trigger.pattern: '(a+)+'", "  reskill.version: '2'", "  reskill.version: x",
     "&a [x, x, x]", "b: [*a, *a, *a]", "- *a", "{", "}", "[", "'", '"', "!!python/object:os.system",
     "? complex", "<<: *a", "---", "...", "%YAML 1.1", "\t", "name: ../evil", "description:"]
)  # fmt: skip
front_matter = st.lists(yaml_atoms | st.text(max_size=30), max_size=12).map("\n".join)
body = st.lists(
    st.sampled_from(["## Action", "## When to use", "## Examples", "text", "### x", "---"])
    | st.text(max_size=40),
    max_size=8,
).map("\n".join)
skill_md = st.one_of(
    st.text(max_size=400),
    st.builds(lambda f, b: f"---\n{f}\n---\n{b}\n", front_matter, body),
)


@FAST
@given(text=skill_md)
def test_skill_md_text_parses_or_raises_skill_error(text: str) -> None:
    try:
        skill = parse_skill_md(text, path="fuzz/SKILL.md")
    except SkillError as exc:
        assert "fuzz/SKILL.md" in str(exc) or exc.path is None
    else:
        assert isinstance(skill, Skill)


@FAST
@given(data=st.binary(max_size=600) | skill_md.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_skill_md_bytes_on_disk_read_or_raise_skill_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "plan"
        folder.mkdir()
        (folder / "SKILL.md").write_bytes(data)
        try:
            read_skill(folder)
        except SkillError:
            pass


regex_alphabet = st.text(alphabet="ab.*+?()[]{}|^$\\dws0123,=!<:-", max_size=40)


@FAST
@given(pattern=regex_alphabet | st.text(max_size=60), text=st.text(max_size=200))
def test_trigger_patterns_compile_to_re2_or_are_rejected(pattern: str, text: str) -> None:
    try:
        matcher = compile_pattern(pattern)
    except UnsafePatternError:
        return
    assert matcher.engine == "re2"
    assert isinstance(matcher.search(text * 50), bool)
    assert PatternSet([pattern]).match(text) in ((), (0,))
    Trigger(type="action_pattern", pattern=pattern)


@FAST
@given(skill_id=st.text(max_size=30))
def test_skill_ids_parse_or_raise(skill_id: str) -> None:
    try:
        name, version = parse_skill_id(skill_id)
    except SkillError:
        return
    assert "/" not in name and (version is None or version >= 0)


def _small_library(root: Path) -> SkillLibrary:
    lib = SkillLibrary.open(root, create=True)
    mk = lambda n: Skill(name=n, description="d", content=f"do {n}", trigger=Trigger())  # noqa: E731
    lib.commit([mk("a"), mk("b")], reason="v1")
    lib.commit([Operation.delete("b")], reason="v2")
    return lib


_lib_dir = tempfile.TemporaryDirectory()
_LIB = _small_library(Path(_lib_dir.name) / "lib")


@FAST
@given(ref=st.one_of(
    st.text(max_size=20),
    st.from_regex(r"HEAD(~-?[0-9a-z]{0,3})?", fullmatch=True),
    st.from_regex(r"[0-9a-fA-F]{0,14}", fullmatch=True),
    st.sampled_from(["../x", "HEAD~", "HEAD~~", "head", " HEAD ", "\x00", "../../versions/x"]),
))  # fmt: skip
def test_version_expressions_resolve_or_raise_library_error(ref: str) -> None:
    try:
        vid = _LIB.resolve(ref)
    except LibraryError:
        return
    assert vid in _LIB.versions()


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else b"<dir>"
    return out


names = st.one_of(
    st.sampled_from(["a", "b", "new-skill", "../victim", "a/b", "", ".", "..", "A", "x" * 70]),
    st.text(max_size=12),
)
paths = st.one_of(
    st.sampled_from(
        ["SKILL.md", "skill.md", "ref/notes.md", "../../escaped.txt", "/abs", "a/../b",
         ".hidden", "x\x00y", "a\\b", "", "ref//x"]
    ),
    st.text(max_size=12),
)  # fmt: skip


@STORE
@given(
    tree=st.dictionaries(names, st.dictionaries(paths, st.sampled_from(["good", "bad", "dots"]),
                                                max_size=3), max_size=3),
    honest_id=st.booleans(),
    raw=st.none() | st.recursive(st.none() | st.integers() | st.text(max_size=8),
                                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                                 max_leaves=6),
)  # fmt: skip
def test_store_entries_never_write_outside_the_library(tree, honest_id: bool, raw) -> None:
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        lib = _small_library(base / "lib")
        (base / "victim").mkdir()
        (base / "victim" / "keep.txt").write_text("user data")
        good = put_blob(lib.store, b"---\nname: a\ndescription: d\n---\nDo a.\n")
        shas = {"good": good, "bad": "f" * 64, "dots": "../../../victim/keep.txt"}
        forged = {n: {p: shas[s] for p, s in files.items()} for n, files in tree.items()}
        vid = (
            content_version(forged) if honest_id else hashlib.sha256(os.urandom(8)).hexdigest()[:12]
        )
        doc = {"version": vid, "skills": forged} if raw is None else raw
        (lib.store / "versions" / f"{vid}.json").write_text(json.dumps(doc))
        outside = {"victim": _tree(base / "victim")}
        for op in (
            lambda: lib.view(vid),
            lambda: lib.checkout(vid),
            lambda: lib.status(),
            lambda: lib.export(base / "export", vid),
            lambda: lib.diff("HEAD~1", vid),
            lambda: lib.prune(keep=0),
        ):
            try:
                op()
            except (LibraryError, SkillError):
                pass
        assert {"victim": _tree(base / "victim")} == outside
        assert sorted(p.name for p in base.iterdir()) in (
            ["lib", "victim"],
            ["export", "lib", "victim"],
        )
        for p in (base / "export").rglob("*") if (base / "export").exists() else ():
            assert base / "export" in p.parents
