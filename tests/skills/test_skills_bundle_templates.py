"""Bundle templates (compact / published), the shared 500-char rule and the library cap."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
from pydantic import ValidationError

import reskill_gym  # noqa: F401  (registers the ids)
from reskill_gym.creator.config import CreatorConfig
from reskill_gym.creator.verify import Verifier
from reskill_gym.episode import Episode, Turn
from reskill_gym.evaluation.config import EvalConfig
from reskill_gym.runfolder import EnvConfig
from reskill_gym.skills import LibraryView, Operation, Skill, SkillError, Trigger, write_skill
from reskill_gym.skills.bundle import (
    COMPACT_TEMPLATE,
    DEFAULT_TEMPLATE,
    PUBLISHED_SKILL_INSTRUCTION,
    PUBLISHED_TEMPLATE,
    TEMPLATES,
    BundleTemplate,
    TurnContext,
    resolve_template,
    select_bundle,
)
from reskill_gym.skills.model import MAX_SKILL_CONTENT_CHARS
from reskill_gym.skills.skillmd import read_skill, render_skill_md
from reskill_gym.wrapper import SkillWrapper, strip_skill_block

CTX = TurnContext(1, "look", "You see a drawer.", "find a pen")


def _skills() -> list[Skill]:
    return [
        Skill(
            name="open-first",
            description="Open before taking.",
            when_to_use="A receptacle is closed.",
            content="Open it, then take the object.",
            examples="- open drawer 1\n- DON'T: take pen 1 from drawer 1",
            trigger=Trigger(type="general"),
        ),
        Skill(
            name="plan",
            description="Plan.",
            content="Name the target first.",
            trigger=Trigger(type="general"),
        ),
    ]


def test_template_registry_and_default() -> None:
    assert set(TEMPLATES) == {"compact", "published"}
    assert DEFAULT_TEMPLATE is COMPACT_TEMPLATE is resolve_template(None)
    assert resolve_template("compact") is COMPACT_TEMPLATE
    assert resolve_template("published") is PUBLISHED_TEMPLATE


def test_compact_rendering() -> None:
    b = select_bundle(_skills(), CTX, template=COMPACT_TEMPLATE)
    assert b.text == (
        "## Skills\n### open-first\nOpen it, then take the object.\n\n"
        "### plan\nName the target first.\n"
    )
    assert select_bundle([], CTX, template=COMPACT_TEMPLATE).text == ""  # no placeholder


def test_published_rendering_matches_the_published_layout() -> None:
    b = select_bundle(_skills(), CTX, template=PUBLISHED_TEMPLATE)
    assert b.text == (
        "## Available Skills\n\n"
        "### skill: open-first\n"
        '  when_to_use: "A receptacle is closed."\n'
        '  action: "Open it, then take the object."\n'
        "  examples:\n"
        '    - "open drawer 1"\n'
        '    - "DON\'T: take pen 1 from drawer 1"\n\n'
        "### skill: plan\n"  # no when_to_use, no examples: those lines are left out
        '  action: "Name the target first."\n\n' + PUBLISHED_SKILL_INSTRUCTION + "\n"
    )
    assert b.chars == len(b.text) and b.names == ("open-first", "plan")
    assert PUBLISHED_SKILL_INSTRUCTION.startswith("Check the Available Skills section")


def test_published_placeholder_and_budget() -> None:
    empty = select_bundle([], CTX, template=PUBLISHED_TEMPLATE)
    assert empty.skill_ids == () and empty.chars == len(empty.text)
    assert empty.text == (
        "## Available Skills\n\n(no skills available)\n\n" + PUBLISHED_SKILL_INSTRUCTION + "\n"
    )
    # a cap of 0 shows the (empty) section too; a budget too small for it shows nothing
    assert select_bundle(_skills(), CTX, template=PUBLISHED_TEMPLATE, max_active_skills=0).text
    assert select_bundle([], CTX, template=PUBLISHED_TEMPLATE, budget_chars=50).text == ""
    off = resolve_template({"base": "published", "placeholder": ""})
    assert select_bundle([], CTX, template=off).text == ""
    on = resolve_template({"placeholder": "(none)"})  # compact with a placeholder
    assert select_bundle([], CTX, template=on).text == "## Skills\n(none)\n"


def test_examples_on_and_off() -> None:
    no_ex = resolve_template({"base": "published", "show_examples": False})
    text = select_bundle(_skills(), CTX, template=no_ex).text
    assert "examples" not in text and "open drawer 1" not in text
    assert '  action: "Open it, then take the object."' in text
    custom = BundleTemplate(item="{name}: {content}\n{examples}", example="* {example}")
    assert custom.render_item(_skills()[0]) == (
        "open-first: Open it, then take the object.\n* open drawer 1\n"
        "* DON'T: take pen 1 from drawer 1"
    )
    assert custom.render_item(_skills()[1]) == "plan: Name the target first."


def test_bad_template_specs() -> None:
    with pytest.raises(SkillError, match=r"did you mean 'published'\?"):
        resolve_template("publshed")
    with pytest.raises(SkillError, match="the templates are compact, published"):
        resolve_template("xml")
    with pytest.raises(SkillError, match=r"did you mean 'show_examples'\?"):
        resolve_template({"base": "published", "show_example": False})
    with pytest.raises(SkillError, match=r"template\.base.*did you mean 'compact'"):
        resolve_template({"base": "compakt"})
    with pytest.raises(SkillError, match=r"template\.example.*unknown field \{ex\}"):
        resolve_template({"example": "- {ex}"})
    with pytest.raises(SkillError, match="must be a template name"):
        resolve_template(3)  # type: ignore[arg-type]
    # the older form still works: a string with a field is an item template
    assert resolve_template("- {content}").item == "- {content}"


# ----- the one 500-character rule -------------------------------------------------------
def _sized(name: str, total: int) -> Skill:
    """A ReSkill skill whose when-to-use + action + examples is exactly ``total`` chars."""
    when, example = "w" * 100, "e" * 50
    return Skill(
        name=name,
        description="d",
        when_to_use=when,
        content="a" * (total - len(when) - len(example)),
        examples=f"- {example}",
        trigger=Trigger(type="general"),
    )


def test_counted_chars_is_when_plus_action_plus_example_items() -> None:
    s = _sized("x", 500)
    assert s.counted_chars == 500 == MAX_SKILL_CONTENT_CHARS  # the "- " bullet is not counted
    s.check_content_limit()
    with pytest.raises(SkillError, match=r"is 501 chars \(100 \+ 351 \+ 50\), the limit is 500"):
        _sized("x", 501).check_content_limit()


def test_over_limit_skill_rejected_at_load_naming_the_file(tmp_path: Path) -> None:
    ok = write_skill(_sized("fits", 500), tmp_path / "lib")
    assert read_skill(ok).counted_chars == 500
    bad_dir = tmp_path / "lib" / "too-long"
    bad_dir.mkdir()
    text = render_skill_md(_sized("too-long", 501))  # written by hand, past the writer's check
    (bad_dir / "SKILL.md").write_text(text, encoding="utf-8")
    with pytest.raises(SkillError) as err:
        LibraryView.from_folder(tmp_path / "lib")
    msg = str(err.value)
    assert str(bad_dir / "SKILL.md") in msg and "when-to-use + action + examples" in msg
    with pytest.raises(SkillError, match="501 chars"):
        write_skill(_sized("too-long", 501), tmp_path / "other")


def test_verifier_uses_the_same_rule() -> None:
    ep = Episode(
        episode_id="e",
        env_id="x",
        task_id="t",
        task="t",
        turns=[Turn(observation="o", action="look"), Turn(observation="o", action="look")],
    )
    v = Verifier(LibraryView("v0", []), max_content_chars=500)
    fits = v.verify(Operation.add(_sized("fits", 500)), [ep])
    over = v.verify(Operation.add(_sized("over", 501)), [ep])
    check = {c.name: c for c in over.checks}["content_length"]
    assert fits.passed and not over.passed and not check.ok
    assert "when_to_use + action + examples: 501 chars (limit 500)" in check.detail


# ----- the library-size cap (one setting: CreatorConfig.max_library_skills) -----------------
def test_library_cap_from_creator_config() -> None:
    base = LibraryView("v0", _skills())
    ep = Episode(
        episode_id="e", env_id="x", task_id="t", task="t", turns=[Turn(observation="o", action="a")]
    )
    v = Verifier.from_config(base, CreatorConfig(max_library_skills=2), targets_label="eps")
    assert v.max_library_skills == 2 and v.max_content_chars == 500
    new = Skill(
        name="third", description="d", content="Something new.", trigger={"type": "general"}
    )
    rep = v.verify(Operation.add(new), [ep])
    cap = {c.name: c for c in rep.checks}["operation"]
    assert not rep.passed and "would hold 3 skills (limit 2)" in cap.detail
    # with a delete in the same proposal the add fits
    freed = v.verify(Operation.add(new), [ep], accepted=[Operation.delete("plan")])
    assert {c.name: c for c in freed.checks}["operation"].ok
    assert CreatorConfig().max_library_skills == 8  # published default


# ----- plumbing: wrapper, gym.make, configs --------------------------------------------------
def test_wrapper_shows_placeholder_only_with_a_library(tmp_path: Path) -> None:
    from reskill_gym.envs.search import SearchEnv

    env = SkillWrapper(
        SearchEnv(cache_dir=str(tmp_path)), LibraryView("v0", []), template="published"
    )
    obs, info = env.reset(seed=0)
    assert info["skill_ids"] == () and "(no skills available)" in info["bundle_text"]
    assert obs.endswith(info["bundle_text"]) and strip_skill_block(obs, info) == info["observation"]
    env.close()
    bare = SkillWrapper(SearchEnv(cache_dir=str(tmp_path)), None, template="published")
    obs, info = bare.reset(seed=0)
    assert info["bundle_text"] == "" and obs == info["observation"]
    bare.close()


def test_gym_make_with_template_names(tmp_path: Path) -> None:
    env = gym.make("ReSkill-Search-v0", cache_dir=str(tmp_path), template="published")
    _obs, info = env.reset(seed=0)
    assert info["bundle_text"].startswith("## Available Skills\n\n")
    assert env.get_wrapper_attr("template") is PUBLISHED_TEMPLATE
    env.close()
    env = gym.make("ReSkill-Search-v0", cache_dir=str(tmp_path), template="compact")
    assert env.get_wrapper_attr("template") is COMPACT_TEMPLATE
    env.close()
    with pytest.raises(SkillError, match=r"did you mean 'published'\?"):
        gym.make("ReSkill-Search-v0", cache_dir=str(tmp_path), template="publisheed")


def test_run_and_eval_configs_take_a_template() -> None:
    assert EnvConfig().template == "compact"
    kw = EnvConfig(template="published").wrapper_kwargs()
    assert kw["template"] is PUBLISHED_TEMPLATE
    with pytest.raises(ValidationError, match=r"env\.template.*did you mean 'compact'"):
        EnvConfig(template="compat")
    assert EvalConfig(env="search", agent="python:m:f", template="published").template
    with pytest.raises(ValidationError, match=r"did you mean 'published'"):
        EvalConfig(env="search", agent="python:m:f", template="publised")
