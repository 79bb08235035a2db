"""Inputs that used to be accepted silently are errors now (round 2 of the hardening probe)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reskill_gym.skills import SkillError
from reskill_gym.skills.model import parse_skill_id, validate_name
from reskill_gym.skills.store import is_version_id
from reskill_gym.yaml_loading import YAMLLoadError, check_yaml


@pytest.mark.parametrize("name", ["plan\n", "plan\n\n", "a-b\n"])
def test_name_with_a_trailing_newline_is_refused(name: str) -> None:
    """``$`` matches before a final newline; the anchors are ``\\Z``."""
    with pytest.raises((SkillError, ValueError)):
        validate_name(name)
    with pytest.raises((SkillError, ValueError)):
        parse_skill_id(name)


def test_version_id_with_a_trailing_newline_is_not_one() -> None:
    assert is_version_id("0123456789ab")
    assert not is_version_id("0123456789ab\n")


def test_duplicate_front_matter_keys_are_refused_everywhere(kit, tmp_path: Path) -> None:
    """``import`` used to keep the last of two ``name:`` keys while ``validate`` refused it."""
    with pytest.raises(YAMLLoadError, match="'a' appears twice.*line 3"):
        check_yaml("a: 1\nb: {a: 1}\na: 2\n")
    check_yaml("a: {x: 1}\nb: {x: 1}\nc: [x, x]\n")  # the same key in two mappings is fine
    src = tmp_path / "src"
    kit.write_raw_skill(src, "plan", "name: plan\ndescription: d\nname: other\n")
    kit.user_error(kit.cli("skills", "import", src, "-L", tmp_path / "lib"), "twice")
    res = kit.cli("skills", "validate", src)
    assert res.exit_code == 1 and "twice" in res.output
    assert not (tmp_path / "lib" / "plan").exists()
