"""Prompt templates (Markdown, package data) and the text renderings they are filled with.

Exports ``PromptTemplate``, ``PromptSet``, ``ROLES``, ``render_episode`` and
``render_skills``.

One file per role with a ``# System`` and a ``# User`` section: the project pipeline's
``analyst.md``, ``diagnostician.md``, ``recommender.md``, ``author.md``, and the published
pipeline's ``contrastive_analyst.md``, ``batch_diagnoser.md``, ``skill_recommender.md``,
``skill_author.md`` (their inputs and outputs follow the published ReSkill prompts); ``$name`` placeholders are
filled with ``string.Template`` (so JSON braces in a prompt need no escaping). A folder
given as ``CreatorConfig.prompts_dir`` overrides the packaged files one by one; a template
that uses a placeholder its role does not provide fails at load, naming the file.

>>> ps = PromptSet.load()
>>> msgs = ps["analyst"].render(env_id="x", skills="(none)", episode_id="e1", task_type="t",
...                             outcome="failure", reward="0.0", episode="...")
>>> [m["role"] for m in msgs], "e1" in msgs[1]["content"]
(['system', 'user'], True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from reskill_gym import safe_files
from reskill_gym.episode import Episode
from reskill_gym.skills import Skill

__all__ = ["PromptTemplate", "PromptSet", "ROLES", "render_episode", "render_skills"]

#: Placeholders each role's template may use.
ROLES: dict[str, frozenset[str]] = {
    "analyst": frozenset(
        {"env_id", "skills", "episode_id", "task_type", "outcome", "reward", "episode"}
    ),
    "diagnostician": frozenset({"assertions", "analyses", "n_episodes", "n_failed"}),
    "recommender": frozenset({"assertions", "skills", "max_operations"}),
    "author": frozenset(
        {
            "op",
            "name",
            "reason",
            "assertions",
            "current_skill",
            "episodes",
            "skills",
            "feedback",
            "max_chars",
        }
    ),
    "contrastive_analyst": frozenset({"env_id", "skills", "group"}),
    "batch_diagnoser": frozenset(
        {
            "assertion_pass_rates",
            "n_reservoir",
            "insight_summaries",
            "current_assertions",
            "n_assertions",
            "max_assertions",
            "skills",
            "min_groups",
            "max_groups",
        }
    ),
    "skill_recommender": frozenset(
        {
            "action_vocabulary",
            "insight_groups",
            "diagnosis",
            "graded_assertions",
            "library",
            "version_history",
            "max_library_skills",
            "min_operations",
            "max_operations",
            "trigger_types",
            "trigger_type_names",
        }
    ),
    "skill_author": frozenset(
        {
            "feedback",
            "recommendations",
            "referenced_skills",
            "referenced_insights",
            "library",
            "action_vocabulary",
            "max_chars",
            "trigger_types",
        }
    ),
}
_SECTION = re.compile(r"^#\s+(system|user)\s*$", re.IGNORECASE | re.MULTILINE)


def _identifiers(t: Template) -> set[str]:
    out: set[str] = set()
    for m in t.pattern.finditer(t.template):
        name = m.group("named") or m.group("braced")
        if name:
            out.add(name)
    return out


@dataclass(frozen=True)
class PromptTemplate:
    """A role's system and user templates."""

    role: str
    system: Template
    user: Template
    source: str

    @classmethod
    def parse(cls, role: str, text: str, source: str) -> PromptTemplate:
        """Split ``# System`` / ``# User`` sections and check the placeholders."""
        if role not in ROLES:
            raise ValueError(f"{source}: unknown prompt role {role!r}; roles: {', '.join(ROLES)}")
        parts = _SECTION.split(text)
        sections: dict[str, str] = {}
        for i in range(1, len(parts) - 1, 2):
            sections[parts[i].lower()] = parts[i + 1].strip()
        if "user" not in sections:
            raise ValueError(f"{source}: needs a '# User' section (and usually '# System')")
        system, user = Template(sections.get("system", "")), Template(sections["user"])
        unknown = (_identifiers(system) | _identifiers(user)) - ROLES[role]
        if unknown:
            raise ValueError(
                f"{source}: unknown placeholder(s) {', '.join('$' + u for u in sorted(unknown))}; "
                f"role {role!r} provides {', '.join('$' + k for k in sorted(ROLES[role]))}"
            )
        return cls(role, system, user, source)

    def render(self, **values: object) -> list[dict[str, str]]:
        """Chat messages (a system message only when the template has one)."""
        vals = {k: str(v) for k, v in values.items()}
        user = self.user.safe_substitute(vals)
        system = self.system.safe_substitute(vals)
        msgs = [{"role": "system", "content": system}] if system else []
        return [*msgs, {"role": "user", "content": user}]


class PromptSet(Mapping[str, PromptTemplate]):
    """The role templates: packaged defaults, overridden file by file from a folder."""

    def __init__(self, templates: Mapping[str, PromptTemplate]) -> None:
        self._t = dict(templates)

    @classmethod
    def load(cls, override_dir: str | Path | None = None) -> PromptSet:
        out: dict[str, PromptTemplate] = {}
        pkg = resources.files("reskill_gym.creator").joinpath("prompts")
        for role in ROLES:
            path = Path(override_dir) / f"{role}.md" if override_dir is not None else None
            if path is not None and path.is_file():
                out[role] = PromptTemplate.parse(role, safe_files.read_text(path), str(path))
            else:
                ref = pkg.joinpath(f"{role}.md")
                out[role] = PromptTemplate.parse(
                    role, ref.read_text(encoding="utf-8"), f"reskill_gym/creator/prompts/{role}.md"
                )
        return cls(out)

    def __getitem__(self, role: str) -> PromptTemplate:
        return self._t[role]

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def render_episode(ep: Episode, *, max_chars: int = 3000, max_observation_chars: int = 240) -> str:
    """A compact transcript: one line per turn with the observation, action and flags.

    Long episodes keep their first and last turns (where tasks are set and lost).

    >>> from reskill_gym.episode import Turn
    >>> ep = Episode(episode_id="e", env_id="x", task_id="t", task="heat an egg",
    ...              turns=[Turn(observation="You are in a kitchen.", action="heat egg 1",
    ...                          invalid_action=True, skill_ids=["plan@1"])])
    >>> print(render_episode(ep))
    Task: heat an egg
    [0] obs: You are in a kitchen. | skills: plan@1
        action: heat egg 1   (REJECTED by the engine)
    """
    lines = [f"Task: {_clip(ep.task, 300)}"]
    body: list[str] = []
    for i, t in enumerate(ep.turns):
        skills = f" | skills: {', '.join(t.skill_ids)}" if t.skill_ids else ""
        flag = "   (REJECTED by the engine)" if t.invalid_action else ""
        body.append(
            f"[{i}] obs: {_clip(t.observation, max_observation_chars)}{skills}\n"
            f"    action: {_clip(t.action, 200)}{flag}"
        )
    if ep.final_observation:
        body.append(f"[end] obs: {_clip(ep.final_observation, max_observation_chars)}")
    budget = max_chars - len(lines[0])
    if sum(len(b) + 1 for b in body) > budget and len(body) > 2:
        head: list[str] = []
        tail: list[str] = []
        used = 40
        lo, hi = 0, len(body) - 1
        while lo <= hi:
            nxt = body[lo] if len(head) <= len(tail) else body[hi]
            if used + len(nxt) + 1 > budget:
                break
            used += len(nxt) + 1
            if len(head) <= len(tail):
                head.append(nxt)
                lo += 1
            else:
                tail.insert(0, nxt)
                hi -= 1
        body = [*head, f"... ({hi - lo + 1} turns omitted) ...", *tail]
    return "\n".join(lines + body)


def render_skills(skills: Iterable[Skill], max_content_chars: int = 200) -> str:
    """One line per skill: ``name [trigger: pattern] -> content``."""
    out = []
    for s in skills:
        trig = s.trigger.type + (f" /{s.trigger.pattern}/" if s.trigger.pattern else "")
        out.append(f"- {s.name} [{trig}] -> {_clip(s.content, max_content_chars)}")
    return "\n".join(out) or "(no skills)"
