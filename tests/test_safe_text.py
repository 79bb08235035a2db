"""``reskill_gym.safe_text``: clipping keeps its length and says so; terminal text is inert."""

from __future__ import annotations

import pytest

from reskill_gym.safe_text import clip_text, terminal_text


@pytest.mark.parametrize("n, limit", [(10, 20), (100, 30), (10**6, 200), (50, 5)])
def test_clip_text_is_bounded_and_marked(n: int, limit: int) -> None:
    text = "a" * n
    out = clip_text(text, limit)
    if n <= limit:
        assert out == text
        return
    head = out.index("...")
    cut = int(out.rsplit("[clipped ", 1)[1].split()[0])
    assert out[:head] == "a" * head and head + cut == n
    assert len(out) == max(limit, len(out) - head)  # the marker alone when it does not fit


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("plain\ttext\nline", "plain\ttext\nline"),
        ("red \x1b[31mALERT\x1b[0m", "red ALERT"),
        ("keep\x1b[2K\rgone?", "keep gone?"),
        ("title\x1b]0;pwned\x07 here", "title here"),
        ("bell\x07 and nul\x00", "bell and nul "),
        ("c1\x9b31m", "c1 31m"),
        ("lone \ud800 surrogate", "lone surrogate"),
    ],
)
def test_terminal_text_removes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert terminal_text(raw) == shown


def test_one_line() -> None:
    assert terminal_text("a\n\tb\x1b[1m c", one_line=True) == "a b c"


def test_error_line_is_one_redacted_line() -> None:
    from pydantic import BaseModel, ValidationError

    from reskill_gym.safe_text import error_line, valid_unicode

    class Cfg(BaseModel):
        seeds: list[int]
        name: str

    with pytest.raises(ValidationError) as err:
        Cfg.model_validate({"seeds": ["x"], "name": 3})
    line = error_line(err.value)
    assert "\n" not in line and "seeds.0" in line and "name" in line and "http" not in line
    key = "sk-" + "a" * 30
    assert key not in error_line(RuntimeError(f"echo: {key}\n\x1b[2K"))
    assert error_line(OSError(2, "gone", "/x/y")) == "/x/y: gone"
    assert valid_unicode("a\ud800b\udfff") == "a\ufffdb\ufffd"
    valid_unicode("a\ud800").encode("utf-8")
