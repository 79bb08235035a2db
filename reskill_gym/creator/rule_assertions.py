"""Rule-graded assertions: typed checks evaluated on trajectories, never by an LLM.

Exports ``CHECK_TYPES``, ``CheckType``, ``RuleCheck``, ``RuleAssertion``, ``AssertionGrade``,
``AssertionOpResult`` and ``RuleAssertionSet``.

The published diagnosis (``assertion_engine.py``) keeps up to 15 assertions, each a typed
check with parameters that the batch diagnoser LLM adds, modifies or deletes; every
assertion is then graded by rules over the *whole* reservoir, in one pass over each
trajectory, so the pass rates the LLM and the recommender read are measured, not guessed.
The nine check types and their semantics follow the published ``CHECK_TYPES``:

=========================  ==============================  ======================================
type                       params                          passes when
=========================  ==============================  ======================================
``action_exists``          ``pattern``                     some action matches
``action_not_exists``      ``pattern``                     no action matches
``action_before``          ``first``, ``second``           first match of ``first`` comes before
                                                           the first match of ``second`` (both
                                                           must occur)
``no_consecutive_repeat``  ``prefix`` (optional)           no two adjacent identical actions
                                                           (only actions starting with
                                                           ``prefix`` are compared)
``final_action``           ``pattern``                     the last action matches
``min_steps``              ``n``                           the episode has >= n steps
``max_steps``              ``n``                           the episode has <= n steps
``action_count``           ``pattern``, ``min`` (0),       min <= matching actions <= max
                           ``max`` (999)
``observation_contains``   ``pattern``, ``after_action``   an observation matches (only after
                           (optional)                      an action matching ``after_action``)
=========================  ==============================  ======================================

Differences from the published engine, on purpose: patterns go through the project's
safe-regex rules (``reskill_gym.skills.triggers``: length limit, no nested quantifiers or
back-references, RE2 when possible, case-insensitive search), and a bad pattern or a
missing parameter is refused when the assertion is proposed (with the reason, for the
diagnosis log), instead of grading as "Error" on every trajectory forever. Observations are
the bare observation each action was taken on (``Turn.observation``) plus the episode's
final observation, so ``observation_contains`` also sees what the last action produced.
``CreatorConfig.assertion_text: published`` (the published presets) grades as the published
engine does instead: action checks read the model's whole reply, ``observation_contains``
the prompt each reply answered (recorded with ``rollout.record_prompts``).

>>> from reskill_gym.episode import Episode, Turn
>>> ep = Episode(episode_id="e1", env_id="x", task_id="t", task="t", turns=[
...     Turn(observation="You see a fridge.", action="open fridge 1"),
...     Turn(observation="The fridge is open.", action="take egg 1 from fridge 1")])
>>> s = RuleAssertionSet()
>>> r = s.apply({"op": "add", "check_type": "action_before",
...              "params": {"first": "^open ", "second": "^take "},
...              "description": "Opens a receptacle before taking from it."}, step=3)
>>> r.ok, r.assertion_id
(True, 'A1')
>>> g = s.grade([ep])[0]
>>> g.passed, g.n, g.pass_rate
(1, 1, 1.0)
>>> s.get("A1").check.evaluate(ep)
(True, "'^open ' at step 0 before '^take ' at step 1")
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from reskill_gym.creator.config import AssertionText
from reskill_gym.episode import Episode
from reskill_gym.skills import SkillError
from reskill_gym.skills.triggers import Matcher, compile_pattern

__all__ = [
    "CHECK_TYPES",
    "CheckType",
    "RuleCheck",
    "RuleAssertion",
    "AssertionGrade",
    "AssertionOpResult",
    "RuleAssertionSet",
]

log = logging.getLogger(__name__)

CheckType = Literal[
    "action_exists",
    "action_not_exists",
    "action_before",
    "no_consecutive_repeat",
    "final_action",
    "min_steps",
    "max_steps",
    "action_count",
    "observation_contains",
]
#: Check type -> (required params, optional params) with their kinds.
CHECK_TYPES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "action_exists": ({"pattern": "regex"}, {}),
    "action_not_exists": ({"pattern": "regex"}, {}),
    "action_before": ({"first": "regex", "second": "regex"}, {}),
    "no_consecutive_repeat": ({}, {"prefix": "text"}),
    "final_action": ({"pattern": "regex"}, {}),
    "min_steps": ({"n": "int"}, {}),
    "max_steps": ({"n": "int"}, {}),
    "action_count": ({"pattern": "regex"}, {"min": "int", "max": "int"}),
    "observation_contains": ({"pattern": "regex"}, {"after_action": "regex"}),
}
_DEFAULTS: dict[str, dict[str, Any]] = {"action_count": {"min": 0, "max": 999}}
#: Prompts are matched further than the trigger cap (RE2 is linear): published prompts reach
#: 2.5 x 4096 characters and the current observation comes last.
_PROMPT_MATCH_CHARS = 65_536
_CLIP = 60


def _clip(text: str, n: int = _CLIP) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


class RuleCheck(BaseModel):
    """One typed check with validated parameters (regexes compiled once, safely).

    >>> RuleCheck(check_type="max_steps", params={"n": "12"}).params
    {'n': 12}
    >>> RuleCheck(check_type="action_exists", params={"pattern": "(a+)+"})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for RuleCheck
      Value error, params.pattern: nested quantifier (catastrophic backtracking), ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    check_type: CheckType
    params: dict[str, Any] = Field(default_factory=dict)
    _matchers: dict[str, Matcher] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        ctype = data.get("check_type")
        if ctype not in CHECK_TYPES:
            return data  # the Literal reports the unknown type with the allowed ones
        raw = data.get("params") or {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"params must be an object, got {type(raw).__name__}")
        required, optional = CHECK_TYPES[ctype]
        unknown = set(raw) - set(required) - set(optional)
        if unknown:
            allowed = ", ".join([*required, *optional]) or "none"
            raise ValueError(
                f"params {sorted(unknown)} are not used by {ctype} (its params: {allowed})"
            )
        params: dict[str, Any] = dict(_DEFAULTS.get(ctype, {}))
        for name, kind in {**required, **optional}.items():
            value = raw.get(name)
            if value is None or (kind != "int" and value == ""):
                if name in required:
                    raise ValueError(f"{ctype} needs params.{name}")
                continue
            if kind == "int":
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise ValueError(f"params.{name} must be an integer, got {value!r}") from None
                if value < 0:
                    raise ValueError(f"params.{name} must be >= 0, got {value}")
            elif not isinstance(value, str):
                raise ValueError(f"params.{name} must be a string, got {type(value).__name__}")
            params[name] = value
        if ctype == "action_count" and params["min"] > params["max"]:
            raise ValueError(f"params.min ({params['min']}) > params.max ({params['max']})")
        return {"check_type": ctype, "params": params}

    @model_validator(mode="after")
    def _compile(self) -> RuleCheck:
        required, optional = CHECK_TYPES[self.check_type]
        for name, kind in {**required, **optional}.items():
            if kind == "regex" and name in self.params:
                try:
                    self._matchers[name] = compile_pattern(self.params[name])
                except SkillError as e:
                    raise ValueError(f"params.{name}: {e}") from None
        return self

    def _m(self, name: str) -> Matcher:
        return self._matchers[name]

    def evaluate(self, ep: Episode, text: AssertionText = "parsed") -> tuple[bool, str]:
        """(passed, evidence) for one trajectory; one pass over its turns.

        ``text``: ``parsed`` matches the commands that ran and the bare observations;
        ``published`` the model's whole replies and the prompts it saw (``Turn.prompt``, else
        the bare observation), with the published ``observation_contains`` (see
        ``_published_observation``).
        """
        if text == "published":
            actions = [t.reply or t.action for t in ep.turns]
            if self.check_type == "observation_contains":
                return self._published_observation(ep, actions)
        else:
            actions = [t.action for t in ep.turns]
        p = self.params
        ct = self.check_type
        if ct in ("action_exists", "action_not_exists"):
            m = self._m("pattern")
            hit = next((i for i, a in enumerate(actions) if m.search(a)), None)
            if ct == "action_exists":
                if hit is not None:
                    return True, f"Step {hit}: action matches '{p['pattern']}'"
                return False, f"No action matches '{p['pattern']}'"
            if hit is not None:
                return False, f"Step {hit}: action matches '{p['pattern']}' (should not exist)"
            return True, f"No action matches '{p['pattern']}'"
        if ct == "action_before":
            m1, m2 = self._m("first"), self._m("second")
            i1 = i2 = None
            for i, a in enumerate(actions):
                if i1 is None and m1.search(a):
                    i1 = i
                if i2 is None and m2.search(a):
                    i2 = i
                if i1 is not None and i2 is not None:
                    break
            if i1 is None:
                return False, f"Pattern '{p['first']}' not found"
            if i2 is None:
                return False, f"Pattern '{p['second']}' not found"
            if i1 < i2:
                return True, f"'{p['first']}' at step {i1} before '{p['second']}' at step {i2}"
            return False, f"'{p['first']}' at step {i1} NOT before '{p['second']}' at step {i2}"
        if ct == "no_consecutive_repeat":
            prefix = p.get("prefix", "")
            prev: str | None = None
            for i, a in enumerate(actions):
                if prefix and not a.startswith(prefix):
                    prev = None
                    continue
                if a == prev:
                    return False, f"Steps {i - 1} and {i}: repeated '{_clip(a)}'"
                prev = a
            return True, "No consecutive repeated actions"
        if ct == "final_action":
            if not actions:
                return False, "Empty trajectory"
            if self._m("pattern").search(actions[-1]):
                return True, f"Final action matches '{p['pattern']}'"
            return False, f"Final action '{_clip(actions[-1])}' does not match '{p['pattern']}'"
        if ct == "min_steps":
            n = len(actions)
            return (
                (True, f"{n} steps >= {p['n']}")
                if n >= p["n"]
                else (False, f"{n} steps < {p['n']}")
            )
        if ct == "max_steps":
            n = len(actions)
            return (
                (True, f"{n} steps <= {p['n']}")
                if n <= p["n"]
                else (False, f"{n} steps > {p['n']}")
            )
        if ct == "action_count":
            m = self._m("pattern")
            count = sum(1 for a in actions if m.search(a))
            lo, hi = p["min"], p["max"]
            inside = lo <= count <= hi
            where = "range" if inside else "outside"
            return inside, f"{count} actions match '{p['pattern']}' ({where} [{lo}, {hi}])"
        # observation_contains
        m = self._m("pattern")
        after = self._matchers.get("after_action")
        look = after is None
        observations = [t.observation for t in ep.turns[1:]]
        # Turn i's observation is what turn i-1's action produced; the final observation is
        # what the last action produced. Walk (action, observation it produced) pairs.
        produced = [*observations, ep.final_observation]
        first = ep.turns[0].observation if ep.turns else ""
        if look and m.search(first):
            return True, f"Step 0: observation matches '{p['pattern']}'"
        for i, a in enumerate(actions):
            if after is not None and after.search(a):
                look = True
            if look and produced[i] and m.search(produced[i]):
                return True, f"Step {i + 1}: observation matches '{p['pattern']}'"
        return False, f"No observation matches '{p['pattern']}'"

    def _published_observation(self, ep: Episode, replies: list[str]) -> tuple[bool, str]:
        """The published ``_check_observation_contains``: a step whose reply matches
        ``after_action`` opens the search (its own prompt is skipped); from then on (or from
        the start without ``after_action``) the first prompt matching ``pattern`` passes."""
        m, after = self._m("pattern"), self._matchers.get("after_action")
        look = after is None
        for i, (turn, reply) in enumerate(zip(ep.turns, replies)):
            if after is not None and after.search(reply):
                look = True
                continue
            seen = turn.prompt if turn.prompt is not None else turn.observation
            if look and m.search(seen, limit=_PROMPT_MATCH_CHARS):
                return True, f"Step {i}: observation matches '{self.params['pattern']}'"
        return False, f"No observation matches '{self.params['pattern']}'"

    def describe(self) -> str:
        """``check_type(params)`` for prompts and logs."""
        return f"{self.check_type}({json.dumps(self.params, sort_keys=True)})"


class RuleAssertion(BaseModel):
    """A live assertion: id, claim, check and lineage."""

    model_config = ConfigDict(frozen=True)

    id: str
    description: str = ""
    check: RuleCheck
    created_step: int | None = None
    updated_step: int | None = None
    version: int = 1
    rationale: str = ""


class AssertionGrade(BaseModel):
    """An assertion graded over a set of trajectories (the whole reservoir in a pass)."""

    id: str
    description: str
    check_type: str
    params: dict[str, Any]
    n: int = Field(description="Trajectories graded.")
    passed: int
    pass_rate: float | None = Field(description="passed / n (None when nothing was graded).")
    n_success: int = 0
    pass_rate_success: float | None = Field(
        None, description="Pass rate among successful episodes (a good check passes these)."
    )
    n_failure: int = 0
    pass_rate_failure: float | None = Field(
        None, description="Pass rate among failed episodes (a good check fails these)."
    )
    failing_episode_ids: list[str] = Field(default_factory=list)
    evidence: dict[str, str] = Field(
        default_factory=dict, description="Episode id -> evidence, for a few passing/failing ones."
    )
    age_steps: int | None = None

    @property
    def failed(self) -> int:
        return self.n - self.passed

    def line(self) -> str:
        """One line for prompts: id, type, params, pass rates, n, description."""
        rate = "N/A" if self.pass_rate is None else f"{self.pass_rate:.2f}"

        def r(x: float | None) -> str:
            return "N/A" if x is None else f"{x:.2f}"

        return (
            f"- **{self.id}** (type={self.check_type}, params={json.dumps(self.params)}, "
            f"pass_rate={rate}, n={self.n}; successes {r(self.pass_rate_success)} of "
            f"{self.n_success}, failures {r(self.pass_rate_failure)} of {self.n_failure}): "
            f"{self.description}"
        )


class AssertionOpResult(BaseModel):
    """What happened to one proposed add/modify/delete."""

    op: str
    ok: bool
    assertion_id: str | None = None
    reason: str = ""


class RuleAssertionSet:
    """The live assertions (at most ``max_assertions``), thread-safe and copyable."""

    def __init__(self, max_assertions: int = 15, max_examples: int = 5) -> None:
        self.max_assertions = max_assertions
        self.max_examples = max_examples
        self._items: dict[str, RuleAssertion] = {}
        self._next = 1
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, assertion_id: object) -> bool:
        return assertion_id in self._items

    def get(self, assertion_id: str) -> RuleAssertion:
        return self._items[assertion_id]

    def all(self) -> list[RuleAssertion]:
        """Assertions in id order."""
        return sorted(self._items.values(), key=lambda a: _id_key(a.id))

    # ---- changes -------------------------------------------------------------------
    def apply(self, op: Mapping[str, Any] | BaseModel, *, step: int | None) -> AssertionOpResult:
        """Apply one ``{"op": "add"|"modify"|"delete", ...}`` change; never raises for bad
        input (the result says why it was refused)."""
        data = op.model_dump() if isinstance(op, BaseModel) else dict(op)
        kind = str(data.get("op", ""))
        aid = data.get("assertion_id") or None
        desc = (data.get("description") or "").strip()
        why = (data.get("rationale") or "").strip()
        with self._lock:
            if kind == "add":
                if len(self._items) >= self.max_assertions:
                    return AssertionOpResult(
                        op=kind,
                        ok=False,
                        reason=f"already {self.max_assertions} assertions (the maximum); "
                        "delete one first",
                    )
                try:
                    check = RuleCheck(
                        check_type=data.get("check_type"), params=data.get("params") or {}
                    )
                except ValidationError as e:
                    return AssertionOpResult(op=kind, ok=False, reason=_first_error(e))
                new_id = f"A{self._next}"
                self._next += 1
                self._items[new_id] = RuleAssertion(
                    id=new_id,
                    description=desc,
                    check=check,
                    created_step=step,
                    updated_step=step,
                    rationale=why,
                )
                return AssertionOpResult(op=kind, ok=True, assertion_id=new_id)
            if kind in ("modify", "delete"):
                if aid not in self._items:
                    known = ", ".join(self._items) or "none"
                    return AssertionOpResult(
                        op=kind,
                        ok=False,
                        assertion_id=aid,
                        reason=f"no assertion {aid!r} (live: {known})",
                    )
                if kind == "delete":
                    del self._items[aid]
                    return AssertionOpResult(op=kind, ok=True, assertion_id=aid)
                old = self._items[aid]
                ctype = data.get("check_type") or old.check.check_type
                params = data.get("params")
                if params is None:
                    params = old.check.params if ctype == old.check.check_type else {}
                try:
                    check = RuleCheck(check_type=ctype, params=params)
                except ValidationError as e:
                    return AssertionOpResult(
                        op=kind, ok=False, assertion_id=aid, reason=_first_error(e)
                    )
                self._items[aid] = old.model_copy(
                    update={
                        "check": check,
                        "description": desc or old.description,
                        "updated_step": step,
                        "version": old.version + 1,
                        "rationale": why or old.rationale,
                    }
                )
                return AssertionOpResult(op=kind, ok=True, assertion_id=aid)
        return AssertionOpResult(
            op=kind or "?", ok=False, reason="op must be add, modify or delete"
        )

    # ---- grading -------------------------------------------------------------------
    def grade(
        self,
        episodes: Sequence[Episode],
        *,
        step: int | None = None,
        text: AssertionText = "parsed",
    ) -> list[AssertionGrade]:
        """Grade every live assertion on every episode: O(turns) per (assertion, episode);
        ``text`` as in ``RuleCheck.evaluate`` (``CreatorConfig.assertion_text``)."""
        items = self.all()
        out = []
        for a in items:
            passed = n_s = p_s = n_f = p_f = 0
            failing: list[str] = []
            evidence: dict[str, str] = {}
            shown_pass = 0
            for ep in episodes:
                ok, ev = a.check.evaluate(ep, text)
                passed += ok
                if ep.success:
                    n_s += 1
                    p_s += ok
                else:
                    n_f += 1
                    p_f += ok
                if not ok:
                    if len(failing) < self.max_examples:
                        failing.append(ep.episode_id)
                        evidence[ep.episode_id] = ev
                elif shown_pass < 2:
                    shown_pass += 1
                    evidence[ep.episode_id] = ev
            n = len(episodes)
            age = step - a.created_step if step is not None and a.created_step is not None else None
            out.append(
                AssertionGrade(
                    id=a.id,
                    description=a.description,
                    check_type=a.check.check_type,
                    params=dict(a.check.params),
                    n=n,
                    passed=passed,
                    pass_rate=passed / n if n else None,
                    n_success=n_s,
                    pass_rate_success=p_s / n_s if n_s else None,
                    n_failure=n_f,
                    pass_rate_failure=p_f / n_f if n_f else None,
                    failing_episode_ids=failing,
                    evidence=evidence,
                    age_steps=age,
                )
            )
        return out

    # ---- copies and checkpoints ----------------------------------------------------
    def copy(self) -> RuleAssertionSet:
        with self._lock:
            other = RuleAssertionSet(self.max_assertions, self.max_examples)
            other._items = copy.copy(self._items)  # items are frozen
            other._next = self._next
        return other

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "next_id": self._next,
                "max_assertions": self.max_assertions,
                "assertions": [a.model_dump(mode="json") for a in self.all()],
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            items = {a["id"]: RuleAssertion.model_validate(a) for a in state["assertions"]}
            nxt = int(state["next_id"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"rule assertion state: {e}") from e
        with self._lock:
            self._items = items
            self._next = max(nxt, 1 + max((_id_key(i) for i in items), default=0))


def _id_key(aid: str) -> int:
    return int(aid[1:]) if aid[1:].isdigit() else 1 << 30


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
