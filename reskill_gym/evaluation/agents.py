"""Evaluation agents: one ``--agent`` spec string -> something that maps a turn to an action.

Exports ``AgentSpec``, ``AgentKind``, ``ActionMode``, ``ParseOutcome``, ``TurnDecision``,
``Agent``, ``LLMAgent``, ``ScoreAgent``, ``CallableAgent``, ``AgentRefusalError``,
``parse_agent_spec``, ``parse_action``, ``make_agent`` and ``AGENT_KINDS``.

Specs (the same strings as ``reskill_gym.llm`` backends, plus user callables):

- ``anthropic:<model>``               Claude through the Messages API (``ANTHROPIC_API_KEY``)
- ``openai:<base_url>#<model>``       any OpenAI-compatible server (vLLM, SGLang, Ollama, ...)
- ``local:<path|default>``            a transformers model here (``default``: SmolLM2-135M)
- ``python:<module>:<function>``      ``function(messages, info) -> str``, your own policy

Action modes: ``generate`` (free text; for envs with admissible actions the reply is mapped
to one by :func:`parse_action`, and the outcome ``exact``/``contained``/``raw`` is recorded;
for envs without them, e.g. Search, the text itself is the action and the env parses its tags)
and ``score`` (``local:`` only: every admissible action is scored by its summed token
log-probability; the argmax is taken at ``temperature=0`` - the evaluation default, so runs
are deterministic - else one is sampled from ``softmax(logp / temperature)`` with the
episode's seeded generator).

>>> parse_agent_spec("python:my_pkg.policies:act").target
'my_pkg.policies:act'
>>> parse_action("I think: > go to desk 1.", ["look", "go to desk 1", "go to desk 10"])
('go to desk 1', 'contained')
"""

from __future__ import annotations

import importlib
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from reskill_gym.llm import LLMConfigError, parse_spec

__all__ = [
    "AgentSpec",
    "AgentKind",
    "ActionMode",
    "ParseOutcome",
    "TurnDecision",
    "Agent",
    "LLMAgent",
    "ScoreAgent",
    "CallableAgent",
    "AgentRefusalError",
    "parse_agent_spec",
    "parse_action",
    "make_agent",
    "AGENT_KINDS",
]

log = logging.getLogger(__name__)

AgentKind = Literal["anthropic", "bedrock", "openai", "local", "python"]
ActionMode = Literal["generate", "score"]
ParseOutcome = Literal["exact", "contained", "raw", "text", "score", "empty"]
AGENT_KINDS: dict[str, str] = {
    "anthropic": "anthropic:<model>",
    "bedrock": "bedrock:<model>",
    "openai": "openai:<base_url>#<model>",
    "local": "local:<path|default>",
    "python": "python:<module>:<function>",
}

_REFUSAL_STOPS = frozenset({"refusal", "content_filter"})


class AgentRefusalError(RuntimeError):
    """The model declined or returned nothing usable (empty text, refusal stop reason)."""


class AgentSpec(BaseModel):
    """A parsed ``--agent`` spec: ``kind`` and what follows the first colon (``target``)."""

    model_config = ConfigDict(frozen=True)

    spec: str
    kind: AgentKind
    target: str


def parse_agent_spec(spec: str) -> AgentSpec:
    """Validate an agent spec; LLM kinds are checked by ``reskill_gym.llm.parse_spec``.

    >>> parse_agent_spec("python:nocolon")
    Traceback (most recent call last):
    ...
    reskill_gym.llm.errors.LLMConfigError: agent spec 'python:nocolon': expected python:<module>:<function>
    """
    spec = (spec or "").strip()
    kind, _, rest = spec.partition(":")
    if kind.lower() == "python":
        module, _, func = rest.rpartition(":")
        if not module or not func.isidentifier():
            raise LLMConfigError(f"agent spec {spec!r}: expected python:<module>:<function>")
        return AgentSpec(spec=spec, kind="python", target=f"{module}:{func}")
    try:
        cfg = parse_spec(spec)
    except LLMConfigError as e:
        raise LLMConfigError(
            f"{e.message} (or python:<module>:<function> for a callable)"
        ) from None
    return AgentSpec(spec=spec, kind=cfg.backend, target=rest.strip())


# ----- parsing ---------------------------------------------------------------------------
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_PREFIX = re.compile(r"^(?:action|command|next action|answer)\s*[:=-]\s*", re.IGNORECASE)


def _clean(line: str) -> str:
    line = _FENCE.sub("", line.strip())
    line = line.strip().lstrip(">").strip()
    line = _PREFIX.sub("", line)
    return " ".join(line.strip().strip("`'\"*").rstrip(".!").split()).lower()


def parse_action(text: str, admissible: Sequence[str] | None) -> tuple[str, ParseOutcome]:
    """Map a free-text reply to an action: exact, else contained admissible command, else raw.

    *Exact*: the whole reply, or one of its lines, equals an admissible command after
    stripping code fences, quotes, a leading ``>`` / ``Action:`` and a final period (case
    ignored). *Contained*: the longest admissible command that occurs in the reply on word
    boundaries (longest first, so ``go to cabinet 10`` beats ``go to cabinet 1``); ties go
    to the one mentioned last (models tend to reason first and act at the end). *Raw*: the
    reply's first non-empty line, whitespace-normalised (the env then judges it).

    >>> parse_action("go to desk 1", ["look", "go to desk 1"])
    ('go to desk 1', 'exact')
    >>> parse_action("Thought: find it.\\nAction: open drawer 2", ["open drawer 1", "open drawer 2"])
    ('open drawer 2', 'exact')
    >>> parse_action("dance wildly", ["look"])
    ('dance wildly', 'raw')
    >>> parse_action("   ", ["look"])
    ('', 'empty')
    """
    lines = [
        ln for ln in text.strip().splitlines() if ln.strip() and not ln.strip().startswith("```")
    ]
    if not lines:
        return "", "empty"
    if not admissible:
        return " ".join(lines[0].split()), "raw"
    by_lower = {c.lower(): c for c in admissible}
    whole = _clean(" ".join(lines))
    if whole in by_lower:
        return by_lower[whole], "exact"
    for line in reversed(lines):
        cleaned = _clean(line)
        if cleaned in by_lower:
            return by_lower[cleaned], "exact"
    flat = " ".join(text.lower().split())
    best: tuple[int, int, str] | None = None
    for cmd in admissible:
        pattern = r"(?<![\w])" + re.escape(" ".join(cmd.lower().split())) + r"(?![\w])"
        hits = [m.start() for m in re.finditer(pattern, flat)]
        if hits:
            key = (len(cmd), hits[-1], cmd)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is not None:
        return best[2], "contained"
    return " ".join(lines[0].split()), "raw"


# ----- agents ----------------------------------------------------------------------------
@dataclass
class TurnDecision:
    """What an agent did on one turn, with its cost."""

    action: str
    parse: ParseOutcome
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 1
    choice_prob: float | None = None


class Agent(Protocol):
    """An evaluation agent. ``act`` may raise ``LLMError`` / ``AgentRefusalError``; the
    runner retries and, when retries are spent, records an error episode."""

    name: str

    def act(
        self,
        messages: list[dict[str, str]],
        info: Mapping[str, Any],
        rng: np.random.Generator,
    ) -> TurnDecision: ...

    def close(self) -> None: ...


class LLMAgent:
    """Free-text generation through any ``reskill_gym.llm`` backend, parsed per turn.

    >>> from reskill_gym.llm.base import BaseBackend, RawAnswer
    >>> from reskill_gym.llm.config import LLMConfig
    >>> class Fixed(BaseBackend):
    ...     name = "fixed"
    ...     def _send(self, messages, **kw): return RawAnswer(text="Action: look", output_tokens=2)
    >>> agent = LLMAgent(Fixed(LLMConfig(backend="local")))
    >>> d = agent.act([{"role": "user", "content": "?"}], {"admissible_actions": ["look"]}, None)
    >>> d.action, d.parse, d.output_tokens
    ('look', 'exact', 2)
    """

    def __init__(self, backend: Any, *, max_tokens: int = 256, temperature: float = 0.0) -> None:
        self.backend = backend
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.name = f"{backend.name}:{backend.model}"

    def act(
        self,
        messages: list[dict[str, str]],
        info: Mapping[str, Any],
        rng: np.random.Generator | None,
    ) -> TurnDecision:
        c = self.backend.complete(
            messages, max_tokens=self.max_tokens, temperature=self.temperature
        )
        if (c.stop_reason or "") in _REFUSAL_STOPS or not c.text.strip():
            raise AgentRefusalError(
                f"{self.name}: {'refusal' if c.text.strip() else 'empty reply'} "
                f"(stop_reason={c.stop_reason!r})"
            )
        admissible = info.get("admissible_actions")
        if admissible:
            action, outcome = parse_action(c.text, admissible)
        else:
            action, outcome = c.text.strip(), "text"
        return TurnDecision(
            action=action,
            parse=outcome,
            text=c.text,
            input_tokens=c.usage.input_tokens,
            output_tokens=c.usage.output_tokens,
            cost_usd=c.cost_usd,
            attempts=c.attempts,
        )

    def close(self) -> None:
        self.backend.close()


class ScoreAgent:
    """Pick an admissible action by the local model's summed log-probability (``score`` mode)."""

    def __init__(self, backend: Any, *, temperature: float = 0.0) -> None:
        if not hasattr(backend, "score"):
            raise LLMConfigError(f"score mode needs a local: backend, got {backend.name!r}")
        self.backend = backend
        self.temperature = temperature
        self.name = f"{backend.name}:{backend.model}"

    def act(
        self,
        messages: list[dict[str, str]],
        info: Mapping[str, Any],
        rng: np.random.Generator | None,
    ) -> TurnDecision:
        admissible = list(info.get("admissible_actions") or [])
        if not admissible:
            raise LLMConfigError(
                "score mode needs info['admissible_actions'] (this env lists none); "
                "use --mode generate"
            )
        before = self.backend.usage.input_tokens
        scores = np.asarray(self.backend.score(messages, admissible), dtype=np.float64)
        # prompt + candidate tokens read (exact with one worker; shared backends may interleave)
        read = self.backend.usage.input_tokens - before
        z = scores / self.temperature if self.temperature > 0 else scores
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        if self.temperature > 0:
            if rng is None:
                raise ValueError("ScoreAgent with temperature > 0 needs a seeded rng")
            k = int(rng.choice(len(admissible), p=probs))
        else:
            k = int(np.argmax(scores))
        return TurnDecision(
            action=admissible[k],
            parse="score",
            text=admissible[k],
            input_tokens=max(0, read),
            choice_prob=float(probs[k]) if math.isfinite(float(probs[k])) else None,
        )

    def close(self) -> None:
        self.backend.close()


class CallableAgent:
    """A user's ``function(messages, info) -> str``; the reply is parsed like an LLM's.

    >>> agent = CallableAgent(lambda messages, info: "open door", name="door")
    >>> agent.act([], {"admissible_actions": ["open door"]}, None).parse
    'exact'
    """

    def __init__(
        self, fn: Callable[[list[dict[str, str]], Mapping[str, Any]], str], *, name: str
    ) -> None:
        self.fn = fn
        self.name = name

    def act(
        self,
        messages: list[dict[str, str]],
        info: Mapping[str, Any],
        rng: np.random.Generator | None,
    ) -> TurnDecision:
        reply = self.fn(messages, info)
        if not isinstance(reply, str):
            raise TypeError(f"{self.name} returned {type(reply).__name__}, expected str")
        if not reply.strip():
            raise AgentRefusalError(f"{self.name}: empty action")
        admissible = info.get("admissible_actions")
        if admissible:
            action, outcome = parse_action(reply, admissible)
        else:
            action, outcome = reply.strip(), "text"
        return TurnDecision(action=action, parse=outcome, text=reply)

    def close(self) -> None:
        return None


def _load_callable(target: str) -> Callable[..., str]:
    module_name, _, attr = target.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise LLMConfigError(f"agent python:{target}: cannot import {module_name!r}: {e}") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise LLMConfigError(f"agent python:{target}: {module_name} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def make_agent(
    spec: str | AgentSpec,
    *,
    mode: ActionMode = "generate",
    temperature: float = 0.0,
    max_tokens: int = 256,
    llm_overrides: Mapping[str, Any] | None = None,
) -> Agent:
    """Build the agent a spec names. ``llm_overrides`` go to the backend's ``LLMConfig``
    (``max_retries``, ``timeout_s``, ``backoff_base_s``, ``device``, ...)."""
    from reskill_gym.llm import make_backend

    parsed = spec if isinstance(spec, AgentSpec) else parse_agent_spec(spec)
    if mode not in ("generate", "score"):
        raise LLMConfigError(f"mode must be 'generate' or 'score', got {mode!r}")
    if parsed.kind == "python":
        if mode == "score":
            raise LLMConfigError(
                "score mode is for local: agents; python: callables choose actions"
            )
        return CallableAgent(_load_callable(parsed.target), name=parsed.spec)
    if mode == "score" and parsed.kind != "local":
        raise LLMConfigError(
            f"score mode needs token log-probs of a local model; {parsed.kind}: agents use "
            "--mode generate"
        )
    backend = make_backend(parsed.spec, **dict(llm_overrides or {}))
    if mode == "score":
        return ScoreAgent(backend, temperature=temperature)
    return LLMAgent(backend, max_tokens=max_tokens, temperature=temperature)
