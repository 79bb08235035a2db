"""The published ReSkill creator pipeline, faithfully, on the project's safer parts.

Exports ``PublishedCreator``, ``skill_from_spec``, ``apply_changes`` and ``library_summary``.

One pass (``CreatorConfig.pipeline = "published"``), stage by stage, with the published
module each follows:

0. *sample* - ``Reservoir.sample_task_groups`` (``experience_reservoir.sample_task_groups``):
   ``n_groups`` task groups, mixed first, failure-only before success-only, at least
   ``min_success_ratio`` of the groups with a success, 1-6 episodes each;
1. *contrastive analysis* - one call per group, in parallel (``analysis_workers``), each
   returning a ``GroupInsight`` (``episode_analyzer.analyze_groups``); a failed call yields a
   heuristic insight from the trajectories (``_heuristic_fallback``), never a hole;
2. *index* - ``summarize_insights``, deterministic (``EpisodeAnalyzer.summarize``);
3. *diagnosis* - the live rule-graded assertions are graded over the WHOLE reservoir, the
   LLM reads the pass rates + the index + the assertions + the skills and answers assertion
   add/modify/delete, a quantitative diagnosis, priority modes and 3-8 insight clusters with
   representatives (``batch_diagnoser.diagnose`` + ``assertion_engine.apply_crud``); the
   changed set is graded again. Without an answer, insights are clustered by failure mode
   and the diagnosis is written from the measured pass rates;
4. *recommend* - clusters with expanded representatives, the diagnosis and graded
   assertions, the library with each skill's trigger rate (replayed over the reservoir) and
   age, the last ``n_version_history`` version-test decisions and the action vocabulary ->
   1-3 operations (``skill_recommender.recommend``);
5. *author* - ONE call writes the whole revision (``skill_author.author``); it is verified
   (``reskill_trainer._phase_verify``) and, if any operation fails, re-written with the
   verifier's feedback, ``max_proposal_retries`` (3) tries in all;
6. *verify* - the project ``Verifier`` with the published gates: trigger rate measured over
   the whole reservoir (``TriggerMatcher.estimate_trigger_rate``) >= ``min_trigger_rate``
   (0.5) and when-to-use + action + examples <= ``max_skill_content_chars`` (500, the
   project-wide rule ``Skill.counted_chars``); the library-size cap ``max_library_skills``
   (8; published: ``max_active_skills``, enforced when the revision is applied); plus the
   project's checks the published code lacks: safe regex, valid name, no near-duplicate,
   modify/delete of existing skills only.

Every stage's inputs, prompts, raw answers and results, and the graded assertions, are
written to ``PassArtifacts`` (``<artifacts_dir>/step_<N>/``). LLM failures become events
that keep the raw text; only a recommender without a usable answer, or an author whose
revision never verifies, ends a pass without a proposal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from reskill_gym.creator.config import StageSampling
from reskill_gym.creator.context import action_vocabulary, render_version_history
from reskill_gym.creator.insights import (
    GroupInsight,
    Insight,
    InsightGroup,
    heuristic_insight,
    heuristic_insight_groups,
    normalize_insight_groups,
    render_group,
    render_insight_groups,
    summarize_insights,
)
from reskill_gym.creator.pipeline import PassContext
from reskill_gym.creator.prompts import PromptSet
from reskill_gym.creator.reservoir import EpisodeGroup, arm_label
from reskill_gym.creator.results import AssertionRef, Proposal, SkillVerification
from reskill_gym.creator.rule_assertions import AssertionGrade, AssertionOpResult
from reskill_gym.creator.schemas import (
    AuthoredOperation,
    AuthoredRevision,
    AuthoredSkillSpec,
    DiagnosisReport,
    RecommendedOperation,
    RecommenderOutput,
    SkillChanges,
)
from reskill_gym.creator.verify import Verifier, schema_failure, trigger_fire_rate
from reskill_gym.episode import Episode
from reskill_gym.llm import Completion, LLMBackend, LLMError, LLMOutputError
from reskill_gym.skills import LibraryView, Operation, Provenance, Skill, SkillError, Trigger
from reskill_gym.skills.triggers import check_pattern

__all__ = ["PublishedCreator", "skill_from_spec", "apply_changes", "library_summary"]

log = logging.getLogger("reskill_gym.creator")

_PATTERN_TYPES = ("action_pattern", "observation_pattern")
_TRIGGER_TYPES_TEXT = """1. **general** - included at every step. For broad principles.
2. **beginning** - included only at step 0. For initialization strategies.
3. **action_pattern** - included only on the turn after the agent's action matches a regex.
   The regex is matched (case-insensitively) against the agent's raw action string, never
   its reasoning; design it from the action vocabulary and the insights'
   `trigger_relevant_actions`."""
_GENERAL_ONLY_TEXT = """All skills use the **general** trigger: they are included at every step. Set
`"trigger_type": "general"` and omit `trigger_pattern` for every skill."""


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _first_sentence(text: str) -> str:
    head = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].strip()
    return head if head.endswith((".", "!", "?")) or not head else head + "."


def skill_from_spec(
    spec: AuthoredSkillSpec,
    *,
    step: int | None,
    proposed_by: str,
    rationale: str,
    force_general: bool = False,
) -> Skill:
    """Build a project ``Skill`` from an authored add (raises ``SkillError``/``ValidationError``
    naming the field: bad name, unsafe pattern...).

    As published, a pattern trigger without a pattern becomes ``general``, and
    ``force_general`` makes every trigger ``general``. The description (required by the
    Agent Skills format) is the first sentence of when-to-use.

    >>> from reskill_gym.creator.schemas import AuthoredSkillSpec
    >>> s = skill_from_spec(AuthoredSkillSpec.model_validate({"name": "open-first",
    ...     "content": {"when_to_use": "Apply when a take fails. More.", "action": "Open it.",
    ...                 "examples": ["DO: open drawer 1"]},
    ...     "trigger_type": "action_pattern", "trigger_pattern": "^take "}),
    ...     step=3, proposed_by="x", rationale="y")
    >>> s.description, s.examples, s.trigger.pattern
    ('Apply when a take fails.', 'DO: open drawer 1', '^take ')
    """
    pattern = spec.trigger_pattern if (spec.trigger_pattern or "").strip() else None
    ttype = spec.trigger_type
    if force_general:
        ttype, pattern = "general", None
    elif ttype in _PATTERN_TYPES and pattern is None:
        ttype = "general"
    elif ttype not in _PATTERN_TYPES:
        pattern = None
    c = spec.content
    when = c.when_to_use.strip()
    desc = _first_sentence(when) if when else spec.name.replace("-", " ").capitalize() + "."
    return Skill(
        name=spec.name.strip(),
        description=desc[:1024],
        when_to_use=when,
        content=c.action.strip(),
        examples="\n".join(e.strip() for e in c.examples if e.strip()),
        trigger=Trigger(type=ttype, pattern=pattern),
        created_at_step=step,
        provenance=Provenance(proposed_by=proposed_by, rationale=rationale[:500] or None),
    )


def apply_changes(
    old: Skill,
    changes: SkillChanges,
    *,
    proposed_by: str,
    rationale: str,
    force_general: bool = False,
) -> Skill:
    """An authored modify merged onto the current skill (published ``apply_version``: the
    given content sections replace the old ones, the rest is kept; a new pattern on a skill
    without a pattern trigger makes it ``action_pattern``)."""
    upd: dict[str, Any] = {}
    c = changes.content
    if c is not None:
        if c.when_to_use is not None:
            upd["when_to_use"] = c.when_to_use.strip()
            if upd["when_to_use"]:
                upd["description"] = _first_sentence(upd["when_to_use"])[:1024]
        if c.action is not None:
            upd["content"] = c.action.strip()
        if c.examples is not None:
            upd["examples"] = "\n".join(e.strip() for e in c.examples if e.strip())
    ttype = changes.trigger_type or old.trigger.type
    pattern = old.trigger.pattern
    if changes.trigger_pattern is not None:
        pattern = changes.trigger_pattern if changes.trigger_pattern.strip() else None
        if changes.trigger_type is None and old.trigger.type not in _PATTERN_TYPES and pattern:
            ttype = "action_pattern"
    if force_general:
        ttype, pattern = "general", None
    if ttype not in _PATTERN_TYPES:
        pattern = None
    elif pattern is None:
        ttype = "general"
    top_k = old.trigger.top_k if ttype == "retrieval" else None
    upd["trigger"] = {"type": ttype, "pattern": pattern, "top_k": top_k}
    upd["provenance"] = {"proposed_by": proposed_by, "rationale": rationale[:500] or None}
    return old.replace(**upd)


def library_summary(
    view: LibraryView, rates: dict[str, float] | None = None, step: int | None = None
) -> str:
    """One entry per skill: trigger, measured trigger rate, age, version, when-to-use
    (published ``SkillRegistry.to_diagnostic_summary``)."""
    if len(view) == 0:
        return "No skills registered."
    lines = []
    for s in view.skills:
        trig = s.trigger.type + (f" (pattern: {s.trigger.pattern})" if s.trigger.pattern else "")
        diag = []
        if rates is not None and s.name in rates:
            diag.append(f"trigger_rate={rates[s.name]:.0%}")
        if step is not None and s.created_at_step is not None:
            diag.append(f"age={step - s.created_at_step} steps")
        if s.version > 1:
            diag.append(f"v{s.version}")
        tail = f" [{', '.join(diag)}]" if diag else ""
        preview = _clip(s.when_to_use or s.content, 120)
        lines.append(f"- {s.name}: trigger={trig}{tail}\n  {preview}")
    return "\n".join(lines)


@dataclass
class _Diagnosis:
    source: str
    text: str
    priority_modes: list[str]
    groups: list[InsightGroup]
    grades: list[AssertionGrade]
    applied: list[AssertionOpResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PublishedCreator:
    """One published-pipeline pass over a ``PassContext`` with an ``LLMBackend``."""

    def __init__(self, backend: LLMBackend, prompts: PromptSet) -> None:
        self.backend = backend
        self.prompts = prompts

    @property
    def name(self) -> str:
        return f"{self.backend.name}:{self.backend.model}"

    # ------------------------------------------------------------------ helpers
    def _ask(
        self, msgs: list[dict[str, str]], schema: type, sampling: StageSampling
    ) -> Completion | LLMError:
        try:
            return self.backend.complete(
                msgs, schema, max_tokens=sampling.max_tokens, temperature=sampling.temperature
            )
        except LLMError as e:
            return e

    def _vocabulary(self, ctx: PassContext, episodes: Sequence[Episode]) -> str:
        v = ctx.config.action_vocabulary
        if v.strip().lower() == "auto":
            env_id = episodes[0].env_id if episodes else ""
            return action_vocabulary(env_id, episodes)
        return v.strip() or "(none given)"

    def _trigger_texts(self, ctx: PassContext) -> tuple[str, str]:
        if ctx.config.force_general_trigger:
            return _GENERAL_ONLY_TEXT, "general"
        return _TRIGGER_TYPES_TEXT, "general, beginning, action_pattern"

    # ------------------------------------------------------------------ the pass
    def run(self, ctx: PassContext) -> Proposal | None:
        cfg = ctx.config
        episodes = ctx.reservoir.episodes()
        groups = ctx.reservoir.sample_task_groups(
            cfg.n_groups, cfg.min_success_ratio, ctx.rng, max_episodes=cfg.max_group_episodes
        )
        ctx.artifacts.json(
            "00_sample.json",
            {
                "reservoir": ctx.reservoir.counts(),
                "dedup_by": ctx.reservoir.dedup_by,
                "library_version": ctx.view.version,
                "groups": [
                    {
                        "task_id": g.task_id,
                        "episodes": [
                            {
                                "episode_id": e.episode_id,
                                "arm": arm_label(e),
                                "success": e.success,
                                "steps": len(e.turns),
                            }
                            for e in g.episodes
                        ],
                    }
                    for g in groups
                ],
            },
        )
        if not groups:
            ctx.stop("nothing_to_propose", "reservoir", "the reservoir is empty")
            return None
        if not any(g.has_failure for g in groups):
            ctx.stop(
                "nothing_to_propose",
                "reservoir",
                f"no failed episodes in {len(groups)} sampled groups ({ctx.reservoir.counts()}):"
                " nothing to diagnose",
            )
            return None
        ctx.checkpoint()
        insights = self.analyse(ctx, groups)
        ctx.checkpoint()
        summary = summarize_insights(insights)
        ctx.artifacts.text("02_insight_index.md", summary + "\n")
        diag = self.diagnose(ctx, insights, summary, episodes)
        ctx.checkpoint()
        plan = self.recommend(ctx, insights, diag, episodes)
        if plan is None:
            return None
        ctx.checkpoint()
        return self.author(ctx, plan, insights, diag, episodes)

    # ------------------------------------------------------------------ 1. analysis
    def analyse(self, ctx: PassContext, groups: Sequence[EpisodeGroup]) -> list[Insight]:
        cfg = ctx.config
        skills = library_summary(ctx.view)
        env_id = groups[0].episodes[0].env_id if groups and groups[0].episodes else ""
        prompts = [
            self.prompts["contrastive_analyst"].render(
                env_id=env_id,
                skills=skills,
                group=render_group(
                    g,
                    max_actions=cfg.max_trace_actions,
                    max_observation_chars=cfg.max_observation_chars,
                ),
            )
            for g in groups
        ]

        def call(msgs: list[dict[str, str]]) -> Completion | LLMError | None:
            if ctx.cancel.is_set():
                return None
            return self._ask(msgs, GroupInsight, cfg.sampling.analysis)

        workers = max(1, min(cfg.analysis_workers, len(prompts)))
        with ThreadPoolExecutor(workers, thread_name_prefix="creator-analysis") as ex:
            results = list(ex.map(call, prompts))
        ctx.checkpoint()
        insights: list[Insight] = []
        debug = []
        n_fallback = 0
        for i, (g, msgs, res) in enumerate(zip(groups, prompts, results)):
            meta = {
                "index": i,
                "task_id": g.task_id,
                "task_query": _clip(g.episodes[0].task, 500),
                "episode_ids": [e.episode_id for e in g.episodes],
            }
            raw: str | None
            if isinstance(res, Completion) and isinstance(res.parsed, GroupInsight):
                raw = res.text
                ins = Insight(**res.parsed.model_dump(), **meta, source="llm")
                safe = []
                for p in ins.trigger_relevant_actions:
                    try:
                        check_pattern(p)
                        safe.append(p)
                    except SkillError as e:
                        ctx.event("rejected", "analysis", f"group {i}: dropped pattern: {e}")
                ins = ins.model_copy(update={"trigger_relevant_actions": safe})
            else:
                err = res if isinstance(res, LLMError) else LLMError("no answer")
                raw = ctx.llm_failure("analysis", err, episode_id=g.episodes[0].episode_id)
                ins = heuristic_insight(g, index=i)
                n_fallback += 1
            insights.append(ins)
            debug.append({**meta, "prompt": msgs, "raw_response": raw, "source": ins.source})
        if n_fallback:
            ctx.event(
                "fallback",
                "analysis",
                f"{n_fallback} of {len(groups)} group analyses failed; heuristic insights used",
            )
        ctx.event(
            "analysis_done",
            "analysis",
            f"{len(insights)} insights "
            f"({sum(i.confidence == 'high' for i in insights)} high confidence)",
        )
        ctx.artifacts.json("01_analysis.json", debug)
        ctx.artifacts.json("01_insights.json", insights)
        return insights

    # ------------------------------------------------------------------ 3. diagnosis
    def diagnose(
        self,
        ctx: PassContext,
        insights: list[Insight],
        summary: str,
        episodes: Sequence[Episode],
    ) -> _Diagnosis:
        cfg = ctx.config
        rules = ctx.rule_assertions
        before = rules.grade(episodes, step=ctx.step, text=cfg.assertion_text)
        ctx.artifacts.json("03_assertions_before.json", before)
        current = []
        for a in rules.all():
            age = (
                f", age {ctx.step - a.created_step} steps"
                if ctx.step is not None and a.created_step is not None
                else ""
            )
            current.append(f"- {a.id} ({a.check.describe()}{age}): {a.description}")
        msgs = self.prompts["batch_diagnoser"].render(
            assertion_pass_rates="\n".join(g.line() for g in before)
            or "No assertions configured yet.",
            n_reservoir=len(episodes),
            insight_summaries=summary,
            current_assertions="\n".join(current) or "No assertions configured.",
            n_assertions=len(rules),
            max_assertions=rules.max_assertions,
            skills=library_summary(ctx.view),
            min_groups=cfg.min_insight_groups,
            max_groups=cfg.max_insight_groups,
        )
        ctx.artifacts.messages("04_diagnosis_prompt.md", msgs)
        res = self._ask(msgs, DiagnosisReport, cfg.sampling.diagnosis)
        applied: list[AssertionOpResult] = []
        notes: list[str] = []
        if isinstance(res, Completion) and isinstance(res.parsed, DiagnosisReport):
            ctx.artifacts.text("04_diagnosis_response.txt", res.text)
            report = res.parsed
            for op in report.assertion_operations:
                r = rules.apply(op, step=ctx.step)
                applied.append(r)
                if not r.ok:
                    ctx.event("rejected", "diagnosis", f"assertion {op.op} refused: {r.reason}")
            if report.insight_groups:
                groups, notes = normalize_insight_groups(
                    report.insight_groups, insights, max_groups=cfg.max_insight_groups
                )
            else:
                groups = heuristic_insight_groups(insights, max_groups=cfg.max_insight_groups)
                notes = ["no insight_groups in the answer: clustered by failure mode"]
            if len(groups) < cfg.min_insight_groups <= len(insights):
                notes.append(f"{len(groups)} groups, fewer than {cfg.min_insight_groups}")
            source, text, prio = "llm", report.diagnosis.strip(), list(report.priority_modes)
        else:
            err = res if isinstance(res, LLMError) else LLMError("no answer")
            ctx.artifacts.text("04_diagnosis_response.txt", ctx.llm_failure("diagnosis", err))
            groups = heuristic_insight_groups(insights, max_groups=cfg.max_insight_groups)
            source, prio = "heuristic", [g.label for g in groups[:3]]
            text = _measured_diagnosis(before, groups, len(episodes))
            ctx.event(
                "fallback",
                "diagnosis",
                "no diagnosis from the LLM: insights clustered by failure mode, diagnosis "
                "written from the measured pass rates",
            )
        for n in notes:
            ctx.event("rejected", "diagnosis", f"insight groups: {n}")
        after = rules.grade(episodes, step=ctx.step, text=cfg.assertion_text)
        ok = sum(r.ok for r in applied)
        ctx.event(
            "assertions_updated",
            "diagnosis",
            f"{ok} of {len(applied)} assertion operations applied; {len(rules)} live, "
            f"graded over {len(episodes)} reservoir episodes",
        )
        diag = _Diagnosis(source, text, prio, groups, after, applied, notes)
        ctx.artifacts.json("05_assertions_graded.json", after)
        ctx.artifacts.json(
            "05_diagnosis.json",
            {
                "source": source,
                "diagnosis": text,
                "priority_modes": prio,
                "insight_groups": groups,
                "assertion_operations": applied,
                "notes": notes,
            },
        )
        return diag

    # ------------------------------------------------------------------ 4. recommend
    def recommend(
        self,
        ctx: PassContext,
        insights: list[Insight],
        diag: _Diagnosis,
        episodes: Sequence[Episode],
    ) -> tuple[RecommenderOutput, dict[str, float], str] | None:
        cfg = ctx.config
        view = ctx.view
        rates = {s.name: trigger_fire_rate(s, view, episodes) for s in view.skills}
        library = library_summary(view, rates, ctx.step)
        vocab = self._vocabulary(ctx, episodes)
        history = list(ctx.history)[-cfg.n_version_history :] if cfg.n_version_history else []
        trig_text, trig_names = self._trigger_texts(ctx)
        diagnosis = diag.text or "No assertion diagnosis available."
        if diag.priority_modes:
            diagnosis += f"\nPriority modes: {', '.join(diag.priority_modes)}"
        graded = "\n".join(g.line() for g in diag.grades) or "No assertions configured."
        inputs = {
            "insight_groups": [g.model_dump() for g in diag.groups],
            "diagnosis": diag.text,
            "diagnosis_source": diag.source,
            "priority_modes": diag.priority_modes,
            "graded_assertions": [g.model_dump() for g in diag.grades],
            "library": [
                {
                    "name": s.name,
                    "trigger": s.trigger.type,
                    "pattern": s.trigger.pattern,
                    "trigger_rate": rates[s.name],
                    "age_steps": (
                        ctx.step - s.created_at_step
                        if ctx.step is not None and s.created_at_step is not None
                        else None
                    ),
                    "version": s.version,
                }
                for s in view.skills
            ],
            "version_history": [h.model_dump() for h in history],
            "action_vocabulary": vocab,
        }
        ctx.artifacts.json("06_recommender_inputs.json", inputs)
        msgs = self.prompts["skill_recommender"].render(
            action_vocabulary=vocab,
            insight_groups=render_insight_groups(diag.groups, insights),
            diagnosis=diagnosis,
            graded_assertions=graded,
            library=library,
            version_history=render_version_history(history, cfg.n_version_history),
            max_library_skills=cfg.max_library_skills or "unlimited",
            min_operations=1,
            max_operations=cfg.max_operations_per_pass,
            trigger_types=trig_text,
            trigger_type_names=trig_names,
        )
        ctx.artifacts.messages("06_recommender_prompt.md", msgs)
        res = self._ask(msgs, RecommenderOutput, cfg.sampling.recommend)
        if not (isinstance(res, Completion) and isinstance(res.parsed, RecommenderOutput)):
            err = res if isinstance(res, LLMError) else LLMError("no answer")
            raw = ctx.llm_failure("recommend", err)
            ctx.artifacts.text("06_recommender_response.txt", raw)
            ctx.reason = f"recommendation failed: {type(err).__name__}"
            return None
        ctx.artifacts.text("06_recommender_response.txt", res.text)
        out = res.parsed
        kept: list[RecommendedOperation] = []
        for op in out.operations:
            target = (op.target or "").strip() or None
            if op.op in ("modify", "delete") and (target is None or target not in view):
                known = ", ".join(view.names) or "none"
                ctx.event(
                    "rejected",
                    "recommend",
                    f"{op.op} of unknown skill {target!r} dropped (skills: {known})",
                    skill=target,
                )
                continue
            refs = [i for i in op.referenced_insights if 0 <= i < len(insights)]
            kept.append(
                op.model_copy(
                    update={
                        "target": target if op.op != "add" else None,
                        "referenced_insights": refs,
                    }
                )
            )
        if len(kept) > cfg.max_operations_per_pass:
            ctx.event(
                "rejected",
                "recommend",
                f"{len(kept)} operations recommended; keeping the first "
                f"{cfg.max_operations_per_pass}",
            )
            kept = kept[: cfg.max_operations_per_pass]
        ctx.artifacts.json(
            "06_recommendations.json", {"reasoning": out.reasoning, "operations": kept}
        )
        if not kept:
            ctx.stop(
                "nothing_to_propose", "recommend", "the recommender proposed no usable operation"
            )
            return None
        return out.model_copy(update={"operations": kept}), rates, library

    # ------------------------------------------------------------------ 5-6. author + verify
    def _referenced(
        self, ctx: PassContext, plan: RecommenderOutput, insights: list[Insight]
    ) -> tuple[str, str]:
        skills_txt = []
        for op in plan.operations:
            if op.op in ("modify", "delete") and op.target is not None and op.target in ctx.view:
                s = ctx.view.get(op.target)
                lines = [f"### {s.name}", f"Trigger: {s.trigger.type}"]
                if s.trigger.pattern:
                    lines.append(f"Pattern: `{s.trigger.pattern}`")
                lines.append(f"When to use: {s.when_to_use or '(none)'}")
                lines.append(f"Action: {s.content}")
                if s.examples:
                    lines.append(f"Examples: {s.examples}")
                skills_txt.append("\n".join(lines))
        idx = sorted({i for op in plan.operations for i in op.referenced_insights[:3]})
        ins_txt = []
        for i in idx:
            r = insights[i]
            lines = [f"### Insight {i}"]
            if r.task_query:
                lines.append(f"Task: {r.task_query}")
            lines.append(f"Finding: {r.insight}")
            if r.failure_snippet:
                lines.append(f"Failure actions: {' -> '.join(r.failure_snippet[:6])}")
            if r.failure_point:
                lines.append(f"Failure point: {r.failure_point}")
            if r.success_snippet:
                lines.append(f"Success actions: {' -> '.join(r.success_snippet[:6])}")
            if r.success_pattern:
                lines.append(f"Success pattern: {r.success_pattern}")
            if r.trigger_relevant_actions:
                lines.append(f"Trigger-relevant actions: {r.trigger_relevant_actions}")
            ins_txt.append("\n".join(lines))
        a = "## Referenced skills (full content)\n\n" + "\n\n".join(skills_txt) + "\n\n"
        b = "## Referenced insights (with action snippets)\n\n" + "\n\n".join(ins_txt) + "\n\n"
        return (a if skills_txt else ""), (b if ins_txt else "")

    def _build(
        self,
        ctx: PassContext,
        rev: AuthoredRevision,
        verifier: Verifier,
        episodes: Sequence[Episode],
        attempt: int,
    ) -> tuple[list[tuple[Operation, AuthoredOperation]], list[SkillVerification]]:
        cfg = ctx.config
        built: list[tuple[Operation, AuthoredOperation]] = []
        reports: list[SkillVerification] = []
        ops = rev.operations
        if len(ops) > cfg.max_operations_per_pass:
            reports.append(
                schema_failure(
                    ops[-1].type,
                    ops[-1].name,
                    f"{len(ops)} operations; at most {cfg.max_operations_per_pass} per revision",
                    attempt,
                )
            )
            ops = ops[: cfg.max_operations_per_pass]
        for a in ops:
            why = a.reasoning or rev.version_reasoning
            try:
                if a.type == "add":
                    assert a.skill is not None
                    op = Operation.add(
                        skill_from_spec(
                            a.skill,
                            step=ctx.step,
                            proposed_by=self.name,
                            rationale=why,
                            force_general=cfg.force_general_trigger,
                        )
                    )
                elif a.type == "delete":
                    op = Operation.delete((a.target_skill_name or "").strip())
                else:
                    name = (a.target_skill_name or "").strip()
                    if name not in ctx.view:
                        known = ", ".join(ctx.view.names) or "none"
                        raise SkillError(f"no skill {name!r} to modify (skills: {known})")
                    assert a.changes is not None
                    op = Operation.modify(
                        apply_changes(
                            ctx.view.get(name),
                            a.changes,
                            proposed_by=self.name,
                            rationale=why,
                            force_general=cfg.force_general_trigger,
                        )
                    )
            except (SkillError, ValidationError) as e:
                msg = str(e).splitlines()[0] if isinstance(e, SkillError) else _first_error(e)
                reports.append(schema_failure(a.type, a.name, msg, attempt))
                continue
            built.append((op, a))
        for k, (op, _a) in enumerate(built):
            others = [o for j, (o, _) in enumerate(built) if j != k]
            reports.append(verifier.verify(op, episodes, attempts=attempt, accepted=others))
        return built, reports

    def author(
        self,
        ctx: PassContext,
        plan_rates: tuple[RecommenderOutput, dict[str, float], str],
        insights: list[Insight],
        diag: _Diagnosis,
        episodes: Sequence[Episode],
    ) -> Proposal | None:
        cfg = ctx.config
        plan, _rates, library = plan_rates
        verifier = Verifier.from_config(ctx.view, cfg, targets_label="reservoir trajectories")
        trig_text, _ = self._trigger_texts(ctx)
        ref_skills, ref_insights = self._referenced(ctx, plan, insights)
        recs = [f"Strategy: {plan.reasoning}\n"] if plan.reasoning else []
        for i, op in enumerate(plan.operations, 1):
            lines = [f"### Operation {i}: {op.op.upper()}"]
            if op.target:
                lines.append(f"Target: {op.target}")
            lines.append(f"Intent: {op.intent}")
            if op.evidence:
                lines.append(f"Evidence: {op.evidence}")
            if op.trigger_suggestion:
                lines.append(f"Trigger type suggestion: {op.trigger_suggestion}")
            recs.append("\n".join(lines))
        vocab = self._vocabulary(ctx, episodes)
        feedback = ""
        for attempt in range(1, cfg.max_proposal_retries + 1):
            ctx.checkpoint()
            msgs = self.prompts["skill_author"].render(
                feedback=feedback,
                recommendations="\n\n".join(recs),
                referenced_skills=ref_skills,
                referenced_insights=ref_insights,
                library=library,
                action_vocabulary=vocab,
                max_chars=cfg.max_skill_content_chars,
                trigger_types=trig_text,
            )
            ctx.artifacts.messages(f"07_author_try{attempt}_prompt.md", msgs)
            res = self._ask(msgs, AuthoredRevision, cfg.sampling.author)
            if not (isinstance(res, Completion) and isinstance(res.parsed, AuthoredRevision)):
                err = res if isinstance(res, LLMError) else LLMError("no answer")
                raw = ctx.llm_failure("author", err)
                ctx.artifacts.text(f"07_author_try{attempt}_response.txt", raw)
                feedback = (
                    "## Previous attempt failed\n\nYour previous answer could not be used "
                    f"({_clip(str(err), 300)}). Answer with the JSON object only.\n\n"
                    if isinstance(err, LLMOutputError)
                    else ""
                )
                continue
            ctx.artifacts.text(f"07_author_try{attempt}_response.txt", res.text)
            rev = res.parsed
            built, reports = self._build(ctx, rev, verifier, episodes, attempt)
            ctx.artifacts.json(
                f"08_verify_try{attempt}.json",
                {"passed": all(r.passed for r in reports), "reports": reports},
            )
            if built and all(r.passed for r in reports):
                for r in reports:
                    rate = "" if r.trigger_rate is None else f", trigger rate {r.trigger_rate:.2f}"
                    ctx.event(
                        "skill_verified",
                        "verify",
                        f"{r.op} {r.name} after {attempt} tries{rate}",
                        skill=r.name,
                    )
                return self._proposal(ctx, plan, rev, built, reports, diag)
            failed = [r for r in reports if not r.passed]
            text = "; ".join(f"{r.op} {r.name}: {r.feedback()}" for r in failed)
            ctx.event(
                "verification_failed",
                "verify",
                f"try {attempt}: {text}",
                raw_text=res.text,
                errors=[r.feedback() for r in failed],
            )
            lines = [
                "## Previous attempt failed",
                "",
                "Your previous revision was rejected. Fix the problems below and resubmit "
                "the whole revision. Trigger patterns must fire in at least "
                f"{cfg.min_trigger_rate:.0%} of the reservoir's trajectories: write broader "
                "patterns that match whole classes of actions, not specific objects.",
                "",
            ]
            lines += [f"- **{r.op.upper()} '{r.name}'**: {r.feedback()}" for r in failed]
            feedback = "\n".join(lines) + "\n\n"
        ctx.stop(
            "nothing_to_propose",
            "verify",
            f"no revision passed verification after {cfg.max_proposal_retries} tries",
        )
        return None

    def _proposal(
        self,
        ctx: PassContext,
        plan: RecommenderOutput,
        rev: AuthoredRevision,
        built: list[tuple[Operation, AuthoredOperation]],
        reports: list[SkillVerification],
        diag: _Diagnosis,
    ) -> Proposal:
        refs = [
            AssertionRef(
                id=g.id,
                text=f"{g.description} [{g.check_type} {g.params}]",
                passed=g.passed,
                failed=g.failed,
                example_episode_ids=list(g.failing_episode_ids),
            )
            for g in diag.grades
        ]
        parts = [plan.reasoning.strip(), rev.version_reasoning.strip()]
        parts += [f"{op.op} {op.name}: {a.reasoning}" for op, a in built if a.reasoning]
        return Proposal(
            operations=[op for op, _ in built],
            rationale="; ".join(p for p in parts if p)[:2000] or "published creator revision",
            assertions=refs,
            base_version=ctx.view.version,
            proposed_by=self.name,
            verification={r.name: r for r in reports},
            step=ctx.step,
        )


def _measured_diagnosis(
    grades: Sequence[AssertionGrade], groups: Sequence[InsightGroup], n: int
) -> str:
    """A diagnosis from numbers alone, for a pass whose diagnosis call failed."""
    parts = []
    if groups:
        parts.append(
            "Largest failure clusters: "
            + ", ".join(f"{g.label} ({len(g.insight_indices)} insights)" for g in groups[:4])
            + "."
        )
    low = sorted((g for g in grades if g.pass_rate is not None), key=lambda g: g.pass_rate or 0)
    if low:
        parts.append(
            "Lowest assertion pass rates over "
            f"{n} reservoir episodes: "
            + ", ".join(f"{g.id} {g.pass_rate:.2f} ({g.description})" for g in low[:3])
            + "."
        )
    return " ".join(parts) or "No diagnosis available."


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "skill"
    return f"{loc}: {err['msg']}"
