"""The ALFWorld engine process: one TextWorld PDDL env behind a JSON-lines pipe.

Exports ``serve`` and ``install_textgen_cache``; run as ``python -m reskill_gym.envs.alfworld.worker``.

Why a process per env: fast-downward keeps global state, so two TextWorld PDDL envs in one
process corrupt each other (episodes end after a few steps, valid commands answer "Nothing
happens."). Each :class:`~reskill_gym.envs.alfworld.env.ALFWorldEnv` therefore owns one of
these workers. Requests arrive one JSON object per line on stdin; each gets exactly one JSON
line back on the *original* stdout. Anything the engine prints goes to stderr (fd 1 is
re-pointed there), so library chatter can never corrupt the protocol.

Requests: ``{"op": "load", "gamefile": str, "spec": dict | null, "expert": bool}`` (renders
the spec's game files first if missing, loads the game unless already loaded, resets),
``{"op": "step", "action": str}``, ``{"op": "lookahead"}`` (expert mode: every admissible
command applied to a copy of the current state and the planner re-run there; the state is
restored afterwards), ``{"op": "ping"}``, ``{"op": "close"}``.
Replies: ``{"ok": true, ...state}`` or ``{"ok": false, "error": str, "traceback": str}``.

Look-ahead without replaying the episode: fast-downward keeps every state it has visited in
a registry and exposes ``get_state_id``/``set_state_id``; TextWorld mirrors the state as
Python facts. A look-ahead saves both (the state id and shallow copies of the fact
containers), steps each candidate through the normal ``step`` path (so feedback, ``won`` and
the re-plan are exactly what a real step gives) and puts both back. About 20 ms a
candidate, against a reset plus a replay of the whole prefix per candidate.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

__all__ = ["serve", "install_textgen_cache"]

_CACHE_INSTALLED = False


def install_textgen_cache() -> None:
    """Memoise TextWorld's text-grammar parser (same output, ~2.5x faster steps).

    ``textworld.envs.pddl.textgen._parse_and_convert`` re-parses the same feedback templates
    with TatSu on every step; the parse depends only on its text arguments, and callers
    mutate the result, so we cache the parse and hand out deep copies. Verified to produce
    byte-identical observations on a 100-step random walk.
    """
    global _CACHE_INSTALLED
    if _CACHE_INSTALLED:
        return
    import textworld.envs.pddl.textgen as textgen

    original = textgen._parse_and_convert
    cache: dict[tuple[str, str], Any] = {}

    def parse_and_convert(text: str, rule_name: str = "symbols", **kwargs: Any) -> Any:
        if kwargs.get("trace"):
            return original(text, rule_name=rule_name, **kwargs)
        key = (text, rule_name)
        if key not in cache:
            cache[key] = original(text, rule_name=rule_name, **kwargs)
        return copy.deepcopy(cache[key])

    textgen._parse_and_convert = parse_and_convert
    _CACHE_INSTALLED = True


#: The containers of TextWorld's Python mirror of the PDDL state that ``apply`` mutates.
_STATE_CONTAINERS = ("_facts", "_vars_by_name", "_vars_by_type", "_var_counts")


def _copy_container(value: Any) -> Any:
    """A copy of a dict (of sets) deep enough that applying an action cannot reach it."""
    copied = copy.copy(value)
    for k, v in copied.items():
        if isinstance(v, set):
            copied[k] = set(v)
    return copied


def _declare_state_id_calls(lib: Any) -> None:
    """ctypes signatures of the two registry calls TextWorld's loader does not declare."""
    import ctypes

    lib.get_state_id.argtypes = []
    lib.get_state_id.restype = ctypes.c_int
    lib.set_state_id.argtypes = [ctypes.c_int]
    lib.set_state_id.restype = None


class _Engine:
    """One demangled TextWorld PddlEnv; the planner runs only when the expert is requested."""

    def __init__(self) -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs import PddlEnv

        install_textgen_cache()
        infos = textworld.EnvInfos(won=True, admissible_commands=True, policy_commands=False)
        self.env = AlfredDemangler(PddlEnv(infos), shuffle=False)
        self.gamefile: str | None = None
        self.admissible: list[str] = []
        self.expert = False

    def load(self, gamefile: str, spec: dict[str, Any] | None, expert: bool) -> dict[str, Any]:
        path = Path(gamefile)
        if not path.exists():
            if spec is None:
                raise FileNotFoundError(f"game file {gamefile} does not exist")
            from reskill_gym.envs.alfworld.render import write_game
            from reskill_gym.envs.alfworld.spec import TaskSpec

            write_game(TaskSpec.from_json(spec, source=gamefile), path.parent)
        if gamefile != self.gamefile:
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{gamefile}: not valid JSON ({exc})") from exc
            missing = [k for k in ("pddl_domain", "grammar", "pddl_problem") if k not in data]
            if missing:
                raise ValueError(f"{gamefile}: game file lacks {missing}")
            if not data.get("solvable", False):
                raise ValueError(f"{gamefile}: game is marked unsolvable ('solvable' is not true)")
            self.gamefile = None
            self.env.load(data)
            self.gamefile = gamefile
        self.expert = expert
        self.env.request_infos.policy_commands = expert
        state = self.env.reset()
        return self._reply(state, score=0.0, done=False, invalid=False)

    def step(self, action: str) -> dict[str, Any]:
        if self.gamefile is None:
            raise RuntimeError("step before load")
        invalid = action not in self.admissible
        state, score, done = self.env.step(action)
        return self._reply(state, score=float(score), done=bool(done), invalid=invalid)

    # ----- one-step look-ahead ------------------------------------------------------------
    def _pddl_env(self) -> Any:
        inner = self.env
        while hasattr(inner, "_wrapped_env"):
            inner = inner._wrapped_env
        return inner

    def _snapshot(self) -> tuple[Any, ...]:
        inner = self._pddl_env()
        ps = inner._pddl_state
        containers = {name: _copy_container(getattr(ps, name)) for name in _STATE_CONTAINERS}
        return (
            inner.downward_lib.get_state_id(),
            containers,
            ps._operators,
            inner.state,
            inner.prev_state,
            inner._last_action,
            inner._moves,
            list(self.admissible),
        )

    def _restore(self, snap: tuple[Any, ...]) -> None:
        inner = self._pddl_env()
        ps = inner._pddl_state
        sid, containers, operators, state, prev, last, moves, admissible = snap
        inner.downward_lib.set_state_id(sid)
        for name, value in containers.items():
            setattr(ps, name, _copy_container(value))  # the snapshot itself stays untouched
        ps._operators = operators
        inner.state, inner.prev_state, inner._last_action, inner._moves = state, prev, last, moves
        self.admissible = admissible

    def lookahead(self) -> dict[str, Any]:
        """Each admissible command applied to a copy of the current state, then re-planned.

        Reply: ``plan`` (the planner's plan from the current state) and ``lookahead``: one
        ``{"action", "won", "plan_len", "obs"}`` per admissible command, in the admissible
        order; ``plan_len`` is the length of the plan after the command (0 when it wins,
        ``None`` when the planner finds no plan from there).
        """
        if self.gamefile is None:
            raise RuntimeError("lookahead before load")
        if not self.expert:
            raise RuntimeError("lookahead needs the planner: load the game with expert=true")
        inner = self._pddl_env()
        _declare_state_id_calls(inner.downward_lib)
        snap = self._snapshot()
        plan = list(inner.state["policy_commands"] or [])
        out: list[dict[str, Any]] = []
        try:
            for action in snap[-1]:
                state, _score, _done = self.env.step(action)
                won = bool(state["won"])
                after = list(state["policy_commands"] or [])
                plan_len: int | None = 0 if won else (len(after) if after else None)
                out.append(
                    {"action": action, "won": won, "plan_len": plan_len, "obs": state.feedback}
                )
                self._restore(snap)
        finally:
            self._restore(snap)
        if inner.downward_lib.get_state_id() != snap[0]:  # pragma: no cover - engine bug guard
            raise RuntimeError("lookahead could not restore the engine state")
        return {"ok": True, "plan": plan, "lookahead": out}

    def _reply(self, state: Any, *, score: float, done: bool, invalid: bool) -> dict[str, Any]:
        self.admissible = list(state["admissible_commands"])
        reply: dict[str, Any] = {
            "ok": True,
            "obs": state.feedback,
            "score": score,
            "done": done,
            "won": bool(state["won"]),
            "admissible": self.admissible,
            "invalid": invalid,
        }
        if self.expert:
            reply["plan"] = list(state["policy_commands"] or [])
        return reply


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer requests until ``close`` or end of input (the parent went away)."""
    engine: _Engine | None = None
    for line in requests:
        if not line.strip():
            continue
        op = "?"
        try:
            req = json.loads(line)
            op = req.get("op", "?")
            if op == "ping":
                reply: dict[str, Any] = {"ok": True, "pid": os.getpid()}
            elif op == "close":
                reply = {"ok": True}
            elif op == "load":
                engine = engine or _Engine()
                reply = engine.load(
                    str(req["gamefile"]), req.get("spec"), bool(req.get("expert", False))
                )
            elif op == "step":
                if engine is None:
                    raise RuntimeError("step before load")
                reply = engine.step(str(req["action"]))
            elif op == "lookahead":
                if engine is None:
                    raise RuntimeError("lookahead before load")
                reply = engine.lookahead()
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # reported to the parent, which decides what it means
            reply = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
        if op == "close":
            return


def main() -> None:
    # Keep the real stdout for replies; point fd 1 (C code, print) at stderr.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
