"""The persistent set of assertions a diagnosis maintains across passes.

Exports ``Assertion``, ``AssertionChange`` and ``AssertionStore``.

An assertion is a testable claim about the agent's behaviour ("the agent opens a closed
receptacle before taking from it") with evidence: how many analysed episodes upheld it
(``passed``) and how many violated it (``failed``), and a few example episode ids. A batch
diagnosis (LLM or statistics) *creates* new assertions, *updates* the evidence of known
ones and *retires* claims that no longer matter. Failing assertions drive recommendations.
Evidence accumulates over passes, so one noisy batch does not flip a claim.

>>> store = AssertionStore()
>>> a = store.apply(AssertionChange(op="create", text="The agent opens receptacles before "
...                 "taking from them.", failed=4, passed=1, example_episode_ids=["e1", "e2"]),
...                 step=3)
>>> a.id, a.fail_rate, a.status
('A1', 0.8, 'active')
>>> [x.id for x in store.failing(min_rate=0.5)]
['A1']
>>> _ = store.apply(AssertionChange(op="retire", id="A1", reason="fixed"), step=4)
>>> store.failing(min_rate=0.5)
[]
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["Assertion", "AssertionChange", "AssertionStore"]

log = logging.getLogger(__name__)


class Assertion(BaseModel):
    """A claim with its evidence; ids are stable (``A1``, ``A2``...) for the life of a store."""

    id: str
    text: str
    key: str | None = Field(
        None, description="Stable signature (rules creator) so a statistic maps to one claim."
    )
    status: Literal["active", "retired"] = "active"
    passed: int = Field(0, ge=0, description="Episodes that upheld the claim.")
    failed: int = Field(0, ge=0, description="Episodes that violated it.")
    example_episode_ids: list[str] = Field(default_factory=list)
    task_types: list[str] = Field(default_factory=list)
    created_step: int | None = None
    updated_step: int | None = None
    retired_reason: str = ""

    @property
    def fail_rate(self) -> float:
        """failed / (failed + passed), 0.0 without evidence."""
        n = self.passed + self.failed
        return self.failed / n if n else 0.0


class AssertionChange(BaseModel):
    """One create / update / retire decided by a diagnosis.

    ``passed``/``failed`` are the *new* evidence of this batch (added to the stored counts).
    """

    op: Literal["create", "update", "retire"]
    id: str | None = Field(None, description="Assertion id (update/retire).")
    text: str | None = Field(
        None, max_length=400, description="Claim text (create; optional on update)."
    )
    passed: int = Field(0, ge=0)
    failed: int = Field(0, ge=0)
    example_episode_ids: list[str] = Field(default_factory=list)
    task_types: list[str] = Field(default_factory=list)
    reason: str = ""

    @model_validator(mode="after")
    def _check(self) -> AssertionChange:
        if self.op == "create" and not (self.text and self.text.strip()):
            raise ValueError("a 'create' change needs a non-empty 'text'")
        if self.op in ("update", "retire") and not self.id:
            raise ValueError(f"an {self.op!r} change needs the 'id' of an existing assertion")
        return self


class AssertionStore:
    """Thread-safe, copyable store of assertions (``state_dict`` for checkpoints)."""

    def __init__(self, max_examples: int = 5) -> None:
        self.max_examples = max_examples
        self._items: dict[str, Assertion] = {}
        self._next = 1
        self._lock = threading.Lock()

    # ---- reading -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, assertion_id: object) -> bool:
        return assertion_id in self._items

    def get(self, assertion_id: str) -> Assertion:
        return self._items[assertion_id]

    def all(self, *, include_retired: bool = False) -> list[Assertion]:
        """Assertions in id order (active only unless ``include_retired``)."""
        items = sorted(self._items.values(), key=lambda a: int(a.id[1:]))
        return [a for a in items if include_retired or a.status == "active"]

    def by_key(self, key: str) -> Assertion | None:
        """The assertion with this statistic signature (active or retired), if any."""
        return next((a for a in self._items.values() if a.key == key), None)

    def failing(self, min_rate: float, min_failed: int = 1) -> list[Assertion]:
        """Active assertions violated often enough, most evidence of failure first."""
        hits = [
            a
            for a in self.all()
            if a.failed >= min_failed and a.fail_rate >= min_rate and a.failed > 0
        ]
        return sorted(hits, key=lambda a: (-a.failed, -a.fail_rate, int(a.id[1:])))

    # ---- writing -------------------------------------------------------------------
    def apply(
        self, change: AssertionChange, *, step: int | None, key: str | None = None
    ) -> Assertion:
        """Apply one change; raises ``KeyError`` for an update/retire of an unknown id."""
        with self._lock:
            if change.op == "create":
                aid = f"A{self._next}"
                self._next += 1
                a = Assertion(
                    id=aid,
                    text=(change.text or "").strip(),
                    key=key,
                    passed=change.passed,
                    failed=change.failed,
                    example_episode_ids=self._examples([], change.example_episode_ids),
                    task_types=sorted(set(change.task_types)),
                    created_step=step,
                    updated_step=step,
                )
            else:
                assert change.id is not None
                if change.id not in self._items:
                    known = ", ".join(self._items) or "none"
                    raise KeyError(f"no assertion {change.id!r} (known: {known})")
                old = self._items[change.id]
                updates: dict[str, Any] = {
                    "passed": old.passed + change.passed,
                    "failed": old.failed + change.failed,
                    "example_episode_ids": self._examples(
                        old.example_episode_ids, change.example_episode_ids
                    ),
                    "task_types": sorted(set(old.task_types) | set(change.task_types)),
                    "updated_step": step,
                }
                if change.text and change.text.strip():
                    updates["text"] = change.text.strip()
                if change.op == "retire":
                    updates["status"] = "retired"
                    updates["retired_reason"] = change.reason
                elif old.status == "retired" and change.failed > 0:
                    updates["status"] = "active"  # the problem came back
                    updates["retired_reason"] = ""
                a = old.model_copy(update=updates)
            self._items[a.id] = a
        log.debug("assertion %s %s: %s", change.op, a.id, a.text)
        return a

    def _examples(self, old: list[str], new: list[str]) -> list[str]:
        merged = list(dict.fromkeys([*new, *old]))  # newest first, no repeats
        return merged[: self.max_examples]

    # ---- copies and checkpoints ----------------------------------------------------
    def copy(self) -> AssertionStore:
        """An independent copy (a pass works on a copy and the creator swaps it in at the end)."""
        with self._lock:
            other = AssertionStore(self.max_examples)
            other._items = copy.deepcopy(self._items)
            other._next = self._next
        return other

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "next_id": self._next,
                "max_examples": self.max_examples,
                "assertions": [a.model_dump(mode="json") for a in self._items.values()],
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            items = {a["id"]: Assertion.model_validate(a) for a in state["assertions"]}
            nxt = int(state["next_id"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"assertion store state: {e}") from e
        with self._lock:
            self._items = items
            self._next = max(nxt, 1 + max((int(i[1:]) for i in items), default=0))
            self.max_examples = int(state.get("max_examples", self.max_examples))
