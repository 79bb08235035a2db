"""The LLM creator: analyse episodes, diagnose assertions, recommend, author, verify.

Exports ``LLMCreator``.

Stages (each a role prompt from ``reskill_gym/creator/prompts``, each answer parsed into a
``reskill_gym.creator.schemas`` model by the backend, which re-asks with the validation
error before giving up):

1. analysis - one call per sampled episode, run concurrently (``complete_many`` with
   ``analysis_workers`` threads, inside the backend's own in-flight bound);
2. diagnosis - one call: the batch's analyses + the current assertions -> create / update
   / retire changes, applied to the pass's copy of the assertion store;
3. recommend - one call: failing assertions + current skills -> add / modify / delete;
4. author - per add/modify, up to ``max_proposal_retries`` calls, each fed the verifier's
   report on the previous try; ``verify`` is the same code the rules creator uses.

Any LLM failure becomes a ``CreatorEvent`` (with the raw text of an unusable answer); a
stage that cannot continue ends the pass with a reason. Nothing here raises into callers.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from reskill_gym.creator.assertions import Assertion
from reskill_gym.creator.config import StageSampling
from reskill_gym.creator.pipeline import PassContext, finish_proposal, sample_for_analysis
from reskill_gym.creator.prompts import PromptSet, render_episode, render_skills
from reskill_gym.creator.results import Proposal, SkillVerification
from reskill_gym.creator.schemas import (
    AuthoredSkill,
    DiagnosisOutput,
    EpisodeAnalysis,
    Recommendation,
    RecommendationOutput,
)
from reskill_gym.creator.verify import schema_failure
from reskill_gym.episode import Episode
from reskill_gym.llm import CompletionRequest, LLMBackend, LLMError, LLMOutputError
from reskill_gym.skills import Operation, SkillError

__all__ = ["LLMCreator"]


def _sampling(stage: StageSampling) -> dict[str, Any]:
    """``complete`` keywords of one stage's sampling."""
    return {"max_tokens": stage.max_tokens, "temperature": stage.temperature}


def _assertion_lines(items: list[Assertion], with_examples: bool = False) -> str:
    out = []
    for a in items:
        ex = f" examples: {', '.join(a.example_episode_ids)}" if with_examples else ""
        out.append(f"- {a.id} ({a.passed}/{a.failed}){ex}: {a.text}")
    return "\n".join(out) or "(none yet)"


class LLMCreator:
    """One pass over a ``PassContext`` with an ``LLMBackend``."""

    def __init__(self, backend: LLMBackend, prompts: PromptSet) -> None:
        self.backend = backend
        self.prompts = prompts

    @property
    def name(self) -> str:
        return f"{self.backend.name}:{self.backend.model}"

    # ------------------------------------------------------------------ stages
    def run(self, ctx: PassContext) -> Proposal | None:
        episodes = sample_for_analysis(ctx)
        if episodes is None:
            return None
        ctx.checkpoint()
        analyses = self.analyse(ctx, episodes)
        if not analyses:
            ctx.stop("llm_error", "analysis", f"all {len(episodes)} episode analyses failed")
            return None
        ctx.checkpoint()
        if not self.diagnose(ctx, episodes, analyses):
            return None
        ctx.checkpoint()
        failing = ctx.store.failing(ctx.config.failing_assertion_min_rate)
        if not failing:
            ctx.stop("nothing_to_propose", "recommend", "no failing assertion after diagnosis")
            return None
        recs = self.recommend(ctx, failing)
        if recs is None:
            return None
        ctx.checkpoint()
        accepted: list[tuple[Operation, SkillVerification, list[Assertion], str]] = []
        for rec in recs:
            ctx.checkpoint()
            if len(accepted) >= ctx.config.max_operations_per_pass:
                break
            got = self.author(ctx, rec, [op for op, *_ in accepted])
            if got is not None:
                assertions = [ctx.store.get(i) for i in rec.assertion_ids if i in ctx.store]
                accepted.append((got[0], got[1], assertions, rec.reason))
        return finish_proposal(ctx, accepted, self.name)

    def analyse(self, ctx: PassContext, episodes: list[Episode]) -> dict[str, EpisodeAnalysis]:
        cfg = ctx.config
        skills = render_skills(ctx.view.skills)
        reqs = [
            CompletionRequest(
                messages=self.prompts["analyst"].render(
                    env_id=ep.env_id,
                    skills=skills,
                    episode_id=ep.episode_id,
                    task_type=ep.task_type or "unknown",
                    outcome="success" if ep.success else "failure",
                    reward=f"{ep.reward:g}",
                    episode=render_episode(
                        ep,
                        max_chars=cfg.max_episode_chars,
                        max_observation_chars=cfg.max_observation_chars,
                    ),
                ),
                schema=EpisodeAnalysis,
                max_tokens=cfg.sampling.analysis.max_tokens,
                temperature=cfg.sampling.analysis.temperature,
            )
            for ep in episodes
        ]
        results = self.backend.complete_many(reqs, max_workers=cfg.analysis_workers)
        out: dict[str, EpisodeAnalysis] = {}
        for ep, res in zip(episodes, results):
            if isinstance(res, LLMError):
                ctx.llm_failure("analysis", res, episode_id=ep.episode_id)
                continue
            a = res.parsed
            assert isinstance(a, EpisodeAnalysis)
            # The transcript is the ground truth for id and outcome, not the model's echo.
            out[ep.episode_id] = a.model_copy(
                update={
                    "episode_id": ep.episode_id,
                    "outcome": "success" if ep.success else "failure",
                }
            )
        return out

    def diagnose(
        self, ctx: PassContext, episodes: list[Episode], analyses: dict[str, EpisodeAnalysis]
    ) -> bool:
        by_id = {e.episode_id: e for e in episodes}
        lines = []
        for eid, a in analyses.items():
            ep = by_id[eid]
            parts = [f"- {eid} ({a.outcome}, {ep.task_type or 'task'}): {a.summary}"]
            if a.mistakes:
                parts.append(f"  mistakes: {'; '.join(a.mistakes)}")
            if a.good_moves:
                parts.append(f"  good: {'; '.join(a.good_moves)}")
            if a.misleading_skills:
                parts.append(f"  misleading skills: {', '.join(a.misleading_skills)}")
            lines.append("\n".join(parts))
        msgs = self.prompts["diagnostician"].render(
            assertions=_assertion_lines(ctx.store.all()),
            analyses="\n".join(lines),
            n_episodes=len(analyses),
            n_failed=sum(a.outcome == "failure" for a in analyses.values()),
        )
        try:
            out = self.backend.complete(
                msgs, DiagnosisOutput, **_sampling(ctx.config.sampling.diagnosis)
            ).parsed
        except LLMError as e:
            ctx.llm_failure("diagnosis", e)
            ctx.reason = f"diagnosis failed: {type(e).__name__}"
            return False
        assert isinstance(out, DiagnosisOutput)
        applied = 0
        for ch in out.changes:
            known = [i for i in ch.example_episode_ids if i in analyses]
            if len(known) < len(ch.example_episode_ids):
                ctx.event(
                    "rejected",
                    "diagnosis",
                    f"dropped example ids not in the batch: "
                    f"{sorted(set(ch.example_episode_ids) - set(known))}",
                )
            types = {by_id[i].task_type for i in known if by_id[i].task_type}
            ch = ch.model_copy(
                update={
                    "example_episode_ids": known,
                    "task_types": sorted(set(ch.task_types) | types),
                }
            )
            try:
                ctx.store.apply(ch, step=ctx.step)
                applied += 1
            except KeyError as e:
                ctx.event("rejected", "diagnosis", f"{ch.op} ignored: {e.args[0]}")
        ctx.event(
            "assertions_updated",
            "diagnosis",
            f"{applied} of {len(out.changes)} assertion changes applied; "
            f"{len(ctx.store.all())} active",
        )
        return True

    def recommend(self, ctx: PassContext, failing: list[Assertion]) -> list[Recommendation] | None:
        cfg = ctx.config
        msgs = self.prompts["recommender"].render(
            assertions=_assertion_lines(failing, with_examples=True),
            skills=render_skills(ctx.view.skills),
            max_operations=cfg.max_operations_per_pass,
        )
        try:
            out = self.backend.complete(
                msgs, RecommendationOutput, **_sampling(cfg.sampling.recommend)
            ).parsed
        except LLMError as e:
            ctx.llm_failure("recommend", e)
            ctx.reason = f"recommendation failed: {type(e).__name__}"
            return None
        assert isinstance(out, RecommendationOutput)
        recs = []
        for rec in out.recommendations:
            ids = [i for i in rec.assertion_ids if i in ctx.store]
            if not ids:
                ctx.event(
                    "rejected",
                    "recommend",
                    f"{rec.op} {rec.skill_name!r} cites no known assertion ({rec.assertion_ids})",
                    skill=rec.skill_name,
                )
                continue
            recs.append(rec.model_copy(update={"assertion_ids": ids}))
        if not recs:
            ctx.stop(
                "nothing_to_propose", "recommend", "the recommender proposed no usable operation"
            )
            return None
        return recs[: cfg.max_operations_per_pass * 2]

    def _targets(self, ctx: PassContext, rec: Recommendation) -> list[Episode]:
        ids = list(rec.target_episode_ids)
        for aid in rec.assertion_ids:
            ids += ctx.store.get(aid).example_episode_ids
        eps = ctx.episodes_by_id(ids)
        failed = [e for e in eps if not e.success]
        return failed or eps

    def author(
        self, ctx: PassContext, rec: Recommendation, accepted: list[Operation]
    ) -> tuple[Operation, SkillVerification] | None:
        cfg = ctx.config
        if rec.op == "delete":
            try:
                op = Operation.delete(rec.skill_name)
            except SkillError as e:
                ctx.event(
                    "rejected", "recommend", f"delete {rec.skill_name!r}: {e}", skill=rec.skill_name
                )
                return None
            rep = ctx.verifier.verify(op, [], accepted=accepted)
            if not rep.passed:
                ctx.event("verification_failed", "verify", rep.feedback(), skill=rec.skill_name)
                return None
            ctx.event("skill_verified", "verify", f"delete {rec.skill_name}", skill=rec.skill_name)
            return op, rep
        targets = self._targets(ctx, rec)
        assertions = [ctx.store.get(i) for i in rec.assertion_ids]
        current = ""
        if rec.op == "modify" and rec.skill_name in ctx.view:
            s = ctx.view.get(rec.skill_name)
            current = "Current version of the skill:\n" + json.dumps(
                {
                    "name": s.name,
                    "description": s.description,
                    "content": s.content,
                    "trigger_type": s.trigger.type,
                    "trigger_pattern": s.trigger.pattern,
                }
            )
        episodes_text = "\n\n".join(
            render_episode(
                e,
                max_chars=cfg.max_episode_chars // 2,
                max_observation_chars=cfg.max_observation_chars,
            )
            for e in targets[:3]
        )
        others = [s for s in ctx.view.skills if s.name != rec.skill_name]
        feedback = ""
        for attempt in range(1, cfg.max_proposal_retries + 1):
            msgs = self.prompts["author"].render(
                op=rec.op,
                name=rec.skill_name,
                reason=rec.reason,
                assertions=_assertion_lines(assertions),
                current_skill=current,
                episodes=episodes_text or "(none in the reservoir)",
                skills=render_skills(others),
                feedback=feedback,
                max_chars=cfg.max_skill_content_chars,
            )
            try:
                comp = self.backend.complete(msgs, AuthoredSkill, **_sampling(cfg.sampling.author))
            except LLMOutputError as e:
                ctx.llm_failure("author", e, skill=rec.skill_name)
                feedback = (
                    f"\nYour previous answer could not be parsed ({e.errors[-1] if e.errors else e}). "
                    "Answer with the JSON object only."
                )
                continue
            except LLMError as e:
                ctx.llm_failure("author", e, skill=rec.skill_name)
                return None
            authored = comp.parsed
            assert isinstance(authored, AuthoredSkill)
            if rec.op == "modify":
                authored = authored.model_copy(update={"name": rec.skill_name})
            try:
                skill = authored.to_skill(
                    step=ctx.step, proposed_by=self.name, rationale=rec.reason
                )
            except (SkillError, ValidationError) as e:
                rep = schema_failure(
                    rec.op,
                    authored.name,
                    str(e).splitlines()[0] if isinstance(e, SkillError) else _first_error(e),
                    attempt,
                )
            else:
                op = Operation.add(skill) if rec.op == "add" else Operation.modify(skill)
                rep = ctx.verifier.verify(op, targets, attempts=attempt, accepted=accepted)
                if rep.passed:
                    ctx.event(
                        "skill_verified",
                        "verify",
                        f"{rec.op} {skill.name} after {attempt} tries (trigger rate {rep.trigger_rate})",
                        skill=skill.name,
                    )
                    return op, rep
            ctx.event(
                "verification_failed",
                "verify",
                f"try {attempt}: {rep.feedback()}",
                skill=rec.skill_name,
                raw_text=comp.text,
                errors=[rep.feedback()],
            )
            feedback = (
                f"\nYour previous answer was rejected by the verifier: {rep.feedback()}\n"
                f"Previous answer: {comp.text[:1500]}\nFix these problems."
            )
        ctx.event(
            "rejected",
            "author",
            f"{rec.op} {rec.skill_name!r} dropped after {cfg.max_proposal_retries} tries",
            skill=rec.skill_name,
        )
        return None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "skill"
    return f"{loc}: {err['msg']}"
