"""Per-turn skill injection as a Gymnasium wrapper.

Exports ``SkillWrapper``, ``strip_skill_block`` and ``SKILL_SEPARATOR``.

How the observation becomes a model prompt (skill block as its own segment, history, admissible
actions) is the rollout contract's job: :mod:`reskill_gym.rollout`.

The wrapper is the only place skills meet an environment: on every ``reset`` and ``step`` it
builds a :class:`~reskill_gym.skills.TurnContext` (turn index, previous action, observation,
task text), asks the pinned library view for the bundle and appends the rendered block to
the observation. The library version is pinned at ``reset()``, so a version change during
training never alters a running episode.

Observation layout (what the agent reads each turn)::

    <bare observation from the engine>
    <SKILL_SEPARATOR>
    <bundle text, e.g. "## Skills\\n### open-before-take\\n...">

With no skill firing the observation is exactly the engine's, unless the template shows a
placeholder for an empty bundle (the ``published`` template's ``(no skills available)``); with
no library (``skills=None``) it is always the engine's. ``info`` carries
``observation`` (the bare text), ``skill_ids``, ``library_version``, ``bundle_text``,
``bundle_chars`` and, at episode end, ``skill_log`` (one entry per turn).

>>> from reskill_gym.skills import LibraryView, Skill, Trigger
>>> from reskill_gym.envs.base import TextEnv, EngineStep
>>> class Echo(TextEnv):
...     def task_ids(self, split=None): return ["t0"]
...     def _engine_reset(self, task_id, seed, options):
...         return "You are in a room.", {"task": "open the door", "task_type": "door"}
...     def _engine_step(self, action):
...         return EngineStep(f"You {action}.", 0.0, action == "open door", action == "open door")
>>> view = LibraryView("v1", [Skill(name="look-first", description="d", content="Look around.",
...                                  trigger=Trigger(type="beginning"))])
>>> env = SkillWrapper(Echo(max_turns=3), view)
>>> obs, info = env.reset(seed=0)
>>> info["skill_ids"], info["library_version"]
(('look-first@1',), 'v1')
>>> strip_skill_block(obs, info)
'You are in a room.'
>>> obs, *_ , info = env.step("look")
>>> info["skill_ids"]
()
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from reskill_gym.skills import (
    LibraryView,
    TurnContext,
)
from reskill_gym.skills.bundle import (
    DEFAULT_BUDGET_CHARS,
    DEFAULT_MAX_ACTIVE_SKILLS,
    TemplateSpec,
    resolve_template,
)
from reskill_gym.skills.source import SkillSource, open_source

__all__ = ["SkillWrapper", "strip_skill_block", "SKILL_SEPARATOR"]

logger = logging.getLogger(__name__)

SKILL_SEPARATOR = "\n\n"


class SkillWrapper(gym.Wrapper[str, str, str, str]):
    """Append the active skill bundle to every observation of a text environment.

    Args:
        env: a text environment whose ``info`` carries ``task`` at reset.
        skills: a fixed ``LibraryView`` (frozen: evaluation uses this), a ``SkillLibrary``
            (HEAD is read at every ``reset``), a path (a library with history, or a plain
            folder of skill folders, read once; ``PATH@VERSION`` pins a version: see
            :mod:`reskill_gym.skills.source`), or ``None`` (no skills: the observation is
            the engine's, the info keys are still present).
        version: pin one version of a library / path.
        max_active_skills: cap on skills per turn.
        skill_budget_chars: cap on the rendered block's characters.
        template: how the bundle is rendered: a template name (``"compact"``, the default,
            or ``"published"``: the published ReSkill skills section, see
            ``reskill_gym.skills.bundle.TEMPLATES``), a mapping (``{"base": "published",
            "show_examples": False}``), a ``BundleTemplate``, or a ``str.format`` item
            template (``"### {name}\\n{content}"``). An unknown name is an error with a
            close match.
    """

    def __init__(
        self,
        env: gym.Env[str, str],
        skills: SkillSource = None,
        *,
        version: str | None = None,
        max_active_skills: int = DEFAULT_MAX_ACTIVE_SKILLS,
        skill_budget_chars: int | None = DEFAULT_BUDGET_CHARS,
        template: TemplateSpec = None,
    ) -> None:
        super().__init__(env)
        if max_active_skills < 0:
            raise ValueError(f"max_active_skills must be >= 0, got {max_active_skills}")
        if skill_budget_chars is not None and skill_budget_chars < 0:
            raise ValueError(f"skill_budget_chars must be >= 0, got {skill_budget_chars}")
        self._fixed_view, self._library = open_source(skills, version)
        self.max_active_skills = max_active_skills
        self.skill_budget_chars = skill_budget_chars
        self.template = resolve_template(template)
        self._view: LibraryView | None = self._fixed_view
        self._task = ""
        self._log: list[dict[str, Any]] = []

    # -------------------------------------------------------------------------------------
    @property
    def view(self) -> LibraryView | None:
        """The library view pinned for the current episode."""
        return self._view

    def set_skills(self, skills: SkillSource, version: str | None = None) -> None:
        """Swap the library; takes effect at the next ``reset`` (never mid-episode)."""
        self._fixed_view, self._library = open_source(skills, version)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._view = self._library.view() if self._library is not None else self._fixed_view
        self._task = str(info.get("task", ""))
        self._log = []
        return self._augment(obs, info, turn=0, previous_action=None, done=False)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        turn = int(info.get("turn", len(self._log)))
        obs, info = self._augment(
            obs, info, turn=turn, previous_action=action, done=terminated or truncated
        )
        return obs, float(reward), terminated, truncated, info

    def _augment(
        self,
        obs: str,
        info: dict[str, Any],
        *,
        turn: int,
        previous_action: str | None,
        done: bool,
    ) -> tuple[str, dict[str, Any]]:
        info = dict(info)
        info["observation"] = obs
        view = self._view
        if view is None or done:
            # The episode is over: nothing will act on a bundle, so none is shown.
            ids: tuple[str, ...] = ()
            text = ""
        else:
            ctx = TurnContext(turn, previous_action, obs, self._task)
            bundle = view.select(
                ctx,
                max_active_skills=self.max_active_skills,
                budget_chars=self.skill_budget_chars,
                template=self.template,
            )
            ids, text = bundle.skill_ids, bundle.text
        self._log.append({"turn": turn, "skill_ids": list(ids)})
        info["skill_ids"] = ids
        info["library_version"] = view.version if view is not None else None
        info["bundle_text"] = text
        info["bundle_chars"] = len(text)
        if done:
            info["skill_log"] = list(self._log)
        return (obs + SKILL_SEPARATOR + text if text else obs), info


def strip_skill_block(observation: str, info: Mapping[str, Any]) -> str:
    """The bare engine observation from an augmented one (inverse of the wrapper's layout)."""
    text = info.get("bundle_text") or ""
    if not text:
        return observation
    suffix = SKILL_SEPARATOR + text
    if not observation.endswith(suffix):
        raise ValueError("observation does not end with this turn's skill block")
    return observation[: -len(suffix)]
