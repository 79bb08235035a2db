"""Tokens per training sample under both rollout layouts vs the configured veRL limits.

    python benchmarks/perf/turn_budget.py [--episodes 6] [--envs alfworld scienceworld]
                                          [--json out.json]

Reads ``configs/verl/<env>.yaml`` (``data.max_prompt_length`` / ``max_response_length``,
``reskill.rollout``, ``reskill.max_turns``, the env and skill settings) and plays real
episodes through the turn contract (``reskill_gym.rollout.RolloutSession``, the seed skill
library in the prompt) with a fixed, seeded action script: ALFWorld ``std`` picks a random
admissible command (it almost never wins, so episodes run the full 50 turns: the worst case
for the history), ScienceWorld a random valid action of the engine (``focus on ...``, which
ends the episode when wrong, left out), or ``look around`` (long observations) one turn in
four. The reply of every turn is the published format,
``<think>I will <cmd> to make progress.</think><action><cmd></action>``. Each episode is
played twice on the same env, task, seed and commands: once under ``per_turn`` (the config's
history window) and once under ``concat``, so both layouts see the same episodes.

Tokens are counted with the SmolLM2 tokenizer and its ChatML template (a stand-in for the
trained model's; ``reskill_gym.llm.local`` loads the shipped GGUF), exactly as veRL's agent
loop builds them: ``per_turn`` sample = chat template of the turn's messages with the
generation prompt (prompt) + the reply and its end token (response); ``concat`` sample = the
first prompt + everything after it (replies, later user messages, template tokens) until the
episode ends. A ``per_turn`` prompt over the limit would have its history window shrunk by
the agent loop (counted as "shrunk"); a sample whose response exceeds the limit is truncated.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from reskill_gym.testing.workload import machine

ROOT = Path(__file__).resolve().parents[2]
STOP = "<|im_end|>"


def load_tokenizer() -> Any:
    """The SmolLM2 tokenizer from the shipped GGUF (the converted copy when cached)."""
    from transformers import AutoTokenizer

    from reskill_gym.llm.local import _converted_dir, default_gguf_cache_dir, resolve_local_model

    directory, gguf = resolve_local_model("default")
    if gguf is None:
        tok = AutoTokenizer.from_pretrained(directory)
    else:
        cached = _converted_dir(default_gguf_cache_dir(), directory / gguf, "float32")
        if (cached / "tokenizer_config.json").is_file():
            tok = AutoTokenizer.from_pretrained(cached)
        else:
            tok = AutoTokenizer.from_pretrained(directory, gguf_file=gguf)
    tok.eos_token = tok.pad_token = STOP  # the GGUF metadata names <|im_start|>
    return tok


class Counter:
    """Token counts the way the veRL agent loop tokenises (chat template, then ids)."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok

    def chat(self, messages: list[dict[str, str]], *, generation: bool) -> int:
        text = self.tok.apply_chat_template(
            messages, add_generation_prompt=generation, tokenize=False
        )
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def reply(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"]) + 1  # + <|im_end|>


def load_config(env_name: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "verl" / f"{env_name}.yaml"))
    assert isinstance(cfg, dict)
    return cfg


def reply_for(command: str) -> str:
    return f"<think>I will {command} to make progress.</think><action>{command}</action>"


def script(env_name: str, session: Any, rng: random.Random) -> str:
    """The fixed action script (see the module docstring)."""
    if env_name == "alfworld":
        adm = [a for a in (session.admissible or []) if a != "help"]
        return rng.choice(adm) if adm else "look"
    if rng.random() < 0.25:
        return "look around"
    # "focus on X" ends a ScienceWorld episode when X is wrong: left out, episodes run long
    valid = [a for a in session.env.unwrapped.admissible_actions() if not a.startswith("focus")]
    return rng.choice(valid) if valid else "look around"


def play(
    env: Any,
    env_name: str,
    turn_cfg: Any,
    *,
    task_id: str,
    seed: int,
    max_turns: int,
    counter: Counter,
    commands: list[str] | None,
    rng: random.Random,
) -> tuple[dict[str, Any], list[str]]:
    """One episode under ``turn_cfg``; replays ``commands`` when given (else runs the script)."""
    from reskill_gym.rollout import RolloutSession

    session = RolloutSession(env, turn_cfg, episode_id=f"{task_id}/{seed}", max_turns=max_turns)
    session.reset(task_id=task_id, seed=seed)
    played: list[str] = []
    prompts: list[int] = []
    replies: list[int] = []
    stream_at: list[int] = []  # concat: stream length after each reply
    first = 0
    last_messages: list[dict[str, str]] = []
    while not session.done:
        messages = session.messages()
        n_prompt = counter.chat(messages, generation=True)
        if not prompts:
            first = n_prompt
        prompts.append(n_prompt)
        cmd = commands[len(played)] if commands is not None else script(env_name, session, rng)
        reply = reply_for(cmd)
        replies.append(counter.reply(reply))
        stream_at.append(n_prompt + replies[-1])
        last_messages = [*messages, {"role": "assistant", "content": reply}]
        session.act(reply)
        played.append(cmd)
    ep = session.episode()
    stream = counter.chat(last_messages, generation=False) if last_messages else first
    return {
        "turns": len(ep.turns),
        "won": ep.won,
        "prompts": prompts,
        "replies": replies,
        "first_prompt": first,
        "stream": stream,
        "stream_at": stream_at,
    }, played


def run_env(env_name: str, episodes: int, counter: Counter) -> list[dict[str, Any]]:
    from reskill_gym.envs.registration import make_skill_env
    from reskill_gym.rollout import TurnConfig

    cfg = load_config(env_name)
    rs = cfg["reskill"]
    per_turn = TurnConfig.model_validate(rs["rollout"])
    concat = per_turn.model_copy(update={"layout": "concat"})
    limits = (int(cfg["data"]["max_prompt_length"]), int(cfg["data"]["max_response_length"]))
    max_turns = int(rs["max_turns"])
    env = make_skill_env(
        env_name,
        skills="seed",
        max_active_skills=rs["max_active_skills"],
        skill_budget_chars=rs["skill_budget_chars"],
        **rs["env_kwargs"],
    )
    out = []
    try:
        tasks = env.unwrapped.task_ids("train")
        for i in range(episodes):
            task_id = tasks[(i * 7) % len(tasks)]
            t0 = time.perf_counter()
            a, commands = play(
                env,
                env_name,
                per_turn,
                task_id=task_id,
                seed=i,
                max_turns=max_turns,
                counter=counter,
                commands=None,
                rng=random.Random(i),
            )
            b, again = play(
                env,
                env_name,
                concat,
                task_id=task_id,
                seed=i,
                max_turns=max_turns,
                counter=counter,
                commands=commands,
                rng=random.Random(i),
            )
            assert again == commands and a["turns"] == b["turns"], "layouts saw different episodes"
            out.append({"task_id": task_id, "per_turn": a, "concat": b, "limits": limits})
            logging.info(
                "%s %s: %d turns, per_turn max prompt %d, concat stream %d (%.0f s)",
                env_name,
                task_id,
                a["turns"],
                max(a["prompts"]),
                b["stream"] - b["first_prompt"],
                time.perf_counter() - t0,
            )
    finally:
        env.close()
    return out


def summarise(env_name: str, eps: list[dict[str, Any]], history: int) -> list[dict[str, Any]]:
    pl, rl = eps[0]["limits"]
    rows = []
    prompts = [p for e in eps for p in e["per_turn"]["prompts"]]
    replies = [r for e in eps for r in e["per_turn"]["replies"]]
    rows.append(
        {
            "env": env_name,
            "layout": f"per_turn (H={history})",
            "episodes": len(eps),
            "turns_mean": statistics.mean(e["per_turn"]["turns"] for e in eps),
            "samples": len(prompts),
            "prompt_p50": statistics.median(prompts),
            "prompt_max": max(prompts),
            "response_p50": statistics.median(replies),
            "response_max": max(replies),
            "limit": f"{pl} / {rl}",
            "over_prompt": sum(p > pl for p in prompts),
            "over_response": sum(r > rl for r in replies),
            "tokens_per_episode": statistics.mean(
                sum(e["per_turn"]["prompts"]) + sum(e["per_turn"]["replies"]) for e in eps
            ),
        }
    )
    firsts = [e["concat"]["first_prompt"] for e in eps]
    responses = [e["concat"]["stream"] - e["concat"]["first_prompt"] for e in eps]
    fit_turns = []
    for e in eps:
        c = e["concat"]
        fits = [i + 1 for i, s in enumerate(c["stream_at"]) if s - c["first_prompt"] <= rl]
        fit_turns.append(max(fits) if fits else 0)
    rows.append(
        {
            "env": env_name,
            "layout": "concat",
            "episodes": len(eps),
            "turns_mean": statistics.mean(e["concat"]["turns"] for e in eps),
            "samples": len(eps),
            "prompt_p50": statistics.median(firsts),
            "prompt_max": max(firsts),
            "response_p50": statistics.median(responses),
            "response_max": max(responses),
            "limit": f"{pl} / {rl}",
            "over_prompt": sum(p > pl for p in firsts),
            "over_response": sum(r > rl for r in responses),
            "tokens_per_episode": statistics.mean(e["concat"]["stream"] for e in eps),
            "turns_within_response_limit_mean": statistics.mean(fit_turns),
        }
    )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| env | layout | samples | prompt p50 / max | response p50 / max | limit P / R "
        "| samples over limit | tokens / episode |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        over = r["over_prompt"] + r["over_response"]
        note = f"{over} of {r['samples']}"
        if r["layout"] == "concat" and over:
            note += f" (fits {r['turns_within_response_limit_mean']:.1f} turns)"
        lines.append(
            f"| {r['env']} | {r['layout']} | {r['samples']} | {r['prompt_p50']:.0f} / "
            f"{r['prompt_max']} | {r['response_p50']:.0f} / {r['response_max']} | {r['limit']} "
            f"| {note} | {r['tokens_per_episode']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", nargs="+", default=["alfworld", "scienceworld"])
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("reskill_gym", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    t0 = time.perf_counter()
    counter = Counter(load_tokenizer())
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for env_name in args.envs:
        eps = run_env(env_name, args.episodes, counter)
        history = int(load_config(env_name)["reskill"]["rollout"]["history_turns"])
        rows += summarise(env_name, eps, history)
        raw[env_name] = eps
    sys.stdout.write(table(rows) + "\n\n")
    sys.stdout.write(
        f"SmolLM2 tokenizer (stand-in), seed skills, {time.perf_counter() - t0:.0f} s; "
        f"{machine()}\n"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "episodes": raw}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
