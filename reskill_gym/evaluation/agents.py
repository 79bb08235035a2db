"""Evaluation agents: one ``--agent`` spec string -> something that answers one turn.

Exports ``AgentSpec``, ``AgentKind``, ``ActionMode``, ``AgentReply``, ``AgentChoice``,
``Agent``, ``LLMAgent``, ``ScoreAgent``, ``CallableAgent``, ``AgentRefusalError``,
``parse_agent_spec``, ``normalize_agent_spec``, ``make_agent`` and ``AGENT_KINDS``.

Specs (the same strings as ``reskill_gym.llm`` backends, plus user callables):

- ``anthropic:<model>``               Claude through the Messages API (``ANTHROPIC_API_KEY``)
- ``openai:<base_url>#<model>``       any OpenAI-compatible server (vLLM, SGLang, Ollama, ...)
- ``local:<alias|dir|file.gguf>[#plain]`` a transformers model here (``default``: SmolLM2-135M;
  ``gemma3-270m``, ``qwen2.5-coder-1.5b``; ``#plain`` for a model without a chat template)
- ``python:<module>:<function>``      ``function(messages, info) -> str``, your own policy
- ``run:<run folder>``                the policy a ``reskill train`` run wrote (its
  ``policy/``, full or LoRA): shorthand for ``local:<run folder>``

An agent only *answers*; it never reads or maps a reply. The turn contract
(:class:`reskill_gym.rollout.RolloutSession`) builds the messages it sees and turns its
answer into an env action exactly as training does:

- ``generate`` agents (``LLMAgent``, ``CallableAgent``) return the reply text with its usage
  (:class:`AgentReply`); the session parses it under ``rollout.action_format`` (``tagged``
  ``<action>...</action>`` for ALFWorld/ScienceWorld, ``passthrough`` for Search,
  ``lenient`` on request);
- the ``score`` agent (``ScoreAgent``, ``local:`` only) returns a
  :class:`~reskill_gym.rollout.ScoreChoice` made by the one choice rule
  :func:`~reskill_gym.rollout.choose_action` from the model's per-token log-probs of every
  admissible command, with the run's ``score_norm`` and a uniform ``u`` drawn from the
  episode's seeded generator (``temperature=0``: the argmax, the evaluation default).

>>> parse_agent_spec("python:my_pkg.policies:act").target
'my_pkg.policies:act'
>>> CallableAgent(lambda messages, info: "<action>look</action>", name="f").act([], {}, None)
AgentReply(text='<action>look</action>', input_tokens=0, output_tokens=0, cost_usd=0.0)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from reskill_gym.llm import LLMConfigError, parse_spec
from reskill_gym.rollout import ScoreChoice, choose_action

__all__ = [
    "AgentSpec",
    "AgentKind",
    "ActionMode",
    "AgentReply",
    "AgentChoice",
    "Agent",
    "LLMAgent",
    "ScoreAgent",
    "CallableAgent",
    "AgentRefusalError",
    "parse_agent_spec",
    "normalize_agent_spec",
    "make_agent",
    "AGENT_KINDS",
]

log = logging.getLogger(__name__)

AgentKind = Literal["anthropic", "bedrock", "openai", "local", "python"]
ActionMode = Literal["generate", "score"]
AGENT_KINDS: dict[str, str] = {
    "anthropic": "anthropic:<model>",
    "bedrock": "bedrock:<model>",
    "openai": "openai:<base_url>#<model>",
    "local": "local:<alias|dir|file.gguf>[#plain]",
    "python": "python:<module>:<function>",
}

_REFUSAL_STOPS = frozenset({"refusal", "content_filter"})


class AgentRefusalError(RuntimeError):
    """The model declined to answer (a refusal stop reason): the runner re-asks the turn."""


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


def normalize_agent_spec(spec: str) -> str:
    """``run:<run>`` spelled as the ``local:`` spec it is; a ``local:`` run folder is checked
    here, so a run without a policy fails when the config is read, not after env start-up.

    >>> normalize_agent_spec("run:/nonexistent/run")
    Traceback (most recent call last):
    ...
    reskill_gym.llm.errors.LLMConfigError: run:/nonexistent/run: /nonexistent/run is not a run folder (no config.yaml and skills/ in it)
    """
    from pathlib import Path

    from reskill_gym.policy_folder import PolicyFolderError, is_run_folder, resolve_policy_path

    spec = (spec or "").strip()
    kind, sep, rest = spec.partition(":")
    if sep and kind.lower() == "run":
        run = rest.strip()
        if not is_run_folder(Path(run).expanduser()):
            raise LLMConfigError(
                f"{spec}: {run} is not a run folder (no config.yaml and skills/ in it)"
            )
        spec = f"local:{run}"
        kind, rest = "local", run
    if kind.lower() == "local":
        path = Path(rest.strip().rpartition("#")[0] or rest.strip()).expanduser()
        if is_run_folder(path):
            try:
                resolve_policy_path(path)
            except PolicyFolderError as e:
                raise LLMConfigError(str(e)) from None
    return spec


# ----- what an agent answers ---------------------------------------------------------------
@dataclass(frozen=True)
class AgentReply:
    """A generated reply (raw text, parsed by the session) and what it cost."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class AgentChoice:
    """A score-mode choice (made by ``choose_action``) and the tokens it read."""

    choice: ScoreChoice
    input_tokens: int = 0


class Agent(Protocol):
    """An evaluation agent: ``act`` answers one turn from its chat ``messages`` and the env
    ``info`` (admissible actions, skills). ``act`` may raise ``LLMError`` /
    ``AgentRefusalError`` (re-asked with backoff) or anything else (the episode is recorded
    as an error); ``LLMAuthError`` / ``LLMConfigError`` stop the run."""

    name: str
    mode: ActionMode

    def act(
        self,
        messages: list[dict[str, str]],
        info: Mapping[str, Any],
        rng: np.random.Generator | None,
    ) -> AgentReply | AgentChoice: ...

    def close(self) -> None: ...


class LLMAgent:
    """Free-text generation through any ``reskill_gym.llm`` backend.

    >>> from reskill_gym.llm.base import BaseBackend, RawAnswer
    >>> from reskill_gym.llm.config import LLMConfig
    >>> class Fixed(BaseBackend):
    ...     name = "fixed"
    ...     def _send(self, messages, **kw):
    ...         return RawAnswer(text="<action>look</action>", output_tokens=2)
    >>> LLMAgent(Fixed(LLMConfig(backend="local"))).act([{"role": "user", "content": "?"}], {}, None)
    AgentReply(text='<action>look</action>', input_tokens=0, output_tokens=2, cost_usd=0.0)
    """

    mode: ActionMode = "generate"

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
    ) -> AgentReply:
        c = self.backend.complete(
            messages, max_tokens=self.max_tokens, temperature=self.temperature
        )
        if (c.stop_reason or "") in _REFUSAL_STOPS:
            raise AgentRefusalError(f"{self.name}: refusal (stop_reason={c.stop_reason!r})")
        # An empty reply is not an error here: the session records it as an invalid turn,
        # as training does.
        return AgentReply(
            text=c.text,
            input_tokens=c.usage.input_tokens,
            output_tokens=c.usage.output_tokens,
            cost_usd=c.cost_usd,
        )

    def close(self) -> None:
        self.backend.close()


class ScoreAgent:
    """Choose an admissible command by the local model's token log-probs (``score`` mode).

    The backend gives per-token log-probs of every candidate
    (``LocalBackend.token_logprobs``); :func:`~reskill_gym.rollout.choose_action` applies
    ``score_norm`` and ``temperature`` and draws with ``u = rng.random()``: the rule the
    local trainer uses, so a policy is evaluated as it was trained.
    """

    mode: ActionMode = "score"

    def __init__(self, backend: Any, *, temperature: float = 0.0, score_norm: str = "mean") -> None:
        if not hasattr(backend, "token_logprobs"):
            raise LLMConfigError(f"score mode needs a local: backend, got {backend.name!r}")
        if score_norm not in ("sum", "mean"):
            raise LLMConfigError(f"score_norm must be 'sum' or 'mean', got {score_norm!r}")
        self.backend = backend
        self.temperature = temperature
        self.score_norm = score_norm
        self.name = f"{backend.name}:{backend.model}"

    def act(
        self,
        messages: list[dict[str, str]],
        info: Mapping[str, Any],
        rng: np.random.Generator | None,
    ) -> AgentChoice:
        admissible = list(info.get("admissible_actions") or [])
        if not admissible:
            raise LLMConfigError(
                "score mode needs info['admissible_actions'] (this env lists none); "
                "use --mode generate"
            )
        if rng is None:
            raise ValueError("ScoreAgent needs the episode's seeded rng")
        u = float(rng.random())  # drawn every turn, so the stream does not depend on temperature
        before = self.backend.usage.input_tokens
        lps = self.backend.token_logprobs(messages, admissible)
        # prompt + candidate tokens read (exact with one worker; shared backends may interleave)
        read = self.backend.usage.input_tokens - before
        choice = choose_action(
            admissible, lps, norm=self.score_norm, temperature=self.temperature, u=u
        )
        return AgentChoice(choice=choice, input_tokens=max(0, read))

    def close(self) -> None:
        self.backend.close()


class CallableAgent:
    """A user's ``function(messages, info) -> str``; the reply is parsed like an LLM's.

    Returning anything but a ``str`` (``None`` included), or raising (``SystemExit``
    included), is an error of the policy: the episode is recorded with ``error`` set.
    """

    mode: ActionMode = "generate"

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
    ) -> AgentReply:
        try:
            reply = self.fn(messages, info)
        except SystemExit as e:  # ``sys.exit()`` in a policy would end the run with exit 0
            raise RuntimeError(
                f"{self.name} raised SystemExit({e.code!r}); a policy cannot end the run"
            ) from None
        if not isinstance(reply, str):
            raise TypeError(f"{self.name} returned {type(reply).__name__}, expected str")
        return AgentReply(text=reply)

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
    return fn


def make_agent(
    spec: str | AgentSpec,
    *,
    mode: ActionMode = "generate",
    temperature: float = 0.0,
    max_tokens: int = 256,
    score_norm: str = "mean",
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
        return ScoreAgent(backend, temperature=temperature, score_norm=score_norm)
    return LLMAgent(backend, max_tokens=max_tokens, temperature=temperature)
