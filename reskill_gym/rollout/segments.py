"""The pieces a turn prompt is made of: labelled segments, earlier turns, the prompt itself.

Exports ``TurnPrompt``, ``PromptSegment``, ``PastTurn`` and ``SegmentKind``.

Both prompt builders produce a :class:`TurnPrompt`: the project's
(:mod:`reskill_gym.rollout.prompt`) and the published one
(:mod:`reskill_gym.rollout.published`, which the project's builder dispatches to). The types
live here, below both, so neither builder imports the other's module to name them.

>>> p = TurnPrompt("Be brief.", [PromptSegment("task", "Task: x"), PromptSegment("observation", "A room.")])
>>> print(p.user_text())
Task: x
<BLANKLINE>
A room.
>>> p.spans()
[('task', 0, 7), ('observation', 9, 16)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["TurnPrompt", "PromptSegment", "PastTurn", "SegmentKind"]

SegmentKind = Literal[
    "system", "task", "history", "observation", "skills", "actions", "instruction"
]


@dataclass(frozen=True)
class PromptSegment:
    """One labelled piece of a prompt: trainers mask or log by ``kind``."""

    kind: SegmentKind
    text: str


@dataclass(frozen=True)
class PastTurn:
    """An earlier turn as the prompt builder needs it.

    ``observation``/``action`` feed the per_turn history window (``action`` is what ran, or
    a marker for an invalid reply); ``user_text``/``reply`` are the concat layout's messages
    of that turn, kept verbatim.
    """

    observation: str
    action: str
    user_text: str
    reply: str


@dataclass
class TurnPrompt:
    """The prompt of one turn: the current user message as segments, plus earlier messages
    (concat layout) and the system message."""

    system: str
    user_segments: list[PromptSegment] = field(default_factory=list)
    previous: list[dict[str, str]] = field(default_factory=list)
    joiner: str = "\n\n"

    @property
    def segments(self) -> list[PromptSegment]:
        return [PromptSegment("system", self.system), *self.user_segments]

    def user_text(self) -> str:
        return self.joiner.join(s.text for s in self.user_segments if s.text)

    def messages(self) -> list[dict[str, str]]:
        """OpenAI/HF-style chat messages (string contents); no system message when
        ``system`` is empty (the published format)."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self.previous, {"role": "user", "content": self.user_text()}]

    def spans(self) -> list[tuple[SegmentKind, int, int]]:
        """Character spans of each user segment inside ``user_text()``."""
        out: list[tuple[SegmentKind, int, int]] = []
        pos = 0
        for s in self.user_segments:
            if not s.text:
                continue
            if out:
                pos += len(self.joiner)
            out.append((s.kind, pos, pos + len(s.text)))
            pos += len(s.text)
        return out
