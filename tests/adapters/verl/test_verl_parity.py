"""One agent, three runners: the local trainer's rollout, the veRL agent loop (real V1
worker) and ``reskill eval`` play the same ALFWorld task, library version and scripted model
replies through the turn contract, and must show the model the same prompts (token ids of the
same tokenizer), parse the same actions and leave the same episode records and rewards — in
both turn formats (``rollout.format``: the project's and the published one).

The replies follow the planner, with an untagged reply in the middle (an invalid turn: in the
project format it must not step the env and must change the next prompt the same way
everywhere; in the published format it steps the env with the reply's last 30 characters and
shows up in the next prompt's history).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.verl

verl = pytest.importorskip("verl")
torch = pytest.importorskip("torch")

from verl_harness import (  # noqa: E402  (on sys.path: conftest.py)
    config_for,
    make_v1_worker,
    rows_for,
    run_v1_group,
)

from reskill_gym.rollout import TurnConfig  # noqa: E402

TASK = "tiny/train/0000"
ENV_KW = {"difficulty": "tiny", "source": "generated", "max_turns": 6}
TEMPLATE = "published"  # the skill-block template of configs/verl/alfworld.yaml
TURNS = {
    "project": TurnConfig(layout="per_turn", action_mode="generate", history_turns=2),
    "published": TurnConfig(format="published", history_turns=2, prompt_chars=2500),
}
# fields that describe where/when an episode ran, not what the agent saw and did
RUN_FIELDS = {"episode_id", "group_id", "step", "seed", "arm"}
USAGE_FIELDS = {"input_tokens", "output_tokens", "cost_usd", "retries"}


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The ALFWorld cache (rendered once for both formats) and the scripted replies."""
    cache = tmp_path_factory.mktemp("alfworld-cache")
    return cache, _replies(cache)


def _replies(cache: Path) -> list[str]:
    from reskill_gym.envs.alfworld import ALFWorldEnv

    env = ALFWorldEnv(**ENV_KW, cache_dir=cache)
    try:
        _, info = env.reset(options={"task_id": TASK, "expert": True})
        plan = list(info["expert_plan"])
    finally:
        env.close()
    assert len(plan) >= 2
    out = [f"<think>Start with the plan.</think><action>{plan[0]}</action>"]
    out.append("I am not sure what to do next.")  # no tag: an invalid turn
    out += [f"<action>{a}</action>" for a in plan[1:]]
    return out


class ScriptedServer:
    """veRL's ``generate`` contract answering with the scripted replies, in order."""

    def __init__(self, tokenizer: Any, replies: list[str]) -> None:
        self.tok, self.replies, self.calls = tokenizer, replies, 0

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: Any, **kw: Any
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        reply = self.replies[self.calls]
        self.calls += 1
        ids = self.tok(reply, add_special_tokens=False)["input_ids"] + [
            self.tok.convert_tokens_to_ids("<|im_end|>")
        ]
        return TokenOutput(
            token_ids=ids,
            log_probs=[0.0] * len(ids),
            stop_reason="completed",
            num_preempted=0,
            extra_fields={"global_steps": 1, "min_global_steps": 1, "max_global_steps": 1},
        )


def _scripted_policy(tokenizer: Any, replies: list[str]) -> Any:
    """The local trainer's ``Policy`` with the model's sampling replaced by the script."""
    from reskill_local.policy import Generation, Policy

    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    policy = Policy(model=None, tokenizer=tokenizer, device=torch.device("cpu"), stop_id=stop)
    queue = list(replies)

    def generate(prompts: Any, **kw: Any) -> list[Any]:
        out = []
        for _ in prompts:
            reply = queue.pop(0)
            ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [stop]
            out.append(Generation(ids, [0.0] * len(ids), policy.decode(ids)))
        return out

    policy.generate = generate  # type: ignore[method-assign]
    return policy


def _comparable(ep: Any) -> dict[str, Any]:
    """The ``Episode`` fields (an eval record adds its own on top), minus run bookkeeping."""
    from reskill_gym.episode import Episode

    data = ep.model_dump(include=set(Episode.model_fields) - RUN_FIELDS)
    data["turns"] = [{k: v for k, v in t.items() if k not in USAGE_FIELDS} for t in data["turns"]]
    return data


@pytest.mark.parametrize("fmt", list(TURNS))
def test_local_verl_and_eval_see_and_record_the_same_agent(
    fmt: str,
    planned: tuple[Path, list[str]],
    tmp_path: Path,
    smollm_dir: Path,
    make_lib: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    turn = TURNS[fmt]
    from reskill_local.rollout import RolloutSpec, Sampling, run_rollouts
    from reskill_verl.coevolution_actor import (
        CoEvolutionService,
        LocalCoEvolutionClient,
        register_local_client,
    )

    from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig
    from reskill_gym.envs.registration import make_skill_env
    from reskill_gym.evaluation.agents import CallableAgent
    from reskill_gym.evaluation.config import EvalConfig
    from reskill_gym.evaluation.runner import run_eval

    cache, replies = planned
    lib, head, _ = make_lib(tmp_path / "lib", "alfworld")

    # --- veRL: the real V1 worker, one session, co-evolution without a live test (HEAD)
    cfg, actor = config_for(
        tmp_path,
        smollm_dir,
        "alfworld",
        1,
        [
            *(f"reskill.env_kwargs.{k}={v}" for k, v in ENV_KW.items()),
            f"+reskill.env_kwargs.cache_dir={cache}",
            f"reskill.max_turns={ENV_KW['max_turns']}",
            "reskill.rollout.layout=per_turn",
            f"+reskill.rollout.format={turn.format}",
            f"+reskill.rollout.prompt_chars={turn.prompt_chars or 'null'}",
            f"reskill.rollout.action_format={'tagged' if fmt == 'project' else 'null'}",
            f"reskill.rollout.history_turns={turn.history_turns}",
            f"reskill.template={TEMPLATE}",
            "reskill.max_tokens_per_turn=64",
        ],
    )
    co = CoEvolution.create(lib, CoEvolutionConfig(creator_enabled=False))
    svc = CoEvolutionService(co)
    register_local_client(actor, LocalCoEvolutionClient(svc))
    worker, capture = make_v1_worker(cfg, lambda tok: None, monkeypatch)
    tok = worker.tokenizer
    worker.llm_client = ScriptedServer(tok, replies)
    uid = asyncio.run(run_v1_group(worker, rows_for("alfworld", [TASK])[0]))
    keys = sorted(
        (k for k in capture.rows if k.startswith(f"{uid}_0_")),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    verl_prompts = [capture.rows[k]["prompts"].tolist() for k in keys]
    verl_rewards = [float(capture.rows[k]["rm_scores"].sum()) for k in keys]
    (verl_ep,) = [e for e in svc._stats.episodes if e.group_id == uid]

    # --- local trainer: its batched rollout with the scripted policy
    policy = _scripted_policy(tok, replies)

    def make_env(task_id: str, version: str | None) -> Any:
        env = make_skill_env(
            "alfworld", skills=None, template=TEMPLATE, cache_dir=str(cache), **ENV_KW
        )
        env.set_skills(lib.view(version))
        return env

    (rollout,), _ = run_rollouts(
        policy,
        [RolloutSpec("r0", "g0", TASK, head, seed=0)],
        make_env,
        turn,
        Sampling(max_prompt_tokens=4096),
        generator=torch.Generator().manual_seed(0),
    )
    assert not rollout.dropped, rollout.error
    local_prompts = [s.prompt_ids for s in rollout.samples]
    local_ep = rollout.episode

    # --- reskill eval: a python agent replaying the script; prompts tokenised the same way
    seen: list[list[dict[str, str]]] = []
    queue = list(replies)

    def act(messages: list[dict[str, str]], info: Any) -> str:
        seen.append(messages)
        return queue.pop(0)

    run = run_eval(
        EvalConfig(
            env="alfworld",
            splits=["train"],
            tasks=1,
            skills=[f"{lib.root}@{head}"],
            baseline=False,
            agent="python:parity:act",
            rollout=turn,
            max_turns=ENV_KW["max_turns"],
            difficulty="tiny",
            template=TEMPLATE,
            env_kwargs={"source": "generated", "cache_dir": str(cache)},
        ),
        tmp_path / "eval",
        agent=CallableAgent(act, name="script"),
    )
    (eval_ep,) = run.records
    assert eval_ep.error is None, eval_ep.error
    eval_prompts = [policy.encode_prompt(m) for m in seen]

    # --- the same agent everywhere
    assert local_ep.task_id == verl_ep.task_id == eval_ep.task_id == TASK
    assert len(local_prompts) == len(verl_prompts) == len(eval_prompts) == len(replies)
    for t, (a, b, c) in enumerate(zip(local_prompts, verl_prompts, eval_prompts)):
        assert a == b == c, f"turn {t}: prompts differ"
    actions = [t.action for t in local_ep.turns]
    assert actions == [t.action for t in verl_ep.turns] == [t.action for t in eval_ep.turns]
    assert [t.valid for t in local_ep.turns] == [True, False] + [True] * (len(replies) - 2)
    third = tok.decode(local_prompts[2])
    if fmt == "project":
        assert "not executed" in third  # the invalid turn's feedback; the env did not run it
        assert local_ep.turns[1].action == "" and not local_ep.turns[1].ran
        assert seen[0][0]["role"] == "system"
    else:  # published: no system message; the invalid reply's tail ran and is in the history
        assert local_ep.turns[1].action == replies[1].lower()[-30:] and local_ep.turns[1].ran
        assert f"Action 2: '{replies[1].lower()[-30:]}'" in third
        assert [m["role"] for m in seen[0]] == ["user"]
        assert "(including which skill you applied, if any)" in seen[0][0]["content"]
    assert _comparable(local_ep) == _comparable(verl_ep) == _comparable(eval_ep)
    assert local_ep.won and local_ep.reward == verl_ep.reward == eval_ep.reward == 1.0
    assert verl_rewards == [1.0] * len(replies)  # every turn sample carries the return
