"""The agent loop run the way veRL runs it: real agent-loop workers built from our composed Hydra
config (the legacy ``AgentLoopWorker`` for ``concat``, V1's ``AgentLoopWorkerTQ`` for
``per_turn``), Hydra-instantiated loops, veRL's own post-processing, a real SmolLM2 generating
token-in/token-out through a server manager with veRL's ``generate`` contract, and the real
ALFWorld / ScienceWorld / Search environments driven through the turn contract.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.verl

verl = pytest.importorskip("verl")

from verl_harness import (  # noqa: E402  (tests/adapters/verl is on sys.path: conftest)
    PL,
    RL,
    TQCapture,
    batch_of,
    compose,
    config_for,
    local_coevolution,
    make_v1_worker,
    make_worker,
    rows_for,
    run_v1_group,
    sampling_params,
)

from reskill_gym.envs.base import EngineStep, TextEnv  # noqa: E402
from reskill_gym.rollout import RolloutSession, TurnConfig  # noqa: E402


# ----- concat: the legacy worker's padded batch ---------------------------------------------
def check_concat_batch(out: Any, tok: Any, n_rows: int) -> None:
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
        assert nt["layout"][i] == "concat"
        length = int(am[i].sum())
        reward = float(b["rm_scores"][i].sum())
        assert reward == pytest.approx(float(nt["env_return"][i]))
        if reward:
            assert int(b["rm_scores"][i].nonzero()[0]) == length - 1, "reward on the last token"
        assert int(nt["turns"][i]) >= 1
        assert nt["stop_reason"][i] in {"done", "truncated", "turn_cap", "length"}
        # mask 1 = the model's own tokens; every mask-0 run is a user turn (observation + skills)
        ids, mask = b["responses"][i, :length].tolist(), rm[i, :length].tolist()
        runs: list[tuple[int, int, list[int]]] = []
        for pos, (t, m) in enumerate(zip(ids, mask)):
            if runs and runs[-1][0] == m:
                runs[-1][2].append(t)
            else:
                runs.append((m, pos, [t]))
        assert runs[0][0] == 1, "the response starts with the first reply"
        for m, _, toks in runs:
            text = tok.decode(toks)
            if m == 0:
                assert "<|im_start|>user" in text and text.rstrip().endswith("assistant"), text
            else:
                assert "<|im_start|>user" not in text
        replies = [(pos, pos + len(toks)) for m, pos, toks in runs if m == 1]
        assert len(replies) == int(nt["turns"][i]) or nt["stop_reason"][i] == "length"
        # invalid replies are spans of whole replies (the trainer penalises their tokens)
        for span in nt["invalid_spans"][i]:
            assert tuple(span) in replies
        assert bool(nt["turn_invalid"][i]) == bool(nt["invalid_spans"][i]) or (
            nt["stop_reason"][i] == "length"
        )


def check_coevolution(arms: list[str], versions: list[str], svc: Any, head: str, cand: str) -> None:
    n = len(arms)
    assert set(versions) <= {head, cand}
    assert all((a == "candidate") == (v == cand) for a, v in zip(arms, versions))
    assert sorted(arms) == sorted(["candidate", "incumbent"] * (n // 2)), "the group is split"
    # episodes reached the tester / reservoir through the client, one per rollout
    assert len(svc._stats.episodes) == n
    assert len(svc.coevo.reservoir) == n
    assert svc.end_step(1)["metrics"]["arms/candidate/episodes"] == n // 2


def test_verl_search_concat_legacy_worker_v1_fields_validation_and_failures(
    tmp_path, smollm_dir, server_factory, make_lib
):
    """Search (passthrough, concat) through the legacy worker; then run() called the V1 way:
    its fields packed as AgentLoopWorkerTQ does, an eval row, an env error, env pooling."""
    import torch
    from reskill_verl.agent_loop import env_pool
    from verl.experimental.agent_loop.agent_loop import (
        DictConfigWrap,
        ToolListWrap,
        _agent_loop_registry,
    )
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from reskill_gym.envs.registration import make_env

    cache = tmp_path / "search-cache"
    raw = make_env("search", cache_dir=str(cache))
    task_id = raw.task_ids("train")[0]
    seen_id = raw.task_ids("seen")[0]
    raw.close()
    cfg, actor = config_for(
        tmp_path,
        smollm_dir,
        "search",
        2,
        [
            f"+reskill.env_kwargs.cache_dir={cache}",
            "reskill.env_kwargs.max_turns=2",
            "reskill.max_turns=2",
        ],
    )
    assert cfg.reskill.rollout.layout == "concat"
    svc, head, candidate = local_coevolution(tmp_path, make_lib, "search", actor)
    worker = make_worker(cfg, None)
    worker.llm_client = server_factory(worker.tokenizer)
    out = asyncio.run(worker.generate_sequences(batch_of(rows_for("search", [task_id]), 2)))
    check_concat_batch(out, worker.tokenizer, 2)
    nt = out.non_tensor_batch
    recorded = {e.episode_id: e for e in svc._stats.episodes}
    for i in range(2):  # the sample's validity flags are the episode record's
        ep = recorded[nt["episode_id"][i]]
        assert bool(nt["turn_invalid"][i]) == any(not t.valid for t in ep.turns)
        assert nt["turn_scores"][i] == [t.reward for t in ep.turns]
    check_coevolution(list(nt["arm"]), list(nt["library_version"]), svc, head, candidate)
    built = env_pool.built
    assert built >= 1

    def instantiate() -> Any:  # exactly _run_agent_loop's call (inside the running event loop)
        import hydra

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
    params = sampling_params(cfg)

    async def v1() -> list[Any]:
        loop = instantiate()
        return [
            await loop.run(params, **row, session_id=1, global_steps=2, uid="uid-v1"),
            await loop.run(params, **bad, session_id=0, global_steps=2, uid="uid-bad"),
            await loop.run(
                {**params, "temperature": 0}, **val, session_id=0, global_steps=2, uid="uid-val"
            ),
        ]

    good, broken, evaluated = asyncio.run(v1())
    assert env_pool.built == built, "the second batch reused pooled envs"
    assert broken == [], "V1: an env failure leaves the session out (no zero-mask row)"
    dropped = [e for e in svc._stats.episodes if e.error is not None]
    assert len(dropped) == 1 and "no-such-question" in dropped[0].error
    assert dropped[0].stop_reason == "error"
    assert (
        evaluated.extra_fields["arm"] == "eval"
        and evaluated.extra_fields["library_version"] == svc.head()
    )
    assert len(svc._stats.episodes) == 2, "eval rows never reach the tester or reservoir"
    taken = svc.take_eval()
    assert {k: taken[k] for k in ("sessions", "failed", "errors")} == {
        "sessions": 1,
        "failed": 0,
        "errors": [],
    }, "only counted"
    won = float(evaluated.extra_fields["won"])
    assert taken["metrics"]["val/seen/episodes"] == 1.0
    assert taken["metrics"]["val/seen/success_rate"] == won
    assert [k for k in taken["metrics"] if "/task_type/" in k and k.startswith("val/seen/")]
    assert svc.take_eval()["sessions"] == 0, "taken once"

    # reskill.validation: published — a live test's arms split validation rollouts too
    assert svc.coevo.tester.active

    async def published_val() -> Any:
        loop = instantiate()
        loop.settings = loop.settings.model_copy(update={"validation": "published"})
        return [
            await loop.run(
                {**params, "temperature": 0}, **val, session_id=i, global_steps=2, uid="uid-pv"
            )
            for i in range(6)
        ]

    pub = asyncio.run(published_val())
    pub_arms = {o.extra_fields["arm"] for o in pub}
    assert pub_arms <= {"incumbent", "candidate"} and pub_arms, pub_arms
    assert all(
        o.extra_fields["library_version"]
        == (head if o.extra_fields["arm"] == "incumbent" else candidate)
        for o in pub
    )
    assert len(svc._stats.episodes) == 2, "published validation never reaches the tester"
    assert svc.take_eval()["metrics"]["val/seen/episodes"] == 6
    assert "[node " in dropped[0].error, "a failure names its node"
    assert good.extra_fields["arm"] in {"incumbent", "candidate"}
    fields = []
    for o, sid in zip((good, evaluated), (1, 0)):
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
    assert tags.tolist() == [1, 1], "from the server"
    # "acc" opts into veRL's validation accounting of failed sessions (counted as acc 0)
    assert all(
        e["reward_extra_info"].keys() == {"acc", "won", "env_return", "turns"} for e in extra
    )

    # the legacy trainer keeps the zero-mask row for a failed env (one output per trajectory)
    legacy = compose(
        "search",
        [
            f"actor_rollout_ref.model.path={smollm_dir}",
            f"reskill.coevolution.actor_name={actor}",
            f"+reskill.env_kwargs.cache_dir={cache}",
            "trainer.use_v1=false",
        ],
    )
    worker.config = legacy

    async def legacy_run() -> Any:
        return await instantiate().run(params, **bad, global_steps=3, uid="uid-bad2")

    failed = asyncio.run(legacy_run())
    assert set(failed.response_mask) == {0} and failed.reward_score == 0.0
    assert failed.extra_fields["stop_reason"] == "error"
    assert "no-such-question" in failed.extra_fields["env_error"]

    # a failing generate call is not an env error: it reaches veRL; the env is not reused
    class ServerDown:
        async def generate(self, request_id: str, **kwargs: Any) -> Any:
            raise ConnectionError("server down")

    worker.llm_client = ServerDown()
    discarded = env_pool.discarded

    async def down() -> Any:
        return await instantiate().run(params, **row, global_steps=3, uid="uid-down")

    with pytest.raises(ConnectionError, match="server down"):
        asyncio.run(down())
    assert env_pool.discarded == discarded + 1


# ----- per_turn: V1 worker rows --------------------------------------------------------------
def check_per_turn_rows(
    capture: TQCapture, uid: str, n: int, tok: Any, svc: Any, env_name: str, history: int
) -> list[dict[str, Any]]:
    """Every turn row as V1 stores it, against the episode records co-evolution got."""
    assert capture.status[uid] == ["running", "finished"]
    system = TurnConfig().resolve(env_name).system_prompt
    recorded = {e.episode_id: e for e in svc._stats.episodes if e.group_id == uid}
    assert len(recorded) == n, "one episode per session"
    rows = []
    for session in range(n):
        keys = sorted(
            (k for k in capture.rows if k.startswith(f"{uid}_{session}_")),
            key=lambda k: int(k.rsplit("_", 1)[1]),
        )
        assert keys, f"session {session} has rows"
        assert [int(k.rsplit("_", 1)[1]) for k in keys] == list(range(len(keys)))
        first = capture.rows[keys[0]]
        ep = recorded[first["extra_fields"]["episode_id"]]
        assert len(keys) == len(ep.turns), "one row per turn (no empty replies here)"
        for t, key in enumerate(keys):
            r = capture.rows[key]
            ex, tag = r["extra_fields"], r["_tag"]
            assert r["uid"] == uid and int(r["session_id"]) == session
            assert r["_partition"] == "train"
            prompt, resp = r["prompts"].tolist(), r["responses"].tolist()
            assert len(prompt) <= PL and 1 <= len(resp) <= RL
            assert len(r["rollout_log_probs"]) == len(resp)
            assert r["response_mask"].tolist() == [1] * len(resp)
            rm = r["rm_scores"]
            assert float(rm.sum()) == pytest.approx(ex["env_return"]) == pytest.approx(ep.reward)
            if ep.reward:
                assert int(rm.nonzero()[-1]) == len(resp) - 1, "reward on the last token"
            assert isinstance(tag["min_global_steps"], int)
            assert isinstance(tag["max_global_steps"], int)
            assert ex["layout"] == "per_turn" and ex["turn"] == t
            turn = ep.turns[t]
            assert ex["turn_invalid"] == (not turn.valid)
            assert ex["invalid_spans"] == ([] if turn.valid else [[0, len(resp)]])
            assert ex["action"] == turn.action and ex["skill_ids"] == turn.skill_ids
            assert turn.input_tokens == len(prompt) and turn.output_tokens == len(resp)
            assert tok.decode(resp, skip_special_tokens=True) == turn.reply
            text = tok.decode(prompt)
            assert system in text and "Task:" in text
            assert text.rstrip().endswith("<|im_start|>assistant")
            shown = min(history, t)
            if shown:
                assert f"Your last {shown} of {t} earlier turns:" in text
                for i in range(t - shown, t):
                    past = ep.turns[i]
                    act = past.action or "(invalid reply:"  # passthrough: a rejected reply ran
                    assert f"[Turn {i + 1}] Action: {act}" in text, text
            else:
                assert "earlier turns:" not in text
            rows.append(r)
    return rows


def test_verl_per_turn_search_v1_worker(
    tmp_path, smollm_dir, server_factory, make_lib, monkeypatch
):
    """per_turn: one row per turn through AgentLoopWorkerTQ, history, records (the window
    cut itself: test_verl_per_turn_prompt_shrinks_history_and_legacy_guard)."""
    from reskill_gym.envs.registration import make_env

    cache = tmp_path / "search-cache"
    raw = make_env("search", cache_dir=str(cache))
    task_id = raw.task_ids("train")[1]
    raw.close()
    cfg, actor = config_for(
        tmp_path,
        smollm_dir,
        "search",
        2,
        [
            f"+reskill.env_kwargs.cache_dir={cache}",
            "reskill.env_kwargs.max_turns=2",
            "reskill.max_turns=2",
            "reskill.rollout.layout=per_turn",
            "reskill.rollout.history_turns=1",
        ],
    )
    svc, head, candidate = local_coevolution(tmp_path, make_lib, "search", actor)
    worker, capture = make_v1_worker(cfg, server_factory, monkeypatch)
    uid = asyncio.run(run_v1_group(worker, rows_for("search", [task_id])[0]))
    rows = check_per_turn_rows(capture, uid, 2, worker.tokenizer, svc, "search", history=1)
    by_session = {int(r["session_id"]): r["extra_fields"] for r in rows}
    check_coevolution(
        [by_session[s]["arm"] for s in (0, 1)],
        [by_session[s]["library_version"] for s in (0, 1)],
        svc,
        head,
        candidate,
    )
    assert max(r["extra_fields"]["turn"] for r in rows) >= 1, "history was exercised"


def test_verl_per_turn_prompt_shrinks_history_and_legacy_guard(smollm_dir, tmp_path):
    """Over prompt_length, the history window shrinks to the largest that fits; per_turn on
    the legacy trainer is refused with a message naming the keys."""
    from reskill_verl.agent_loop import ReskillEnvAgentLoop
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from reskill_gym.wrapper import SkillWrapper

    class Corridor(TextEnv):
        env_name = "alfworld"

        def task_ids(self, split: str | None = None) -> list[str]:
            return ["t0"]

        def _engine_reset(self, task_id: str, seed: Any, options: dict) -> Any:
            self.pos = 0
            return "You are at the start of a long corridor.", {
                "task": "reach the end",
                "task_type": "walk",
                "admissible_actions": ["walk forward", "look"],
            }

        def _engine_step(self, action: str) -> EngineStep:
            self.pos += 1
            return EngineStep(
                f"You walk on. Door {self.pos} is closed. " * 3,
                0.0,
                False,
                False,
                admissible_actions=["walk forward", "look"],
            )

    tok = AutoTokenizer.from_pretrained(smollm_dir)
    cfg = compose(
        "alfworld",
        [
            f"actor_rollout_ref.model.path={smollm_dir}",
            f"reskill.coevolution.actor_name=unused-{uuid.uuid4().hex[:6]}",
        ],
    )

    def make_loop(config: Any) -> Any:
        return ReskillEnvAgentLoop(
            trainer_config=DictConfigWrap(config=config),
            server_manager=None,
            tokenizer=tok,
            processor=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data),
        )

    env = SkillWrapper(Corridor(max_turns=20), None)

    async def check() -> None:  # veRL builds loops inside its running event loop
        loop = make_loop(cfg)
        assert loop.layout == "per_turn" and loop.settings.rollout.history_turns == 50
        session = RolloutSession(env, loop.settings.rollout, episode_id="e")
        session.reset(task_id="t0", seed=0)
        for _ in range(6):
            session.act("<action>walk forward</action>")

        async def encode(keep: int) -> list[int]:
            return loop._encode(session.prompt(history_turns=keep).messages())

        async def fit(limit: int) -> Any:  # what run() does: off the event loop
            loop.prompt_length = limit
            return await loop._off_loop(loop._fit_prompt, session)

        sizes = [len(await encode(k)) for k in range(7)]
        assert sizes == sorted(sizes) and sizes[0] < sizes[6]
        assert await fit(sizes[6]) == await encode(6), "fits: the configured window"
        assert await fit(sizes[3]) == await encode(3), "the largest window that fits"
        assert await fit(sizes[3] + 1) == await encode(3)
        assert await fit(sizes[0]) == await encode(0)
        assert await fit(sizes[0] - 1) is None, "not even the bare turn fits"
        text = tok.decode(await encode(3))
        assert "Your last 3 of 6 earlier turns:" in text and "[Turn 3]" not in text

    asyncio.run(check())

    legacy = compose(
        "alfworld",
        [f"actor_rollout_ref.model.path={smollm_dir}", "trainer.use_v1=false"],
    )

    async def guard() -> None:
        make_loop(legacy)

    with pytest.raises(ValueError, match="trainer.use_v1=true or reskill.rollout.layout=concat"):
        asyncio.run(guard())


# ----- the real ALFWorld / ScienceWorld engines ----------------------------------------------
@pytest.mark.slow  # ~30 s: ALFWorld engine start + generations on a loaded 2-core box
def test_verl_alfworld_per_turn_episodes(
    tmp_path, smollm_dir, server_factory, make_lib, monkeypatch
):
    cfg, actor = config_for(
        tmp_path,
        smollm_dir,
        "alfworld",
        2,
        [
            "reskill.env_kwargs.difficulty=tiny",
            "reskill.env_kwargs.source=generated",
            f"+reskill.env_kwargs.cache_dir={tmp_path / 'alfworld-cache'}",
            "reskill.env_kwargs.max_turns=3",
            "reskill.max_turns=3",
        ],
    )
    assert cfg.reskill.rollout.layout == "per_turn"
    svc, head, candidate = local_coevolution(tmp_path, make_lib, "alfworld", actor)
    worker, capture = make_v1_worker(cfg, server_factory, monkeypatch)
    uid = asyncio.run(run_v1_group(worker, rows_for("alfworld", ["tiny/train/0000"])[0]))
    rows = check_per_turn_rows(capture, uid, 2, worker.tokenizer, svc, "alfworld", history=50)
    for r in rows:  # the candidate's "general" skill shows in its rollouts' prompts only
        text = worker.tokenizer.decode(r["prompts"].tolist())
        arm = r["extra_fields"]["arm"]
        assert ("Start by reading the whole observation" in text) == (arm == "candidate")
        assert "Admissible actions:" in text
        fired = r["extra_fields"]["skill_ids"]
        assert any(i.startswith("always-look-first@") for i in fired) == (arm == "candidate")
    by_session = {int(r["session_id"]): r["extra_fields"] for r in rows}
    check_coevolution(
        [by_session[s]["arm"] for s in (0, 1)],
        [by_session[s]["library_version"] for s in (0, 1)],
        svc,
        head,
        candidate,
    )


@pytest.mark.slow  # ~30 s: JVM start + generations
def test_verl_scienceworld_concat_episodes(tmp_path, smollm_dir, server_factory, make_lib):
    from reskill_gym.envs.registration import make_env

    raw = make_env("scienceworld")
    task_id = raw.task_ids("train")[0]
    raw.close()
    cfg, actor = config_for(
        tmp_path,
        smollm_dir,
        "scienceworld",
        2,
        [
            "reskill.env_kwargs.max_turns=2",
            "reskill.max_turns=2",
            "reskill.rollout.layout=concat",
        ],
    )
    svc, head, candidate = local_coevolution(tmp_path, make_lib, "scienceworld", actor)
    worker = make_worker(cfg, None)
    worker.llm_client = server_factory(worker.tokenizer)
    out = asyncio.run(worker.generate_sequences(batch_of(rows_for("scienceworld", [task_id]), 2)))
    check_concat_batch(out, worker.tokenizer, 2)
    nt = out.non_tensor_batch
    check_coevolution(list(nt["arm"]), list(nt["library_version"]), svc, head, candidate)


# ----- Qwen3: veRL's Qwen token builder on the concat stream ---------------------------------
class ScriptedQwenServer:
    """veRL's ``generate`` contract with fixed replies, each ending in ``<|im_end|>`` as a
    Qwen3 model's do (no Qwen3 weights can run here; the tokenizer is the point)."""

    def __init__(self, tokenizer: Any, replies: list[str]) -> None:
        self.tok, self.replies = tokenizer, list(replies)

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: Any, **kw: Any
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        ids = self.tok.encode(self.replies.pop(0), add_special_tokens=False)
        ids.append(self.tok.convert_tokens_to_ids("<|im_end|>"))
        return TokenOutput(
            token_ids=ids,
            log_probs=[-0.5] * len(ids),
            stop_reason="completed",
            extra_fields={"global_steps": 1, "min_global_steps": 1, "max_global_steps": 1},
        )


def test_verl_concat_qwen3_token_merge(tmp_path):
    """A Qwen3 model (config.json model_type qwen3, a generated Qwen tokenizer, no weights
    used) gets veRL's QwenContinuousTokenBuilder; a concat episode's stream is then token for
    token what Qwen's chat template renders for the conversation: the ``\\n`` a reply stopped
    before (after ``<|im_end|>``) is inserted with mask 0, replies (``<|im_end|>`` included)
    carry mask 1 and their log-probs, observations mask 0."""
    from reskill_verl.agent_loop import ReskillEnvAgentLoop, _Stream
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl_fit_harness import build_tiny_model

    from reskill_gym.envs.registration import make_skill_env

    model = build_tiny_model(tmp_path / "qwen3")
    cache = tmp_path / "search-cache"
    cfg = compose(
        "search",
        [
            f"actor_rollout_ref.model.path={model}",
            "reskill.rollout.layout=concat",
            f"+reskill.env_kwargs.cache_dir={cache}",
        ],
    )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    replies = ["<search>who founded the city</search>", "<answer>nobody</answer>"]
    env = make_skill_env("search", skills=None, cache_dir=str(cache))
    task_id = env.unwrapped.task_ids("train")[0]

    async def play() -> tuple[Any, Any, RolloutSession]:
        loop = ReskillEnvAgentLoop(
            trainer_config=DictConfigWrap(config=cfg),
            server_manager=ScriptedQwenServer(tok, replies),
            tokenizer=tok,
            processor=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(cfg.data),
            hf_model_type="qwen3",
        )
        session = RolloutSession(env, loop.settings.rollout, episode_id="q", max_turns=2)
        session.reset(task_id=task_id, seed=0)
        st = _Stream(logprobs=[])
        await loop._play_concat(session, {"logprobs": True}, "rid", st, {})
        return loop, st, session

    loop, st, session = asyncio.run(play())
    env.close()
    assert type(loop.continuous_token_builder).__name__ == "QwenContinuousTokenBuilder"
    assert len(session.episode().turns) == 2
    conversation = [*st.messages, {"role": "assistant", "content": replies[1]}]
    rendered = tok.encode(tok.apply_chat_template(conversation, tokenize=False))
    newline = tok.encode("\n", add_special_tokens=False)
    assert rendered[-1:] == newline and st.ids == rendered[:-1], "the template's stream"
    response = st.ids[len(st.ids) - len(st.mask) :]
    reply_ids = [
        tok.encode(r, add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]
        for r in replies
    ]
    assert response[: len(reply_ids[0])] == reply_ids[0]
    assert response[len(reply_ids[0])] == newline[0], "Qwen's newline after <|im_end|>"
    assert st.mask[: len(reply_ids[0])] == [1] * len(reply_ids[0])
    assert st.mask[len(reply_ids[0])] == 0
    assert response[-len(reply_ids[1]) :] == reply_ids[1] and st.mask[-len(reply_ids[1]) :] == [
        1
    ] * len(reply_ids[1])
    assert sum(st.mask) == sum(map(len, reply_ids)), "only reply tokens are trained"
    assert st.logprobs == [-0.5 if m else 0.0 for m in st.mask]
