"""SQuAD-style EM/F1 and Search-R1 action parsing."""

from __future__ import annotations

import pytest

from reskill_gym.envs.search.qa import (
    best_scores,
    exact_match,
    f1_score,
    normalize_answer,
    parse_search_tags,
)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("The Velm River", "velm river"),
        ("  a   Tale of Two Cities. ", "tale of two cities"),
        ("Orvan's", "orvans"),
        ("AN apple, THE end!", "apple end"),
        ("theatre", "theatre"),  # articles only as whole words
        ("1,204", "1204"),
        ("", ""),
    ],
)
def test_normalize(raw: str, norm: str) -> None:
    assert normalize_answer(raw) == norm


def test_exact_match_any_alias() -> None:
    assert exact_match("velm", ["Velm River", "Velm"]) == 1.0
    assert exact_match("Velm River.", ["Velm River"]) == 1.0
    assert exact_match("Velm Riverside", ["Velm River"]) == 0.0
    assert exact_match("anything", []) == 0.0


def test_f1_partial_and_best_alias() -> None:
    assert f1_score("Velm River delta", ["Velm River"]) == pytest.approx(0.8)
    assert f1_score("Velm", ["Orvan", "Velm River"]) == pytest.approx(2 / 3)
    assert f1_score("completely wrong", ["Velm River"]) == 0.0
    assert f1_score("", ["Velm"]) == 0.0
    assert f1_score("the", ["a"]) == 1.0  # both normalise to empty


def test_f1_yes_no_only_exact() -> None:
    assert f1_score("no", ["yes"]) == 0.0
    assert f1_score("yes it is", ["yes"]) == 0.0
    assert f1_score("Yes", ["yes"]) == 1.0


def test_best_scores() -> None:
    assert best_scores("the Velm River", ("Velm River", "Velm")) == (1.0, 1.0)
    em, f1 = best_scores("Velm River basin", ("Velm River",))
    assert em == 0.0 and 0.0 < f1 < 1.0


def test_parse_action() -> None:
    assert parse_search_tags("<search>a b</search>").content == "a b"
    assert parse_search_tags("<think>x</think>\n<answer>\n Orvan \n</answer>").kind == "answer"
    assert parse_search_tags("<answer>1</answer><search>2</search>").content == "1"
    multi = parse_search_tags("<search>first\nline</search>")
    assert multi.content == "first line"
    assert parse_search_tags("<search>x</answer>").kind == "invalid"
    assert parse_search_tags("").reason == "empty action"
    assert "empty <answer>" in parse_search_tags("<answer> </answer>").reason
