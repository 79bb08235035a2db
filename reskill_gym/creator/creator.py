"""``SkillCreator``: one object the co-evolution loop drives, synchronously or in the background.

Exports ``SkillCreator``.

``propose`` runs one pass and returns a ``Proposal`` or ``None``; it never raises into the
caller (a bug in a pass becomes an ``error`` event with the traceback's last line). The
reason for a ``None`` is ``last_result.reason``; every event is in ``events``.

Which LLM pass runs is ``CreatorConfig.pipeline``: ``published`` (``PublishedCreator``) or
``project`` (``LLMCreator``); the ``rules`` backend has its own. ``history`` (recent
version-test decisions, ``reskill_gym.creator.context.version_test_history``) feeds the
published recommender. With ``CreatorConfig.artifacts_dir`` set, each pass writes its
inputs, prompts, raw answers and results to ``<artifacts_dir>/step_<N>/``:

``00_sample.json`` (sampled groups), ``01_analysis.json`` (per group: prompt, raw answer,
source), ``01_insights.json``, ``02_insight_index.md``, ``03_assertions_before.json`` (graded
over the whole reservoir), ``04_diagnosis_prompt.md`` / ``_response.txt``,
``05_assertions_graded.json`` (after the changes), ``05_diagnosis.json``,
``06_recommender_inputs.json`` / ``_prompt.md`` / ``_response.txt``,
``06_recommendations.json``, ``07_author_try<k>_prompt.md`` / ``_response.txt``,
``08_verify_try<k>.json`` and ``09_result.json`` (events, proposal, cost; every pipeline).

``submit`` runs the same pass on a background thread on a *snapshot* of the reservoir and
returns at once; ``poll`` hands over the finished ``CreatorResult`` exactly once. ``cancel``
stops a pass at its next stage boundary and discards it. Because a pass only returns data
(the caller commits the proposal) and works on a copy of the assertion store that is swapped
in only when the pass completes, a cancelled or failed pass leaves nothing half-done.

>>> from reskill_gym.creator import CreatorConfig, Reservoir
>>> from reskill_gym.skills import LibraryView
>>> creator = SkillCreator(CreatorConfig(min_reservoir_size=1))
>>> creator.propose(Reservoir(), LibraryView("v0", []), step=0) is None
True
>>> creator.last_result.reason
'reservoir has 0 episodes, needs 1'
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from reskill_gym.creator.artifacts import PassArtifacts
from reskill_gym.creator.assertions import AssertionStore
from reskill_gym.creator.config import CreatorConfig
from reskill_gym.creator.context import VersionTestRecord
from reskill_gym.creator.pipeline import PassCancelled, PassContext
from reskill_gym.creator.reservoir import Reservoir
from reskill_gym.creator.results import CreatorEvent, CreatorResult, PassCost, Proposal
from reskill_gym.creator.rule_assertions import RuleAssertionSet
from reskill_gym.creator.rules import RulesCreator
from reskill_gym.skills import LibraryView

__all__ = ["SkillCreator"]

log = logging.getLogger("reskill_gym.creator")

_MAX_EVENTS = 1000


class SkillCreator:
    """The skill creator (see the module docstring).

    ``backend``: ``None`` uses ``config.backend``; ``"rules"``; a backend spec string
    (``openai:<url>#<model>``, ``anthropic:<model>`` ...); or a ready ``LLMBackend``.
    """

    def __init__(self, config: CreatorConfig | None = None, backend: Any = None) -> None:
        self.config = config or CreatorConfig()
        self.store = AssertionStore(self.config.max_assertion_examples)
        self.rule_assertions = RuleAssertionSet(
            self.config.max_assertions, self.config.max_assertion_examples
        )
        self.events: list[CreatorEvent] = []
        self.last_result: CreatorResult | None = None
        self.passes = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._finished: CreatorResult | None = None
        self._backend: Any = None
        self._prompts: Any = None
        self._engine: Any = None
        self._setup_error: str | None = None
        spec = backend if backend is not None else self.config.backend
        if isinstance(spec, str) and spec.strip().lower() == "rules":
            self._engine = RulesCreator()
            self.backend_name = "rules"
        else:
            self._init_llm(spec)

    def _init_llm(self, spec: Any) -> None:
        from reskill_gym.creator.llm_creator import LLMCreator
        from reskill_gym.creator.prompts import PromptSet
        from reskill_gym.creator.published import PublishedCreator
        from reskill_gym.llm import LLMError, make_backend

        self._prompts = PromptSet.load(self.config.prompts_dir)  # bad templates fail here, loudly
        if isinstance(spec, str):
            try:
                self._backend = make_backend(spec, **self.config.llm_options)
            except LLMError as e:
                # Config problems surface as events on every pass (the loop keeps training).
                self._setup_error = f"LLM backend {spec!r} could not be built: {e}"
                log.error("creator: %s", self._setup_error)
                self.backend_name = spec.split(":", 1)[0]
                return
        else:
            self._backend = spec
        if self.config.pipeline == "published":
            self._engine = PublishedCreator(self._backend, self._prompts)
        else:
            self._engine = LLMCreator(self._backend, self._prompts)
        self.backend_name = self._engine.name

    # ------------------------------------------------------------------ synchronous
    def propose(
        self,
        reservoir: Reservoir,
        library_view: LibraryView,
        *,
        step: int | None = None,
        history: Sequence[VersionTestRecord] = (),
    ) -> Proposal | None:
        """Run one pass now; see ``last_result`` / ``events`` for why it returned None."""
        result = self._run(reservoir, library_view, step, threading.Event(), history)
        return result.proposal

    def _run(
        self,
        reservoir: Reservoir,
        view: LibraryView,
        step: int | None,
        cancel: threading.Event,
        history: Sequence[VersionTestRecord] = (),
    ) -> CreatorResult:
        t0 = time.monotonic()
        store = self.store.copy()
        rules = self.rule_assertions.copy()
        artifacts = PassArtifacts(self.config.artifacts_dir, step)
        ctx = PassContext(
            self.config,
            reservoir,
            view,
            step,
            store,
            cancel,
            rule_assertions=rules,
            history=list(history),
            artifacts=artifacts,
        )
        usage0 = self._usage()
        proposal = None
        cancelled = False
        ctx.event(
            "pass_started",
            "pass",
            f"{self.backend_name} pass on {len(reservoir)} episodes, library {view.version}",
        )
        try:
            if self._setup_error is not None:
                ctx.stop("error", "pass", self._setup_error)
            elif not reservoir.ready(self.config.min_reservoir_size):
                ctx.stop(
                    "not_ready",
                    "reservoir",
                    f"reservoir has {len(reservoir)} episodes, needs {self.config.min_reservoir_size}",
                )
            else:
                proposal = self._engine.run(ctx)
        except PassCancelled:
            cancelled = True
            proposal = None
            ctx.stop("cancelled", "pass", "pass cancelled; its results were discarded")
        except Exception as e:  # the trainer must never die because the creator failed
            proposal = None
            last = traceback.format_exc().strip().splitlines()[-1]
            log.exception("creator pass failed")
            ctx.stop("error", "pass", f"pass failed: {type(e).__name__}: {e} ({last})")
        cost = self._cost(usage0, time.monotonic() - t0)
        if proposal is not None:
            proposal = proposal.model_copy(update={"cost": cost})
            ctx.event("pass_finished", "pass", f"proposal: {proposal.summary()}")
        else:
            ctx.event("pass_finished", "pass", f"no proposal: {ctx.reason}")
        result = CreatorResult(
            proposal=proposal,
            reason="" if proposal is not None else ctx.reason,
            events=ctx.events,
            cost=cost,
            step=step,
            cancelled=cancelled,
        )
        artifacts.json(
            "09_result.json",
            {
                "backend": self.backend_name,
                "pipeline": "rules" if self.backend_name == "rules" else self.config.pipeline,
                **result.model_dump(mode="json"),
            },
        )
        with self._lock:
            if not cancelled and not cancel.is_set():
                self.store = store  # the pass's assertions become the creator's
                self.rule_assertions = rules
                self.passes += 1
            self.events.extend(ctx.events)
            del self.events[:-_MAX_EVENTS]
            self.last_result = result
        return result

    def _usage(self) -> Any:
        return self._backend.usage if self._backend is not None else None

    def _cost(self, before: Any, wall_s: float) -> PassCost:
        if self._backend is None or before is None:
            return PassCost(wall_s=wall_s)
        d = self._backend.usage - before
        return PassCost(
            calls=d.calls,
            cached_calls=d.cached_calls,
            failed_calls=d.failed_calls,
            input_tokens=d.input_tokens,
            output_tokens=d.output_tokens,
            usd=d.cost_usd,
            wall_s=wall_s,
        )

    # ------------------------------------------------------------------ asynchronous
    @property
    def busy(self) -> bool:
        """A background pass is running."""
        t = self._thread
        return t is not None and t.is_alive()

    def submit(
        self,
        reservoir: Reservoir,
        view: LibraryView,
        step: int | None = None,
        *,
        history: Sequence[VersionTestRecord] = (),
    ) -> bool:
        """Start a pass in the background on a snapshot of ``reservoir``; returns at once.

        Returns False (and records a ``busy`` event) when a pass is already running.
        """
        if self.busy:
            ev = CreatorEvent(
                kind="busy", stage="pass", message="a pass is already running", step=step
            )
            with self._lock:
                self.events.append(ev)
            return False
        snap = reservoir.snapshot()
        self._cancel = threading.Event()
        cancel = self._cancel

        def work() -> None:
            result = self._run(snap, view, step, cancel, list(history))
            with self._lock:
                if cancel.is_set():
                    result = result.model_copy(
                        update={"proposal": None, "cancelled": True, "reason": "cancelled"}
                    )
                self._finished = result

        self._thread = threading.Thread(target=work, name=f"skill-creator-{step}", daemon=True)
        self._thread.start()
        return True

    def poll(self) -> CreatorResult | None:
        """The finished background pass, once; None while running or when nothing was submitted."""
        with self._lock:
            result, self._finished = self._finished, None
        return result

    def wait(self, timeout: float | None = None) -> CreatorResult | None:
        """Block until the background pass ends (or ``timeout``), then ``poll``."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return self.poll()

    def cancel(self, wait: bool = False, timeout: float | None = None) -> None:
        """Stop the background pass at its next stage boundary; its result is discarded."""
        self._cancel.set()
        if wait and self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """Cancel any pass and release the LLM client."""
        self.cancel(wait=True, timeout=30)
        if self._backend is not None and hasattr(self._backend, "close"):
            self._backend.close()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Both assertion sets and the pass counter (events are logs, not state)."""
        with self._lock:
            return {
                "assertions": self.store.state_dict(),
                "rule_assertions": self.rule_assertions.state_dict(),
                "passes": self.passes,
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        store = AssertionStore(self.config.max_assertion_examples)
        store.load_state_dict(state["assertions"])
        rules = RuleAssertionSet(self.config.max_assertions, self.config.max_assertion_examples)
        if state.get("rule_assertions") is not None:  # absent in checkpoints before it existed
            rules.load_state_dict(state["rule_assertions"])
        with self._lock:
            self.store = store
            self.rule_assertions = rules
            self.passes = int(state.get("passes", 0))
