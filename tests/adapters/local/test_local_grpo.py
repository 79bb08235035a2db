"""The local GRPO trainer: advantages, loss, score-mode policy, rollouts, one real update.

Model tests use the real SmolLM2-135M (loaded once per session, CPU fp32) and real text
envs (a deterministic chain env defined in conftest.py, wrapped by the real SkillWrapper).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reskill_local.grpo import (
    GRPOConfig,
    GRPOTrainer,
    group_advantages,
    grpo_token_loss,
    whiten_token_advantages,
)
from reskill_local.policy import _block_mask, _pack_rows
from reskill_local.rollout import RolloutSpec, Sampling, TurnSample, run_rollouts

from reskill_gym.rollout import TurnConfig, choose_action
from reskill_gym.skills import LibraryView, Skill, Trigger
from reskill_gym.wrapper import SkillWrapper

TURN = TurnConfig(action_mode="score", score_norm="sum", history_turns=1)
SAMPLING = Sampling(temperature=4.0)
SYSTEM = TURN.resolve("chain").system_prompt


# ----- pure pieces (no model) ---------------------------------------------------------------
def test_group_advantages_normalise_per_group() -> None:
    rewards = [1.0, 0.0, 0.5, 0.0, 2.0, 2.0, 3.0]
    groups = ["a", "a", "a", "b", "b", "c", "c"]
    adv = group_advantages(rewards, groups, scale=True, eps=0.0)
    for g in set(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        assert abs(adv[idx].mean()) < 1e-12
        assert abs(adv[idx].std() - 1.0) < 1e-9
    centred = group_advantages(rewards, groups, scale=False)
    np.testing.assert_allclose(centred[:3], [0.5, -0.5, 0.0])
    np.testing.assert_allclose(centred[3:5], [-1.0, 1.0])
    # equal rewards and single-member groups carry no signal
    assert group_advantages([1.0, 1.0, 0.3], ["x", "x", "y"]).tolist() == [0.0, 0.0, 0.0]


def test_double_normalisation_whitens_over_tokens() -> None:
    rng = np.random.default_rng(0)
    samples = [
        (TurnSample([1], [0] * int(rng.integers(1, 6)), []), float(a)) for a in rng.normal(size=20)
    ]
    out = whiten_token_advantages(samples)
    tokens = np.concatenate([[a] * len(s.action_ids) for s, a in out])
    assert abs(tokens.mean()) < 1e-9 and abs(tokens.std(ddof=1) - 1.0) < 1e-6
    # a group without reward spread (all A = 0) next to one with spread gets a signal
    flat = whiten_token_advantages(
        [(TurnSample([1], [0], []), 0.0), (TurnSample([1], [0], []), 1.0)]
    )
    assert flat[0][1] < 0 < flat[1][1]


def test_token_loss_clips_and_k3_is_zero_at_reference() -> None:
    logp = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    old = torch.tensor([-1.0, -2.5, -0.5])
    adv = torch.tensor([1.0, 1.0, -1.0])
    loss, st = grpo_token_loss(logp, old, logp.detach(), adv, clip_eps=0.2, kl_coef=0.1)
    # token 1 has ratio e^0.5 > 1.2 with A > 0: clipped, no gradient
    assert st["clipped"].tolist() == [0.0, 1.0, 0.0]
    assert torch.all(st["kl"] == 0)
    loss.sum().backward()
    assert logp.grad is not None and logp.grad[1] == 0 and logp.grad[0] < 0 and logp.grad[2] > 0
    # k3 KL is positive away from the reference
    _, st2 = grpo_token_loss(
        logp.detach(), old, logp.detach() + 0.3, adv, clip_eps=0.2, kl_coef=0.1
    )
    assert torch.all(st2["kl"] > 0)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="group_size"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="temperature"):
        GRPOConfig(temperature=-1.0)
    # score mode samples from softmax(score / T): T = 0 fails before any model loads
    with pytest.raises(ValueError, match="trainer.temperature"):
        GRPOTrainer(GRPOConfig(temperature=0.0), lambda t, v: None, ["t"], turn=TURN)
    assert all(GRPOConfig.help().values()), "every config field has help text"


def test_packed_mask_isolates_candidates() -> None:
    ids, pos, seg, p_max, spans = _pack_rows([([5, 6, 7], [[8, 9], [10]]), ([5], [[11]])], pad_id=0)
    assert p_max == 3 and spans[0] == [(3, 2), (5, 1)] and spans[1] == [(3, 1)]
    assert pos[0].tolist() == [0, 1, 2, 3, 4, 3]  # each candidate restarts after the prompt
    allowed = _block_mask(seg, torch.float32)[0, 0] == 0
    assert allowed[5, :3].all() and not allowed[5, 3:5].any()  # cand 2 sees prompt, not cand 1
    assert allowed[4, 3] and not allowed[3, 4]  # causal inside a candidate
    row1 = _block_mask(seg, torch.float32)[1, 0] == 0
    assert seg[1, :2].tolist() == [-1, -1] and not row1[2:, :2].any()  # left pads never attended


def test_no_coevolution_plans_one_fixed_version(tmp_path) -> None:
    from reskill_gym.coevolve import NoCoEvolution
    from reskill_gym.skills import SkillLibrary

    lib = SkillLibrary.open(tmp_path / "lib", create=True)
    plan = NoCoEvolution(lib).plan_step([("g0", "t", 3), ("g1", "u", 1)])
    assert plan.versions == [[lib.head] * 3, [lib.head]] and not plan.testing
    assert plan.arms == [["head"] * 3, ["head"]]


# ----- the policy ---------------------------------------------------------------------------
def test_policy_loads_with_our_chat_layout(base_policy) -> None:
    pol = base_policy
    assert pol.tokenizer.convert_ids_to_tokens(pol.stop_id) == "<|im_end|>"
    assert pol.tokenizer.pad_token_id == pol.stop_id and pol.tokenizer.padding_side == "left"
    text = pol.tokenizer.decode(
        pol.encode_prompt([{"role": "system", "content": "SYS"}, {"role": "user", "content": "hi"}])
    )
    assert "SYS" in text and "SmolLM" not in text and text.endswith("<|im_start|>assistant\n")
    assert pol.encode_action("look")[-1] == pol.stop_id
    assert next(pol.model.parameters()).dtype == torch.float32


def test_score_mode_picks_admissible_and_logprobs_match_recompute(base_policy) -> None:
    pol = base_policy
    prompts = [
        pol.encode_prompt(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Task: open the door.\nYou see a door."},
            ]
        ),
        pol.encode_prompt(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Task: heat the mug."},
            ]
        ),
    ]
    admissible = [
        ["open door", "go to cabinet 1", "go to cabinet 10"],
        ["heat mug 1 with microwave 1", "look"],
    ]
    cand_ids, cand_lps = pol.score_candidates(prompts, admissible)
    for ids_b, lps_b, cmds, prompt in zip(cand_ids, cand_lps, admissible, prompts):
        choice = choose_action(cmds, lps_b, norm="sum", temperature=5.0, u=0.5)
        assert choice.action in cmds and len(choice.probs) == len(cmds)
        action_ids = ids_b[choice.index]
        assert action_ids == pol.encode_action(choice.action)
        # recompute with a plain, unpacked, unpadded forward of prompt + action
        with torch.no_grad():
            ids = torch.tensor([prompt + action_ids])
            logp = torch.log_softmax(pol.model(input_ids=ids).logits[0].float(), -1)
        ref = logp[len(prompt) - 1 : -1].gather(-1, torch.tensor(action_ids)[:, None])[:, 0]
        np.testing.assert_allclose(lps_b[choice.index], ref.numpy(), atol=1e-4)
    # the end token is scored, so a prefix command does not win by default
    scores = pol.score(prompts[:1], [[pol.encode_action(c) for c in admissible[0]]])[0]
    assert len(scores[1]) == len(pol.encode_action("go to cabinet 1"))


# ----- rollouts -----------------------------------------------------------------------------
def _skill_view() -> LibraryView:
    return LibraryView(
        "v-test",
        [
            Skill(
                name="key-first",
                description="d",
                content="SKILLTEXT: take the key before the door.",
                trigger=Trigger(type="general"),
            )
        ],
    )


def test_rollout_trains_only_agent_tokens_and_records_episodes(base_policy, chain_env_cls) -> None:
    made = []

    def make_env(task_id: str, version: str | None):
        env = SkillWrapper(chain_env_cls(max_turns=2), _skill_view())
        made.append((task_id, version))
        return env

    specs = [
        RolloutSpec(
            f"g0-r{i}", "g0", "door", "v-test", seed=7, arm=("candidate" if i else "incumbent")
        )
        for i in range(2)
    ]
    rollouts, stats = run_rollouts(
        base_policy,
        specs,
        make_env,
        TURN,
        SAMPLING,
        generator=torch.Generator().manual_seed(1),
        step=3,
    )
    assert made == [("door", "v-test")] * 2
    assert stats.turns == sum(len(r.episode.turns) for r in rollouts) > 0
    assert stats.tokens_per_s > 0
    admissible = set(chain_env_cls.TASKS["door"][1] + chain_env_cls.TASKS["door"][2])
    for r in rollouts:
        assert not r.dropped and r.episode.stop_reason in ("done", "truncated")
        for sample, turn in zip(r.samples, r.episode.turns):
            prompt = base_policy.tokenizer.decode(sample.prompt_ids)
            action = base_policy.tokenizer.decode(sample.action_ids)
            # the skill block and the observation are in the prompt, never in the trained tokens
            assert "SKILLTEXT" in prompt and turn.observation.split(".")[0] in prompt
            assert action == turn.action + "<|im_end|>" and turn.action in admissible
            assert "SKILLTEXT" not in action and len(sample.old_logprobs) == len(sample.action_ids)
        ep = r.episode
        assert (
            ep.library_version == "v-test"
            and ep.group_id == "g0"
            and ep.step == 3
            and ep.arm == r.spec.arm
        )
        assert all(t.skill_ids == ["key-first@1"] for t in ep.turns)
        assert all("SKILLTEXT" not in t.observation for t in ep.turns)  # bare observations
        assert ep.reward == pytest.approx(sum(t.reward for t in ep.turns))


def test_env_crash_drops_only_that_episode(base_policy, chain_env_cls) -> None:
    envs = []

    def make_env(task_id: str, version: str | None):
        env = chain_env_cls(max_turns=1, crash_at=1 if not envs else None)
        envs.append(env)
        return env

    specs = [RolloutSpec(f"g0-r{i}", "g0", "lamp", None, seed=1) for i in range(2)]
    rollouts, _ = run_rollouts(
        base_policy, specs, make_env, TURN, SAMPLING, generator=torch.Generator().manual_seed(0)
    )
    assert rollouts[0].dropped and "EngineCrashedError" in (rollouts[0].error or "")
    assert not rollouts[1].dropped and rollouts[1].episode.stop_reason == "truncated"
    assert all(e.closed for e in envs)
    assert rollouts[0].episode.error == rollouts[0].error


def test_prompt_budget_shrinks_history_or_drops_the_episode(base_policy, chain_env_cls) -> None:
    """Over ``max_prompt_tokens`` the turn contract's fit keeps the largest history window
    that fits; a first prompt that does not fit drops the episode (nothing over the budget
    reaches the model)."""
    from reskill_gym.rollout import RolloutSession

    turn = TURN.model_copy(update={"history_turns": 2})
    probe = RolloutSession(chain_env_cls(max_turns=2), turn, episode_id="probe")
    probe.reset(task_id="door", seed=0)
    first = len(base_policy.encode_prompt(probe.messages()))
    probe.act_command("look")  # turn 1 fits that budget only without the history
    assert len(base_policy.encode_prompt(probe.messages())) > first
    assert len(base_policy.encode_prompt(probe.prompt(history_turns=0).messages())) <= first
    specs = [RolloutSpec("g0-r0", "g0", "door", None, seed=0)]

    def play(limit: int) -> list:
        rollouts, _ = run_rollouts(
            base_policy,
            specs,
            lambda task_id, version: chain_env_cls(max_turns=2),
            turn,
            Sampling(temperature=4.0, max_prompt_tokens=limit),
            generator=torch.Generator().manual_seed(0),
        )
        return rollouts

    # the first prompt just fits; later ones only without the (long) first observation
    for r in play(first):
        assert not r.dropped and len(r.samples) == 2, r.error
        assert all(len(s.prompt_ids) <= first for s in r.samples)
        later = [base_policy.tokenizer.decode(s.prompt_ids) for s in r.samples[1:]]
        assert all("earlier turns" not in p for p in later)
    for r in play(first - 1):
        assert r.dropped and not r.samples
        assert (
            r.error
            == f"turn 0: ValueError: the first prompt does not fit max_prompt_tokens={first - 1}"
        )


# ----- one real GRPO step -------------------------------------------------------------------
class _RecordingCoEvolution:
    """A real (minimal) implementation of the protocol that remembers what it was told."""

    def __init__(self) -> None:
        self.planned: list = []
        self.recorded: list = []
        self.ended: list[int] = []

    def plan_step(self, groups):
        from reskill_gym.coevolve import StepPlan

        self.planned.append(list(groups))
        return StepPlan(
            versions=[["vA" if j % 2 == 0 else "vB" for j in range(n)] for _g, _t, n in groups],
            arms=[
                ["incumbent" if j % 2 == 0 else "candidate" for j in range(n)] for *_, n in groups
            ],
            head="vA",
            testing=True,
            p_candidate=0.5,
        )

    def record(self, episodes) -> None:
        self.recorded.extend(episodes)

    def end_step(self, step: int):
        self.ended.append(step)
        return [{"kind": "noop", "step": step}]


@pytest.fixture(scope="module")
def one_step(base_policy, chain_env_cls):
    """One GRPO step with KL on, on a copy of the model; shared by the assertions below."""
    import copy

    from reskill_local.policy import Policy

    policy = Policy(
        copy.deepcopy(base_policy.model),
        base_policy.tokenizer,
        base_policy.device,
        base_policy.stop_id,
    )
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    versions: list = []

    def make_env(task_id, version):
        versions.append(version)
        return chain_env_cls(max_turns=2)

    co = _RecordingCoEvolution()
    cfg = GRPOConfig(
        group_size=4,
        groups_per_step=1,
        # near-uniform choices: this test is about the update, not exploration (the 3
        # commands x 2 turns x 4 rollouts leave a group without reward spread ~4 % of seeds)
        temperature=1000.0,
        kl_coef=0.05,
        learning_rate=1e-4,
        seed=2,
    )
    trainer = GRPOTrainer(cfg, make_env, ["door"], turn=TURN, coevo=co, policy=policy)
    result = trainer.step()
    return trainer, result, before, co, versions


def test_grpo_step_updates_parameters_with_finite_loss(one_step) -> None:
    trainer, result, before, _, _ = one_step
    m = result.metrics
    assert m["charts/groups_with_signal"] >= 1, f"seeded group got no reward spread: {m}"
    assert (
        m["update/samples"] > 0
        and math.isfinite(m["losses/total"])
        and math.isfinite(m["losses/policy"])
    )
    changed = [
        n
        for n, p in trainer.policy.model.named_parameters()
        if not torch.equal(p.detach(), before[n])
    ]
    assert changed, "an optimizer step with non-zero advantages must move the weights"
    for key in (
        "charts/approx_kl",
        "charts/clipfrac",
        "episode/reward_mean",
        "episode/valid_action_ratio",
        "charts/group_reward_std",
        "charts/rollout_tokens_per_s",
        "charts/update_tokens_per_s",
        "time/step_s",
    ):
        assert key in m and math.isfinite(m[key]), key


def test_kl_is_zero_at_step_zero(one_step) -> None:
    _, result, _, _, _ = one_step
    # KL is measured before the (only) optimizer step, when policy == reference
    assert result.metrics["losses/kl"] == pytest.approx(0.0, abs=1e-7)
    assert result.metrics["charts/approx_kl"] == pytest.approx(
        0.0, abs=1e-4
    )  # rollout vs update log-probs
    assert result.metrics["charts/clipfrac"] == 0.0


def test_kl_is_positive_after_the_update(one_step) -> None:
    trainer, _, _, _, _ = one_step
    pol = trainer.policy
    prompt = pol.encode_prompt(
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Task: open the door."},
        ]
    )
    sample = TurnSample(prompt, pol.encode_action("take key"), [])
    with torch.no_grad():
        new = pol.logprobs([sample.prompt_ids], [sample.action_ids])[0]
    ref = trainer._reference_logprobs([(sample, 0.0)])[0]
    _, st = grpo_token_loss(new, new, ref, torch.zeros_like(new), clip_eps=0.2, kl_coef=1.0)
    assert float(st["kl"].sum()) > 0


def test_step_talks_to_coevolution(one_step) -> None:
    _, result, _, co, versions = one_step
    assert co.planned == [[("s0-g0", "door", 4)]] and co.ended == [0]
    assert versions == ["vA", "vB", "vA", "vB"]
    assert [e.arm for e in co.recorded] == ["incumbent", "candidate", "incumbent", "candidate"]
    assert all(e.group_id == "s0-g0" and e.step == 0 and e.task_id == "door" for e in co.recorded)
    assert result.events == [{"kind": "noop", "step": 0}] and result.episodes == co.recorded
    assert result.metrics["time/coevo_s"] >= 0


def test_checkpoint_round_trip(one_step, tmp_path) -> None:
    trainer, _, _, _, _ = one_step
    path = tmp_path / "ckpt" / "trainer.pt"
    trainer.save(path)
    state = torch.load(path, weights_only=False)
    assert state["step"] == 1 and set(state["weights"]) == {
        n for n, p in trainer.policy.model.named_parameters() if p.requires_grad
    }
    draws = (
        trainer.rng.integers(1000, size=4).tolist(),
        torch.rand(2, generator=trainer.sampler).tolist(),
    )
    trainer.load(path)
    assert (
        trainer.rng.integers(1000, size=4).tolist(),
        torch.rand(2, generator=trainer.sampler).tolist(),
    ) == draws
    assert not list(path.parent.glob(".trainer.pt.*")), "no temp file left behind"


# ----- the real ALFWorld env (tiny rooms) and generate mode ------------------------------------
def _alfworld_factory(max_turns: int):
    import gymnasium as gym

    import reskill_gym  # noqa: F401  (registers the ids)

    def make_env(task_id: str, version: str | None):
        return gym.make("ReSkill-ALFWorld-v0", difficulty="tiny", max_turns=max_turns)

    return make_env


def test_alfworld_score_rollout_uses_admissible_commands(base_policy) -> None:
    pytest.importorskip("alfworld")
    make_env = _alfworld_factory(max_turns=1)
    specs = [RolloutSpec(f"g0-r{i}", "g0", "tiny/train/0000", None, seed=0) for i in range(2)]
    rollouts, stats = run_rollouts(
        base_policy, specs, make_env, TURN, SAMPLING, generator=torch.Generator().manual_seed(0)
    )
    for r in rollouts:
        assert not r.dropped, r.error
        ep = r.episode
        assert ep.env_id == "ReSkill-ALFWorld-v0" and ep.task and len(ep.turns) == 1
        assert r.samples[0].action_ids == base_policy.encode_action(ep.turns[0].action)
        assert ep.turns[0].parse == "score" and ep.library_version is not None


@pytest.mark.slow
def test_alfworld_grpo_steps(base_policy, tmp_path) -> None:
    import copy

    from reskill_local.policy import Policy

    pytest.importorskip("alfworld")
    policy = Policy(
        copy.deepcopy(base_policy.model),
        base_policy.tokenizer,
        base_policy.device,
        base_policy.stop_id,
    )
    cfg = GRPOConfig(
        group_size=4,
        groups_per_step=1,
        temperature=3.0,
        kl_coef=0.01,
        metrics_path=str(tmp_path / "m.jsonl"),
    )
    trainer = GRPOTrainer(
        cfg,
        _alfworld_factory(max_turns=4),
        ["tiny/train/0000", "tiny/train/0001"],
        turn=TURN,
        policy=policy,
    )
    results = trainer.train(2)
    assert [r.step for r in results] == [0, 1]
    assert all(math.isfinite(r.metrics["losses/total"]) for r in results)
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_generate_mode_records_parse_outcomes(base_policy, chain_env_cls) -> None:
    turn = TurnConfig(action_mode="generate", action_format="lenient")
    specs = [RolloutSpec(f"g0-r{i}", "g0", "door", None, seed=0) for i in range(2)]
    torch.manual_seed(0)
    rollouts, stats = run_rollouts(
        base_policy,
        specs,
        lambda t, v: chain_env_cls(max_turns=1),
        turn,
        Sampling(temperature=1.0, max_new_tokens=8),
        generator=torch.Generator(),
    )
    parses = [t.parse for r in rollouts for t in r.episode.turns]
    assert len(parses) == 2 and set(parses) <= {"exact", "contained", "raw", "empty"}
    for r in rollouts:
        sample = r.samples[0]
        assert len(sample.action_ids) <= 8 and len(sample.old_logprobs) == len(sample.action_ids)
        recomputed = base_policy.logprobs([sample.prompt_ids], [sample.action_ids])[0]
        np.testing.assert_allclose(sample.old_logprobs, recomputed.detach().numpy(), atol=1e-4)
