"""The veRL test harness: our Hydra configs composed for tests, real agent-loop workers (the
legacy ``AgentLoopWorker`` and V1's ``AgentLoopWorkerTQ`` with its TransferQueue calls
captured in-process), dataset rows and an in-process co-evolution service. Shared by the
agent-loop and parity tests (``conftest.py`` puts this folder on ``sys.path``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig
from reskill_gym.versioning import TesterConfig

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


class TQCapture:
    """Takes the TransferQueue client calls of veRL's V1 agent-loop worker (``tq.init``,
    ``async_kv_put``, ``async_kv_batch_put``) and keeps what the worker stores, per key, as
    the storage would return it: one field dict per row plus its tag."""

    def __init__(self) -> None:
        self.status: dict[str, list[str]] = {}
        self.rows: dict[str, dict[str, Any]] = {}

    def init(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def async_kv_put(self, key: str, partition_id: str, tag: Any = None, **kw: Any) -> None:
        self.status.setdefault(key, []).append(tag["status"])

    async def async_kv_batch_put(
        self, keys: list[str], fields: Any, tags: list[dict], partition_id: str, **kw: Any
    ) -> None:
        for i, key in enumerate(keys):
            row: dict[str, Any] = {"_tag": tags[i], "_partition": partition_id}
            for name in fields.keys():
                value = fields[name]
                if hasattr(value, "unbind"):
                    row[name] = value.unbind()[i]
                elif hasattr(value, "tolist"):
                    row[name] = value.tolist()[i]
                else:
                    row[name] = value[i]
            self.rows[key] = row


def make_v1_worker(config: Any, server_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from verl.trainer.ppo.v1 import agent_loop_tq

    capture = TQCapture()
    for name in ("init", "async_kv_put", "async_kv_batch_put"):
        monkeypatch.setattr(agent_loop_tq.tq, name, getattr(capture, name))
    worker = agent_loop_tq.AgentLoopWorkerTQ.__ray_actor_class__(config, llm_client=None)
    worker.llm_client = server_factory(worker.tokenizer)
    return worker, capture


def sampling_params(config: Any) -> dict[str, Any]:
    """What ``AgentLoopWorkerTQ.generate_sequences`` passes for training rows."""
    r = config.actor_rollout_ref.rollout
    return dict(
        temperature=r.temperature,
        top_p=r.top_p,
        top_k=r.top_k,
        repetition_penalty=1.0,
        logprobs=r.calculate_log_probs,
    )


async def run_v1_group(worker: Any, row: dict[str, Any], *, global_steps: int = 1) -> str:
    """One dataset row through ``AgentLoopWorkerTQ._run_prompt`` (n sessions); its uid."""
    uid = uuid.uuid4().hex[:12]  # veRL's uids hold no '_' (keys are uid_session_index)
    prompt = {**row, "uid": uid, "global_steps": global_steps}
    trajectory = {
        "step": global_steps,
        "sample_index": row["index"],
        "rollout_n": 0,
        "validate": False,
    }
    await worker._run_prompt(prompt, sampling_params(worker.config), trajectory=trajectory)
    return uid


def batch_of(
    rows: list[dict[str, Any]], n: int, *, global_steps: int = 1, validate: bool = False
) -> Any:
    """What veRL's legacy trainer hands a worker: rows repeated n times, one uid per prompt."""
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


def prepare_search(out: Path, cache: Path, *, train: int, val: int) -> Path:
    """``reskill verl prepare``'s files in ``out`` for ``train`` synthetic search questions
    and ``val`` seen ones (validation), the corpus cached in ``cache``; returns ``out``."""
    from reskill_verl.prepare import prepare_dataset

    prepare_dataset(
        "search",
        out,
        val_splits=["seen"],
        env_kwargs={"cache_dir": str(cache)},
        limit_train=train,
        limit_val=val,
    )
    return out


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


def config_for(
    tmp_path: Path, smollm_dir: Path, config_name: str, n: int, extra: list[str]
) -> tuple[Any, str]:
    actor = f"reskill_test_{config_name}_{uuid.uuid4().hex[:6]}"
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
    return cfg, actor
