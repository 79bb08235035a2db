"""``reskill creator ...``: run a creator pass on a saved reservoir, record a reservoir.

Exports ``creator_app`` (a Typer app attached to ``reskill`` as ``creator``).

``run`` loads a reservoir file, opens (or initialises) a skill library, runs one pass with
the chosen backend and commits the verified proposal as a new version whose history entry
carries the rationale, the assertions that motivated it, the verification and the cost
(see ``reskill skills log`` / ``diff``). ``record`` plays an environment with a scripted
agent that makes typical mistakes (``reskill_gym.testing.agents``) and saves the episodes as
a reservoir file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from reskill_gym.rollout.config import DEFAULT_GROUP_SIZE

__all__ = ["creator_app"]

creator_app = typer.Typer(
    help="Skill creator: propose library revisions from recorded episodes.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(msg: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code=code)


def _emit(data: Any) -> None:
    from reskill_gym.redaction import redact

    typer.echo(redact(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


@creator_app.command("run")
def run_cmd(
    reservoir: Path = typer.Option(..., "--reservoir", "-r", help="Reservoir JSONL file."),
    library: Path = typer.Option(
        ...,
        "--library",
        "-L",
        exists=True,
        file_okay=False,
        help="Skill library folder (a library, or a folder of skills to make one of).",
    ),
    backend: str = typer.Option(
        "rules",
        "--backend",
        "-b",
        help="rules | anthropic[:model] | bedrock:model | openai:<base_url>#<model> | local[:path]",
    ),
    step: int = typer.Option(
        None, "--step", min=0, help="Training step recorded with the version."
    ),
    config: Path = typer.Option(
        None,
        "--config",
        exists=True,
        dir_okay=False,
        help="JSON file of CreatorConfig fields (backend/--step override it).",
    ),
    state: Path = typer.Option(
        None, "--state", dir_okay=False, help="JSON file keeping the assertion store between runs."
    ),
    min_reservoir_size: int = typer.Option(
        None, "--min-reservoir-size", min=1, help="Override CreatorConfig.min_reservoir_size."
    ),
    pipeline: str = typer.Option(
        None, "--pipeline", help="LLM creator algorithm: published (default) | project."
    ),
    artifacts: Path = typer.Option(
        None, "--artifacts", file_okay=False, help="Folder for per-stage pass artifacts."
    ),
    commit: bool = typer.Option(True, "--commit/--no-commit", help="Commit the proposal."),
    set_head: bool = typer.Option(
        True, "--set-head/--candidate", help="Move HEAD, or store the version as a candidate."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run one creator pass and commit the verified proposal as a new library version.

    Exit status: 0 a proposal, 3 no proposal (the reason is printed), 2 bad input.
    """
    from pydantic import ValidationError

    from reskill_gym import safe_files
    from reskill_gym.atomic import atomic_write_text
    from reskill_gym.creator import CreatorConfig, Reservoir, SkillCreator
    from reskill_gym.skills import LibraryError, SkillError, SkillLibrary

    try:
        fields: dict[str, Any] = (
            json.loads(safe_files.read_text(config, follow_links=True)) if config else {}
        )
        fields["backend"] = backend
        if min_reservoir_size is not None:
            fields["min_reservoir_size"] = min_reservoir_size
        if pipeline is not None:
            fields["pipeline"] = pipeline
        if artifacts is not None:
            fields["artifacts_dir"] = artifacts
        cfg = CreatorConfig(**fields)
    except (OSError, json.JSONDecodeError, ValidationError) as e:
        raise _fail(f"config {config or ''}: {e}") from None
    try:
        res = Reservoir.load(reservoir)
    except (OSError, ValueError) as e:
        raise _fail(str(e)) from None
    try:
        lib = SkillLibrary.open(library, create=True, proposed_by="cli")
    except (LibraryError, SkillError) as e:
        raise _fail(str(e)) from None
    creator = SkillCreator(cfg)
    if state is not None and state.is_file():
        try:
            creator.load_state_dict(json.loads(safe_files.read_text(state, follow_links=True)))
        except (OSError, ValueError, KeyError) as e:
            raise _fail(f"{state}: {e}") from None
    try:
        proposal = creator.propose(res, lib.view(), step=step)
    finally:
        creator.close()
    if state is not None:
        atomic_write_text(state, json.dumps(creator.state_dict(), indent=1))
    result = creator.last_result
    assert result is not None
    version = None
    if proposal is not None and commit:
        try:
            version = proposal.commit(lib, set_head=set_head)
        except (LibraryError, SkillError) as e:
            raise _fail(f"commit failed: {e}") from None
    if as_json:
        _emit(
            {
                "version": version,
                "proposal": proposal.model_dump(mode="json") if proposal else None,
                "reason": result.reason,
                "cost": result.cost.model_dump(),
                "events": [e.model_dump(mode="json", exclude={"raw_text"}) for e in result.events],
            }
        )
    elif proposal is None:
        typer.echo(f"no proposal: {result.reason}")
        for ev in result.events:
            if ev.kind not in ("pass_started", "pass_finished"):
                from reskill_gym.redaction import redact

                typer.echo(redact(f"  [{ev.stage}/{ev.kind}] {ev.message}"))
    else:
        typer.echo(f"proposal by {proposal.proposed_by}: {proposal.summary()}")
        for op in proposal.operations:
            rep = proposal.verification.get(op.name)
            if op.skill is not None:
                t = op.skill.trigger
                trig = t.type + (f" /{t.pattern}/" if t.pattern else "")
                rate = (
                    f", fires in {rep.trigger_rate:.0%} of targets"
                    if rep and rep.trigger_rate is not None
                    else ""
                )
                typer.echo(f"  {op.op} {op.name} [{trig}{rate}]\n    {op.skill.content}")
            else:
                typer.echo(f"  {op.op} {op.name}")
        typer.echo(f"rationale: {proposal.rationale}")
        c = proposal.cost
        typer.echo(
            f"cost: {c.calls} LLM calls, {c.input_tokens}+{c.output_tokens} tokens, ${c.usd:.4f}, {c.wall_s:.2f}s"
        )
        if version is not None:
            typer.echo(f"committed {version} (parent {proposal.base_version})")
    if proposal is None:
        raise typer.Exit(code=3)  # not an error: scripts tell it apart from bad input (2)


@creator_app.command("record")
def record_cmd(
    env: str = typer.Option(..., "--env", help="An env a scripted agent plays: search | alfworld"),
    out: Path = typer.Option(
        ..., "--out", "-o", dir_okay=False, help="Reservoir JSONL file to write."
    ),
    tasks: int = typer.Option(25, "--tasks", min=1, help="Number of training tasks."),
    group_size: int = typer.Option(
        DEFAULT_GROUP_SIZE, "--group-size", min=1, help="Rollouts per task."
    ),
    seed: int = typer.Option(0, "--seed"),
    library: Path = typer.Option(
        None,
        "--library",
        "-L",
        exists=True,
        file_okay=False,
        help="Skill library injected while playing (records skill_ids).",
    ),
    difficulty: str = typer.Option(
        "tiny", "--difficulty", help="For envs with levels (alfworld: tiny | small | std)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Play an env with a scripted agent that makes typical mistakes; save a reservoir."""
    from reskill_gym.creator import Reservoir
    from reskill_gym.envs.registration import EnvPluginError, UnknownEnvError, get_spec, make_env
    from reskill_gym.rollout import record_episodes
    from reskill_gym.testing.agents import MISTAKE_AGENTS

    try:
        spec = get_spec(env)
    except (UnknownEnvError, EnvPluginError) as e:
        raise _fail(f"--env: {e}", 2) from None
    if spec.name not in MISTAKE_AGENTS:
        raise _fail(
            f"--env {spec.name}: no scripted mistake agent plays it (those that do: "
            f"{', '.join(MISTAKE_AGENTS)})",
            2,
        )
    options = dict(MISTAKE_AGENTS[spec.name][1])
    if spec.difficulties:
        if difficulty not in spec.difficulties:
            raise _fail(
                f"--difficulty must be one of {', '.join(spec.difficulties)}, got {difficulty!r}",
                2,
            )
        options["difficulty"] = difficulty
    if out.parent.exists() and not out.parent.is_dir():
        raise _fail(f"--out {out}: {out.parent} is a file, not a folder", 2)
    agent: Any = MISTAKE_AGENTS[spec.name][0]()
    env_id = spec.gym_id
    base: Any = make_env(spec.name, split="train", **options)
    ids = base.unwrapped.task_ids("train")
    step = max(1, len(ids) // max(tasks, 1))
    chosen = ids[::step][:tasks]
    wrapped = base
    if library is not None:
        from reskill_gym.wrapper import SkillWrapper

        wrapped = SkillWrapper(base, library)
    try:
        eps = record_episodes(
            wrapped, agent, chosen, group_size=group_size, seed=seed, env_id=env_id
        )
    finally:
        base.close()
    res = Reservoir(capacity=max(200, len(eps)))
    res.add(eps)
    res.save(out)
    counts = res.counts()
    if as_json:
        _emit({"out": str(out), **counts})
    else:
        typer.echo(f"wrote {out}: {counts}")
