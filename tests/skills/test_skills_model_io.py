"""Skill model and SKILL.md reading/writing, including every bad-input case."""

from __future__ import annotations

from pathlib import Path

import pytest
import skills_ref

from reskill_gym.skills import (
    MAX_SKILL_CONTENT_CHARS,
    Provenance,
    Skill,
    SkillError,
    Trigger,
    UnsafePatternError,
    read_skill,
    validate_skill_dir,
    write_skill,
)
from reskill_gym.skills.skillmd import parse_skill_md, render_skill_md, spec_errors


def make_skill(name: str, kind: str = "general", pattern: str | None = None, **kw) -> Skill:
    kw.setdefault("description", f"Skill {name}.")
    kw.setdefault("content", f"Do what {name} says.")
    return Skill(name=name, trigger=Trigger(type=kind, pattern=pattern), **kw)


def _write_md(root: Path, folder: str, text: str) -> Path:
    d = root / folder
    d.mkdir(parents=True)
    (d / "SKILL.md").write_text(text)
    return d


FULL = Skill(
    name="heat-with-microwave",
    description="Heat: an object with the microwave.",
    when_to_use="The task says hot.",
    content="Take it, `go to microwave 1`, then\n`heat OBJ with microwave 1`.",
    examples="- heat apple 1 with microwave 1",
    trigger=Trigger(type="observation_pattern", pattern=r"\b(heat|hot|warm)\b"),
    version=3,
    created_at_step=40,
    provenance=Provenance(
        proposed_by="creator", rationale="skipped: the microwave", parent_version="abc"
    ),
    license="Apache-2.0",
    compatibility="ALFWorld 0.4",
    allowed_tools="Read Bash",
    metadata={"author": "someone", "x.custom": "1"},
    extra_body="## Notes\nKeep this section.",
)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    folder = write_skill(FULL, tmp_path)
    assert folder == tmp_path / FULL.name
    back = read_skill(folder)
    assert back == FULL
    # deterministic bytes: rendering the re-read skill gives the same file
    assert render_skill_md(back) == (folder / "SKILL.md").read_text()


@pytest.mark.parametrize(
    "skill",
    [
        FULL,
        make_skill("a"),
        make_skill("b-2", "retrieval", description="x" * 1024),
        make_skill("c", "action_pattern", r"^go to (the )?\w+ \d+$"),
        make_skill("d", provenance=Provenance(rationale="line one\nline two: yes")),
    ],
)
def test_everything_we_write_passes_skills_ref(tmp_path: Path, skill: Skill) -> None:
    folder = write_skill(skill, tmp_path)
    assert skills_ref.validate(folder) == []
    props = skills_ref.read_properties(folder)
    assert props.name == skill.name
    assert props.metadata["reskill.trigger.type"] == skill.trigger.type
    assert validate_skill_dir(folder) == []


def test_unknown_frontmatter_and_metadata_survive(tmp_path: Path) -> None:
    text = (
        "---\nname: foreign\ndescription: From elsewhere.\nmodel: claude\n"
        "tags:\n- a\n- b\nmetadata:\n  owner: team-x\n---\n"
        "# Foreign skill\n\nSome guidance.\n\n## Usage\nRun it.\n"
    )
    d = _write_md(tmp_path / "in", "foreign", text)
    s = read_skill(d)
    assert s.extra_frontmatter == {"model": "claude", "tags": ["a", "b"]}
    assert s.metadata == {"owner": "team-x"}
    out = write_skill(s, tmp_path / "out")
    again = read_skill(out)
    assert again.extra_frontmatter == s.extra_frontmatter
    assert again.metadata == s.metadata
    assert again.content == s.content
    # unknown top-level keys are kept, so skills-ref reports them (as it did for the input)
    assert any("model" in e for e in spec_errors(out))


def test_foreign_skill_loads_with_retrieval_default(tmp_path: Path) -> None:
    body = "Use the tool.\n\n## Steps\n" + "Step. " * 200
    d = _write_md(tmp_path, "pdf-tools", f"---\nname: pdf-tools\ndescription: PDFs.\n---\n{body}")
    s = read_skill(d)
    assert s.trigger.type == "retrieval"
    assert len(s.content) > MAX_SKILL_CONTENT_CHARS  # foreign: no limit on read
    assert "### Steps" in s.content  # level-2 headings demoted so it fits our Action section
    assert skills_ref.validate(d) == []
    with pytest.raises(SkillError, match="content"):  # but we never write an over-limit skill
        write_skill(s, tmp_path / "out")
    out = write_skill(s, tmp_path / "out", max_content_chars=None)  # explicit opt-out
    with pytest.raises(SkillError, match="content"):  # now it carries reskill metadata
        read_skill(out)
    assert read_skill(out, max_content_chars=None).content == s.content


@pytest.mark.parametrize("bad", ["../x", "a/b", "Upper", "", "-x", "x-", "a--b", "a_b", "x" * 65])
def test_bad_names_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="name"):
        make_skill(bad)
    folder = "bad" if not bad or "/" in bad or bad.startswith(".") else bad
    d = _write_md(tmp_path, folder, f"---\nname: '{bad}'\ndescription: d\n---\nbody\n")
    with pytest.raises(SkillError) as exc:
        read_skill(d)
    assert exc.value.field == "name"
    assert str(d / "SKILL.md") in str(exc.value)


def test_name_must_match_folder(tmp_path: Path) -> None:
    d = _write_md(tmp_path, "other", "---\nname: mine\ndescription: d\n---\nbody\n")
    with pytest.raises(SkillError, match="folder name 'other'"):
        read_skill(d)


def test_invalid_yaml_names_file(tmp_path: Path) -> None:
    d = _write_md(tmp_path, "x", "---\nname: x\ndescription: [unclosed\n---\nbody\n")
    with pytest.raises(SkillError, match="invalid YAML") as exc:
        read_skill(d)
    assert exc.value.path == str(d / "SKILL.md")
    assert exc.value.field == "front matter"


def test_no_front_matter(tmp_path: Path) -> None:
    d = _write_md(tmp_path, "x", "# just markdown\n")
    with pytest.raises(SkillError, match="front matter"):
        read_skill(d)


def test_missing_skill_md(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkillError, match="no SKILL.md"):
        read_skill(tmp_path / "empty")


@pytest.mark.parametrize("missing", ["name", "description"])
def test_missing_required_field(tmp_path: Path, missing: str) -> None:
    fields = {"name": "name: x\n", "description": "description: d\n"}
    fields.pop(missing)
    d = _write_md(tmp_path, "x", "---\n" + "".join(fields.values()) + "---\nbody\n")
    with pytest.raises(SkillError) as exc:
        read_skill(d)
    assert exc.value.field == missing
    assert "missing" in str(exc.value)
    assert str(d / "SKILL.md") in str(exc.value)


def test_content_over_limit(tmp_path: Path) -> None:
    long = make_skill("long", content="x" * (MAX_SKILL_CONTENT_CHARS + 1))
    with pytest.raises(SkillError) as exc:
        write_skill(long, tmp_path)
    assert exc.value.field == "content"
    assert "long/SKILL.md" in str(exc.value)
    # a ReSkill skill edited by hand to be too long is rejected on read, naming file + field
    folder = write_skill(make_skill("long"), tmp_path)
    md = folder / "SKILL.md"
    md.write_text(md.read_text().replace("Do what long says.", "y" * 600))
    with pytest.raises(SkillError, match=r"field 'content'.*600 chars") as exc2:
        read_skill(folder)
    assert exc2.value.path == str(md)
    assert read_skill(folder, max_content_chars=None).content == "y" * 600


@pytest.mark.parametrize(
    "pattern", [r"(a+)+$", r"(a*)*", r"(a|a)*", r"(\w+\s?)*$", "x" * 201, "(", r"(\w)\1"]
)
def test_unsafe_regex_rejected_at_creation_and_load(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ValueError):
        Trigger(type="action_pattern", pattern=pattern)
    folder = write_skill(make_skill("ok", "action_pattern", r"^open "), tmp_path)
    md = folder / "SKILL.md"
    md.write_text(md.read_text().replace("'^open '", repr(pattern).replace("\\\\", "\\")))
    with pytest.raises(UnsafePatternError) as exc:
        read_skill(folder)
    assert exc.value.field == "metadata.reskill.trigger.pattern"
    assert exc.value.path == str(md)
    assert validate_skill_dir(folder)  # reported by the validator too


def test_trigger_rules() -> None:
    with pytest.raises(ValueError, match="needs a pattern"):
        Trigger(type="observation_pattern")
    with pytest.raises(ValueError, match="takes no pattern"):
        Trigger(type="general", pattern="x")
    with pytest.raises(ValueError, match="top_k"):
        Trigger(type="general", top_k=2)
    assert Trigger(top_k=5).effective_top_k == 5


def test_bad_integer_metadata(tmp_path: Path) -> None:
    folder = write_skill(make_skill("v"), tmp_path)
    md = folder / "SKILL.md"
    md.write_text(md.read_text().replace("reskill.version: '1'", "reskill.version: two"))
    with pytest.raises(SkillError, match="reskill.version.*integer"):
        read_skill(folder)


def test_writer_refuses_section_headings_and_front_matter_breakers(tmp_path: Path) -> None:
    with pytest.raises(SkillError, match="headings"):
        write_skill(make_skill("h", content="## Action\nsneaky"), tmp_path)
    with pytest.raises(SkillError, match="---"):
        write_skill(make_skill("h", description="a --- b"), tmp_path)


def test_parse_without_path_and_skill_id() -> None:
    s = parse_skill_md("---\nname: x\ndescription: d\n---\n")
    assert s.content == "d"  # empty body: the description is the guidance
    assert s.skill_id == "x@1"
