"""The agent loop run the way veRL runs it: a real ``AgentLoopWorker`` built from our composed
Hydra config, Hydra-instantiated loops, veRL's own post-processing, a real SmolLM2 generating
token-in/token-out through a server manager with veRL's ``generate`` contract, and the real
ALFWorld / ScienceWorld / Search environments.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.verl

verl = pytest.importorskip("verl")

from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig  # noqa: E402
from reskill_gym.versioning import TesterConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
AGENT_LOOPS_YAML = ROOT / "adapters" / "verl" / "reskill_verl" / "agent_loops.yaml"
PL, RL = 1024, 160  # prompt / response budgets (tokens): small, so length caps are exercised


def compose(config_name: str, overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None):
        return hydra_compose(config_name=config_name, overrides=overrides)


def make_worker(config: Any, server: Any) -> Any:
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    worker = AgentLoopWorker(config, llm_client=None)  # what AgentLoopManager wraps in Ray
    worker.llm_client = server
    return worker


def batch_of(
    rows: list[dict[str, Any]], n: int, *, global_steps: int = 1, validate: bool = False
) -> Any:
    """What veRL's trainer hands a worker: rows repeated n times, one uid per prompt."""
    import torch
    from verl.protocol import DataProto

    keys = ["raw_prompt", "extra_info", "data_source", "index", "agent_name", "reward_model"]
    nt = {k: np.array([r[k] for r in rows for _ in range(n)], dtype=object) for k in keys}
    uids = [f"uid-{uuid.uuid4().hex[:8]}" for _ in rows]
    nt["uid"] = np.array([u for u in uids for _ in range(n)], dtype=object)
    return DataProto.from_dict(
        tensors={"dummy_tensor": torch.zeros(len(rows) * n, 1, dtype=torch.uint8)},
        non_tensors=nt,
        meta_info={"global_steps": global_steps, "validate": validate},
    )


def rows_for(env: str, task_ids: list[str], split: str = "train") -> list[dict[str, Any]]:
    from reskill_verl.prepare import task_rows

    rows = task_rows(env, task_ids, split)
    for r in rows:
        r["raw_prompt"] = r.pop("prompt")
        r["index"] = r["extra_info"]["index"]
    return rows


def local_coevolution(tmp_path: Path, make_lib: Any, env: str, actor_name: str) -> Any:
    """An in-process co-evolution service with a live version test, routed to by name."""
    from reskill_verl.coevolution_actor import (
        CoEvolutionService,
        LocalCoEvolutionClient,
        register_local_client,
    )

    lib, head, candidate = make_lib(tmp_path / f"lib-{env}", env)
    co = CoEvolution.create(
        lib, CoEvolutionConfig(creator_enabled=False, tester=TesterConfig(clamp=(0.4, 0.6)))
    )
    assert co.tester.start(head, candidate, step=0) is None
    svc = CoEvolutionService(co)
    register_local_client(actor_name, LocalCoEvolutionClient(svc))
    return svc, head, candidate


def check_batch(out: Any, tok: Any, n_rows: int) -> None:
    """veRL's post-processed batch: shapes, masks, rewards, our extra fields."""
    import torch
    from reskill_verl.agent_loop import EXTRA_FIELD_KEYS

    b = out.batch
    assert tuple(b["prompts"].shape) == (n_rows, PL)
    assert tuple(b["responses"].shape) == (n_rows, RL)
    assert tuple(b["input_ids"].shape) == (n_rows, PL + RL)
    for k in ("response_mask", "rollout_log_probs", "rm_scores"):
        assert tuple(b[k].shape) == (n_rows, RL), k
    rm, am = b["response_mask"], b["attention_mask"][:, PL:]
    assert (rm <= am).all() and set(rm.unique().tolist()) <= {0, 1}
    assert torch.equal(b["input_ids"][:, PL:], b["responses"])
    assert (b["rollout_log_probs"][rm == 0] == 0).all()
    assert (b["rollout_log_probs"][rm == 1] <= 0).all()
    nt = out.non_tensor_batch
    for key in EXTRA_FIELD_KEYS:
        if key != "reward_extra_info":
            assert key in nt, key
    for key in ("min_global_steps", "max_global_steps", "__num_turns__", "uid"):
        assert key in nt
    for i in range(n_rows):
        length = int(am[i].sum())
        reward = float(b["rm_scores"][i].sum())
        assert reward == pytest.approx(float(nt["env_return"][i]))
        if reward:
            assert int(b["rm_scores"][i].nonzero()[0]) == length - 1, "reward on the last token"
        assert int(nt["turns"][i]) >= 1 or nt["stop_reason"][i] == "error"
        assert nt["stop_reason"][i] in {"done", "env_truncated", "turn_cap", "length"}
        # mask 1 = the model's own tokens; every mask-0 run is a user turn (observation + skills)
        ids, mask = b["responses"][i, :length].tolist(), rm[i, :length].tolist()
        runs: list[tuple[int, list[int]]] = []
        for t, m in zip(ids, mask):
            if runs and runs[-1][0] == m:
                runs[-1][1].append(t)
            else:
                runs.append((m, [t]))
        assert runs[0][0] == 1, "the response starts with the first reply"
        for m, toks in runs:
            text = tok.decode(toks)
            if m == 0:
                assert "<|im_start|>user" in text and text.rstrip().endswith("assistant"), text
            else:
                assert "<|im_start|>user" not in text
        n_replies = sum(m == 1 for m, _ in runs)
        assert n_replies == int(nt["turns"][i]) or nt["stop_reason"][i] == "length"


def run_env(
    tmp_path: Path,
    smollm_dir: Path,
    server_factory: Any,
    make_lib: Any,
    *,
    config_name: str,
    env: str,
    task_id: str,
    extra: list[str],
    n: int = 2,
) -> tuple[Any, Any, Any, str, str]:
    actor = f"reskill_test_{env}_{uuid.uuid4().hex[:6]}"
    cfg = compose(
        config_name,
        [
            f"actor_rollout_ref.model.path={smollm_dir}",
            f"data.max_prompt_length={PL}",
            f"data.max_response_length={RL}",
            f"actor_rollout_ref.rollout.n={n}",
            "data.train_files=[]",
            "data.val_files=[]",
            "reskill.max_tokens_per_turn=8",
            f"reskill.coevolution.actor_name={actor}",
            f"trainer.default_local_dir={tmp_path / 'ckpt'}",
            # the plugin-free registration route: the worker loads this YAML, Hydra imports us
            f"actor_rollout_ref.rollout.agent.agent_loop_config_path={AGENT_LOOPS_YAML}",
            *extra,
        ],
    )
    svc, head, candidate = local_coevolution(tmp_path, make_lib, env, actor)
    worker = make_worker(cfg, None)
    worker.llm_client = server_factory(worker.tokenizer)
    out = asyncio.run(worker.generate_sequences(batch_of(rows_for(env, [task_id]), n)))
    return out, worker, svc, head, candidate


def check_coevolution(out: Any, svc: Any, head: str, candidate: str, n: int) -> None:
    nt = out.non_tensor_batch
    arms = list(nt["arm"])
    versions = list(nt["library_version"])
    assert set(versions) <= {head, candidate}
    assert all((a == "candidate") == (v == candidate) for a, v in zip(arms, versions))
    assert sorted(arms) == sorted(["candidate", "incumbent"] * (n // 2)), "the group is split"
    # episodes reached the tester / reservoir through the client
    assert sum(svc._stats.episodes.values()) == n
    assert len(svc.coevo.reservoir) == n
    assert svc.end_step(1)["metrics"]["versions/episodes/candidate"] == n // 2


@pytest.mark.slow  # ~25 s: ALFWorld engine start + 4 generations on a loaded 2-core box
def test_verl_alfworld_episodes(tmp_path, smollm_dir, server_factory, make_lib):
    out, worker, svc, head, candidate = run_env(
        tmp_path,
        smollm_dir,
        server_factory,
        make_lib,
        config_name="alfworld",
        env="alfworld",
        task_id="tiny/train/0000",
        extra=[
            "reskill.env_kwargs.difficulty=tiny",
            "reskill.env_kwargs.source=generated",
            f"+reskill.env_kwargs.cache_dir={tmp_path / 'alfworld-cache'}",
            "reskill.env_kwargs.max_turns=3",
            "reskill.max_turns=3",
        ],
    )
    check_batch(out, worker.tokenizer, 2)
    check_coevolution(out, svc, head, candidate, 2)
    nt = out.non_tensor_batch
    assert all(e == "alfworld" and t == "tiny/train/0000" for e, t in zip(nt["env"], nt["task_id"]))
    # candidate rollouts saw the candidate's "general" skill in their prompt (its own segment)
    prompts = [
        worker.tokenizer.decode(p[p != worker.tokenizer.pad_token_id]) for p in out.batch["prompts"]
    ]
    for arm, text in zip(nt["arm"], prompts):
        assert ("Start by reading the whole observation" in text) == (arm == "candidate")
        assert "Admissible actions:" in text and "Task:" in text
    fired = [set(s) for s in nt["skill_ids"]]
    assert all(
        any(i.startswith("always-look-first@") for i in f) == (a == "candidate")
        for f, a in zip(fired, nt["arm"])
    )


@pytest.mark.slow  # ~30 s: JVM start + 4 generations
def test_verl_scienceworld_episodes(tmp_path, smollm_dir, server_factory, make_lib):
    from reskill_gym.envs.registration import env_class

    raw = env_class("scienceworld")()
    task_id = raw.task_ids("train")[0]
    raw.close()
    out, worker, svc, head, candidate = run_env(
        tmp_path,
        smollm_dir,
        server_factory,
        make_lib,
        config_name="scienceworld",
        env="scienceworld",
        task_id=task_id,
        extra=["reskill.env_kwargs.max_turns=2", "reskill.max_turns=2"],
    )
    check_batch(out, worker.tokenizer, 2)
    check_coevolution(out, svc, head, candidate, 2)


def test_verl_search_episodes_v1_fields_validation_and_failures(
    tmp_path, smollm_dir, server_factory, make_lib
):
    """Search (text passthrough), the V1 trainer's field path, eval rows, env errors, pooling."""
    import torch
    from reskill_verl.agent_loop import env_pool
    from verl.experimental.agent_loop.agent_loop import (
        DictConfigWrap,
        ToolListWrap,
        _agent_loop_registry,
    )
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from reskill_gym.envs.registration import env_class

    cache = tmp_path / "search-cache"
    raw = env_class("search")(cache_dir=str(cache))
    task_id = raw.task_ids("train")[0]
    seen_id = raw.task_ids("seen")[0]
    raw.close()
    out, worker, svc, head, candidate = run_env(
        tmp_path,
        smollm_dir,
        server_factory,
        make_lib,
        config_name="search",
        env="search",
        task_id=task_id,
        extra=[
            f"+reskill.env_kwargs.cache_dir={cache}",
            "reskill.env_kwargs.max_turns=2",
            "reskill.max_turns=2",
        ],
    )
    check_batch(out, worker.tokenizer, 2)
    check_coevolution(out, svc, head, candidate, 2)
    key = ("search", repr(sorted(worker.config.reskill.env_kwargs.items())))
    created = env_pool.created
    assert env_pool.idle(key) >= 1, "finished envs go back to the worker's pool"

    # The V1 trainer's path: run() called directly with uid/session_id/global_steps, then
    # AgentLoopOutput.as_dict() and veRL's tensordict packing, as AgentLoopWorkerTQ does.
    import hydra

    def instantiate() -> Any:  # exactly _run_agent_loop's call (inside the running event loop)
        return hydra.utils.instantiate(
            config=_agent_loop_registry["reskill_env"],
            trainer_config=DictConfigWrap(config=worker.config),
            server_manager=worker.llm_client,
            tokenizer=worker.tokenizer,
            processor=None,
            hf_model_type=worker.hf_model_type,
            dataset_cls=worker.dataset_cls,
            data_config=DictConfigWrap(worker.config.data),
            tools=ToolListWrap([]),
        )

    row = rows_for("search", [task_id])[0]
    bad = rows_for("search", ["no-such-question"])[0]
    val = rows_for("search", [seen_id], split="seen")[0]
    params = {
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": -1,
        "repetition_penalty": 1.0,
        "logprobs": True,
    }

    async def v1() -> list[Any]:
        loop = instantiate()
        common = {"global_steps": 2, "uid": "uid-v1"}
        return [
            await loop.run(params, **row, session_id=1, **common),
            await loop.run(params, **bad, session_id=0, global_steps=2, uid="uid-bad"),
            await loop.run(
                {**params, "temperature": 0}, **val, session_id=0, global_steps=2, uid="uid-val"
            ),
        ]

    outs = asyncio.run(v1())
    good, broken, evaluated = outs
    assert env_pool.created == created, "the second batch reused pooled envs"
    assert (
        broken.extra_fields["stop_reason"] == "error"
        and "no-such-question" in broken.extra_fields["env_error"]
    )
    assert set(broken.response_mask) == {0} and broken.reward_score == 0.0
    assert (
        evaluated.extra_fields["arm"] == "eval"
        and evaluated.extra_fields["library_version"] == svc.head()
    )
    assert svc._stats.dropped == 1 and sum(svc._stats.episodes.values()) == 1, (
        "eval rows are not reported"
    )
    assert good.extra_fields["arm"] in {"incumbent", "candidate"}
    fields = []
    for o, sid in zip(outs, (1, 0, 0)):
        assert len(o.response_ids) == len(o.response_mask) == len(o.response_logprobs) <= RL
        assert len(o.prompt_ids) <= PL
        f = o.as_dict()
        assert "num_turns" in f, "num_turns must be set explicitly (as_dict drops unset fields)"
        f.update({"uid": "u", "session_id": sid, "global_steps": 2})
        f["loss_mask"] = f["response_mask"]
        f["input_ids"] = torch.cat([f["prompts"], f["responses"]])
        fields.append(f)
    td = list_of_dict_to_tensordict(fields)
    extra = list(td["extra_fields"])
    tags = np.array([e["min_global_steps"] for e in extra], dtype=int)  # what _compute_metrics does
    assert tags.tolist() == [1, 2, 1], "from the server, else the row's global_steps"
    assert all(e["reward_extra_info"].keys() == {"won", "env_return", "turns"} for e in extra)
    print("generate calls:", len(worker.llm_client.calls))
