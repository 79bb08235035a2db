"""The run folder every single-machine run writes: config sections, logs, checkpoints, resume.

Exports ``ConfigError``, ``RunConfig``, ``EnvConfig``, ``RunSummary``, ``StepProgress``,
``eta_text``,
``CHECKPOINTS``, ``check_keys``, ``format_validation``, ``unwrap_optional``,
``merge_config``, ``config_for_file``, ``default_run_name``, ``create_run_folder``,
``release_start``, ``STARTING``, ``reopen_run_folder``, ``copy_library``,
``latest_checkpoint``, ``write_checkpoint``, ``restore_coevolution``, ``truncate_logs``,
``truncate_jsonl``, ``append_jsonl``, ``step_row``, ``event_rows``, ``record_episodes``,
``run_coevolution_config``, ``init_wandb``, ``log_wandb``, ``cpu_seconds`` and
``set_console_log_level``.

``reskill train`` (the local GRPO trainer, ``reskill_local.train``) and ``reskill evolve``
(frozen-policy co-evolution, :mod:`reskill_gym.evolve`) write the same folder, so
``reskill report`` renders either::

    config.yaml          the full resolved config, written at start (${oc.env:...}
                         references kept as written, other secrets [REDACTED])
    skills/              the skill library (copied from the seed library), with history
    checkpoints/step_000004/{coevolution.json, run.json, <the runner's own state>}
    checkpoints/LATEST   name of the newest complete checkpoint
    metrics.jsonl        one line per step (episode/*, arms/*, versions/*, creator/*, ...)
    events.jsonl         co-evolution events (creator, tests, dropped episodes)
    episodes/            every episode played, per step (reskill_gym.step_episodes)
    creator/step_<N>/    each creator pass's inputs, prompts, answers and verdicts
    report.md, plots/    written at the end (``reskill report`` regenerates them)
    .starting            from creation to the first checkpoint (see below)

A run folder is made whole: ``config.yaml`` and ``skills/`` are written into a temporary
folder renamed into place, so a seed library that cannot be copied leaves nothing. Until
its first checkpoint the folder holds ``.starting``, locked (``flock``) by the process
running it. A run that fails before that (an env or a policy that does not build, a
config error found when the run is built) leaves a folder with ``.starting`` and no lock;
a new run of the same name replaces it when it holds nothing but what creation wrote
(with a warning naming it), else the error says what the folder is and how to resume it.

Both configs share the ``run`` (:class:`RunConfig`) and ``env`` (:class:`EnvConfig`)
sections and are checked key by key before anything heavy is built (:func:`merge_config`:
a typo fails at once with the key's path and a "did you mean").

Checkpoints are written into a temporary folder that is renamed into place, then
``LATEST`` is replaced (atomic rename): a ``kill -9`` at any moment leaves the previous
complete checkpoint. On resume, lines of ``metrics.jsonl`` / ``events.jsonl`` from steps
after it are dropped (:func:`truncate_logs`; the steps are replayed). Rows are written
before the checkpoint, so a kill between the two never loses or doubles a step.

>>> check_keys({"run": {"stpes": 2}}, {"run": RunConfig}, "", "demo.yaml")
Traceback (most recent call last):
...
reskill_gym.runfolder.ConfigError: demo.yaml: unknown key 'run.stpes' (did you mean 'run.steps'?)
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import fcntl
import json
import logging
import math
import os
import re
import resource
import shutil
import stat
import tempfile
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text, fsync_dir
from reskill_gym.skills.bundle import DEFAULT_BUDGET_CHARS, DEFAULT_MAX_ACTIVE_SKILLS

__all__ = [
    "ConfigError",
    "RunConfig",
    "EnvConfig",
    "RunSummary",
    "StepProgress",
    "eta_text",
    "CHECKPOINTS",
    "check_keys",
    "format_validation",
    "unwrap_optional",
    "merge_config",
    "config_for_file",
    "default_run_name",
    "create_run_folder",
    "release_start",
    "STARTING",
    "reopen_run_folder",
    "copy_library",
    "latest_checkpoint",
    "write_checkpoint",
    "restore_coevolution",
    "truncate_logs",
    "truncate_jsonl",
    "append_jsonl",
    "step_row",
    "event_rows",
    "record_episodes",
    "run_coevolution_config",
    "init_wandb",
    "log_wandb",
    "cpu_seconds",
    "set_console_log_level",
]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
_LATEST = "LATEST"
_LOGS = ("metrics.jsonl", "events.jsonl")
_CHECKPOINT_NAME = re.compile(r"^step_\d{6,}\Z")
#: Largest metrics/events log a resume rewrites (refused beyond: a run writes far less).
MAX_LOG_BYTES = 1 << 30


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the file and the key."""


# =========================================================================================
# Shared config sections
# =========================================================================================
class RunConfig(BaseModel):
    """Where the run lives and how long it lasts."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(
        None, description="Run folder name; default '<env>__<exp_name>__<seed>__<unix time>'."
    )
    exp_name: str = Field("reskill", description="Experiment name (run names, wandb).")
    out_dir: str = Field("runs", description="Parent folder of run folders.")
    seed: int = Field(
        1, description="The run's seed; trainer/coevolution/creator seeds default to it."
    )
    steps: int = Field(
        10, ge=1, description="Steps in total (GRPO steps in `reskill train`; a resume continues)."
    )
    skills_mode: Literal["coevolve", "frozen", "none"] = Field(
        "coevolve",
        description="coevolve: library, tester and creator evolve with the policy; frozen: "
        "the seed library, never changed (plain GRPO with skills); none: no skills at all.",
    )
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept on disk.")
    wandb: bool = Field(
        False, description="Log to Weights & Biases when installed (WANDB_MODE=offline honoured)."
    )
    wandb_project: str = Field("reskill-gym", description="wandb project.")
    wandb_entity: str | None = Field(None, description="wandb entity (team or user).")
    progress: bool = Field(True, description="Show the rich progress display.")
    report: bool = Field(True, description="Write report.md and plots when the run ends.")
    record_episodes: bool = Field(
        True,
        description="Write every step's episodes (turns, replies, skills shown, rewards) to "
        "episodes/ as compressed JSONL with an index, for `reskill view` and scripts.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="Level of library log lines on the console."
    )


class EnvConfig(BaseModel):
    """Which environment, which tasks, and how skills are shown."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(
        "alfworld",
        description="A registered env (`reskill env list`: alfworld, scienceworld, search, "
        "textworld or a plugin's name) or its Gymnasium id.",
    )
    split: str = Field("train", description="Task split groups are drawn from.")
    tasks: list[str] | None = Field(
        None, description="Explicit task ids (default: every task of the split)."
    )
    max_tasks: int | None = Field(
        None, ge=1, description="Use only the first N task ids of the split."
    )
    skills: str = Field(
        "seed",
        description="Initial library copied into the run's skills/: 'seed' (the env's seed "
        "library), a folder of skill folders, a library (PATH@VERSION pins a version; the run "
        "starts its own history from it) or 'none' (start empty).",
    )
    max_active_skills: int = Field(
        DEFAULT_MAX_ACTIVE_SKILLS, ge=0, description="Skills per turn (bundle cap)."
    )
    skill_budget_chars: int | None = Field(
        DEFAULT_BUDGET_CHARS,
        ge=0,
        description="Character budget of the rendered skill block (None: no cap).",
    )
    template: str | dict[str, Any] = Field(
        "compact",
        description="How the skill block is rendered: 'compact' (### name + action) or "
        "'published' (the published ReSkill '## Available Skills' section: when_to_use, "
        "action, examples, the check-when_to_use instruction, '(no skills available)' when "
        "none fires), or a mapping {base: published, show_examples: false, placeholder: ''} "
        "(see reskill_gym.skills.bundle).",
    )
    reuse_engines: bool = Field(
        True,
        description="Keep env engines (worker processes) alive across rollouts instead of "
        "starting one per rollout (~3 s each for ALFWorld).",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the env (difficulty, max_turns, step_timeout, ...).",
    )

    @model_validator(mode="before")
    @classmethod
    def _gym_short_form(cls, data: Any) -> Any:
        return cls.short_form(data)

    @classmethod
    def short_form(cls, data: Any) -> Any:
        """``{gym_id: X, kwargs: {...}, task_key: ...}`` -> the ``gym`` env with those
        options (its ``kwargs`` are ``gym.make``'s, see reskill_gym.envs.gym_adapter); any
        other input as it is. The key check of config files reads the section through it."""
        if not isinstance(data, dict) or "gym_id" not in data:
            return data
        from reskill_gym.envs.gym_adapter import ADAPTER_KEYS

        data = dict(data)
        if data.get("name", "gym") != "gym":
            raise ValueError(f"env: gym_id goes with name: gym (or no name), not {data['name']}")
        adapter = {k: data.pop(k) for k in [*ADAPTER_KEYS, "max_turns"] if k in data}
        adapter["env_kwargs"] = data.pop("kwargs", None) or {}
        return data | {"name": "gym", "kwargs": adapter}

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from reskill_gym.envs.registration import get_spec

        return get_spec(v).name  # unknown: a close match and the registered list

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        from reskill_gym.skills.bundle import resolve_template

        resolve_template(v, where="env.template")  # an unknown name fails at load
        return v

    @model_validator(mode="after")
    def _kwargs(self) -> EnvConfig:
        from reskill_gym.envs.registration import check_env_kwargs

        check_env_kwargs(self.name, self.kwargs, "env.kwargs")
        return self

    def wrapper_kwargs(self) -> dict[str, Any]:
        """Options of the ``SkillWrapper`` (bundle cap, budget and template)."""
        from reskill_gym.skills.bundle import resolve_template

        return {
            "max_active_skills": self.max_active_skills,
            "skill_budget_chars": self.skill_budget_chars,
            "template": resolve_template(self.template, where="env.template"),
        }

    def select_tasks(self, all_ids: Sequence[str]) -> list[str]:
        """``tasks`` if given (each must be one of the split's ids), else the split's ids; the
        first ``max_tasks``; never empty."""
        if self.tasks:
            known = set(all_ids)
            unknown = [t for t in self.tasks if t not in known]
            if unknown:
                raise ConfigError(
                    f"env.tasks: {len(unknown)} task id(s) not in split {self.split!r} of "
                    f"{self.name}, e.g. {unknown[0][:80]!r}"
                )
        tasks = list(self.tasks) if self.tasks else list(all_ids)
        if self.max_tasks is not None:
            tasks = tasks[: self.max_tasks]
        if not tasks:
            raise ConfigError(f"env: no tasks in split {self.split!r} of {self.name}")
        return tasks


# =========================================================================================
# Key checks and merging (YAML file + key=value overrides)
# =========================================================================================
def unwrap_optional(tp: Any) -> Any:
    """``X | None`` -> ``X`` (``None`` for a union of several types)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return args[0] if len(args) == 1 else None
    return tp


def _children(schema: Any) -> dict[str, Any] | None:
    """Field name -> type for a pydantic model or dataclass; None for free-form values."""
    if isinstance(schema, dict):
        return schema
    schema = unwrap_optional(schema)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return {n: f.annotation for n, f in schema.model_fields.items()}
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        hints = typing.get_type_hints(schema)
        return {f.name: hints.get(f.name) for f in dataclasses.fields(schema)}
    return None


def check_keys(data: Any, schema: Any, prefix: str, source: str) -> None:
    """Raise ConfigError on the first key no schema knows, with a close match if any.

    ``schema`` is a pydantic model, a dataclass or a dict of section name -> schema.
    """
    fields = _children(schema)
    if fields is None or not isinstance(data, dict):
        return
    short_form = getattr(schema, "short_form", None)
    if callable(short_form):  # a section with a shorthand (env: {gym_id: ...}) checks its expansion
        data = short_form(data)
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)" if close else ""
            known = "" if close else f"; known keys: {', '.join(sorted(fields))}"
            raise ConfigError(f"{source}: unknown key '{path}'{hint}{known}")
        check_keys(value, fields[key], path, source)


def format_validation(exc: ValidationError, source: str) -> str:
    """One line per pydantic error: ``<source>: <key path>: <message> (got <value>)``."""
    from reskill_gym.safe_text import clip_text

    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        # a model-level check names what is wrong; its input is the whole section
        shown = "" if isinstance(got, dict) else f" (got {clip_text(repr(got), 120)})"
        lines.append(f"{source}: {loc}: {msg}{shown}")
    return "\n".join(lines)


def _leaves(data: Any, prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    """(key path, value) of every leaf under the mappings of ``data`` (lists are leaves)."""
    if isinstance(data, Mapping):
        for k, v in data.items():
            yield from _leaves(v, (*prefix, str(k)))
    else:
        yield prefix, data


def _is_credential_key(key: str) -> bool:
    from reskill_gym.redaction import is_secret_key

    return is_secret_key(key)


def merge_config(
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str],
    schemas: Mapping[str, Any],
    *,
    env_references: dict[tuple[str, ...], str] | None = None,
    sections: bool = True,
) -> tuple[dict[str, Any], str]:
    """Merge a YAML file (or nothing) with ``key=value`` overrides; check every key.

    Returns the merged plain dict (with ``sections``, every key of ``schemas`` is a section:
    present, as a dict; without, ``schemas`` names the top-level keys of a flat config such
    as ``reskill eval``'s) and the source name for messages. Values are not validated here: the caller builds its models.
    ``env_references``, when given, is filled with the ``${oc.env:...}`` references of the
    input by key path, so the run folder's ``config.yaml`` can store the reference instead
    of the value (an API key read from the environment stays there). The values of
    credential-named keys are registered with ``reskill_gym.redaction`` (cut from every
    file and log line, whatever their length); one that reads ``[REDACTED]`` (what
    ``config.yaml`` stores for a key given as a literal) is an error asking for it again.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    names = tuple(schemas)
    source = str(path) if path is not None else "config"
    if path is not None:
        p = Path(path)
        if not p.exists():  # a folder or a FIFO: the bounded read below says what it is
            raise ConfigError(f"{p}: config file not found")
        try:  # bounded check first: an alias bomb or huge file never reaches OmegaConf
            from reskill_gym.yaml_loading import check_yaml_file

            text = check_yaml_file(p, follow_links=True)  # the path the user typed
            user = OmegaConf.create(text)  # exactly the text that was checked
        except Exception as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if not OmegaConf.is_dict(user):
            what = f"sections {names}" if sections else "keys"
            raise ConfigError(f"{p}: the top level must be a mapping of {what}")
    else:
        user = OmegaConf.create({})
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"override {bad[0]!r}: expected key=value (e.g. run.steps=4)")
    try:
        over = OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"override: {exc}") from exc
    check_keys(OmegaConf.to_container(user, resolve=False), dict(schemas), "", source)
    check_keys(OmegaConf.to_container(over, resolve=False), dict(schemas), "", "override")
    try:
        both = OmegaConf.merge(user, over)
        raw = OmegaConf.to_container(both, resolve=False)
        merged = OmegaConf.to_container(both, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    assert isinstance(merged, dict)
    if env_references is not None:
        env_references.update(
            (k, v) for k, v in _leaves(raw) if isinstance(v, str) and "${oc.env:" in v
        )
    from reskill_gym.redaction import REDACTED, register_config_secrets

    register_config_secrets(merged)
    for key_path, value in _leaves(merged):
        if value == REDACTED and key_path and _is_credential_key(key_path[-1]):
            dotted = ".".join(key_path)
            raise ConfigError(
                f"{source}: {dotted} is {REDACTED}: a run folder never stores a secret given "
                f"as a literal; give it again ({dotted}=...) or as ${{oc.env:VARIABLE}}"
            )
    config = cast("dict[str, Any]", merged)  # check_keys let through only section names
    for section in names if sections else ():
        if config.get(section) is None:
            config[section] = {}
        elif not isinstance(config[section], dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping")
    return config, source


# =========================================================================================
# Creating and reopening a run folder
# =========================================================================================
class RunFolderConfig(Protocol):
    """What a run config needs for the shared folder code: ``run``, ``env`` sections and a
    plain-data dump for ``config.yaml``."""

    run: RunConfig
    env: EnvConfig

    def to_container(self) -> dict[str, Any]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any: ...


C = TypeVar("C", bound=RunFolderConfig)


def config_for_file(
    container: dict[str, Any], env_references: Mapping[tuple[str, ...], str]
) -> dict[str, Any]:
    """What ``config.yaml`` (and a tracker's copy of the config) holds: the resolved config,
    with each ``${oc.env:...}`` reference of the input put back where its value was, and
    ``[REDACTED]`` for any other value of a credential-named key. A secret never reaches
    the run folder; a resume reads the reference from the environment again.

    >>> config_for_file({"llm": {"api_key": "k1", "timeout_s": 5}, "x": "/data"},
    ...                 {("x",): "${oc.env:DATA}"})
    {'llm': {'api_key': '[REDACTED]', 'timeout_s': 5}, 'x': '${oc.env:DATA}'}
    """
    from reskill_gym.redaction import REDACTED

    out = json.loads(json.dumps(container))
    for key_path, value in _leaves(container):
        ref = env_references.get(key_path)
        if ref is None and not (key_path and _is_credential_key(key_path[-1])):
            continue
        if ref is None and (not isinstance(value, str) or not value):
            continue
        node = out
        for k in key_path[:-1]:
            node = node[k]
        node[key_path[-1]] = ref if ref is not None else REDACTED
    return out


def _write_config(path: Path, container: dict[str, Any]) -> None:
    from omegaconf import OmegaConf

    atomic_write_text(path, OmegaConf.to_yaml(container))


def default_run_name(run: RunConfig, env_name: str) -> str:
    """CleanRL-style ``<env>__<exp>__<seed>__<unix time>``."""
    return f"{env_name}__{run.exp_name}__{run.seed}__{int(time.time())}"


#: In a run folder from its creation until its first checkpoint, locked by the process
#: running it (module docstring).
STARTING = ".starting"
#: What creation writes: a failed start holding only these (and empty folders) is replaced.
_CREATED = frozenset({STARTING, "config.yaml", "skills"})
#: Open, locked ``.starting`` files of the run folders this process started, by folder.
_start_locks: dict[str, int] = {}


def _lock_start(marker: Path) -> int | None:
    """An fd of ``marker`` holding its exclusive lock; ``None`` if another process holds it."""
    fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def release_start(run_dir: str | os.PathLike[str], *, started: bool) -> None:
    """Drop this process's lock on ``run_dir/.starting``; ``started`` (the first checkpoint
    is written) also removes the file, so the folder is an ordinary run folder."""
    run_dir = Path(run_dir)
    if started:
        (run_dir / STARTING).unlink(missing_ok=True)
    fd = _start_locks.pop(str(run_dir.absolute()), None)
    if fd is not None:
        os.close(fd)


def _failed_start(run_dir: Path, command: str) -> int:
    """The locked fd of ``.starting`` in a folder a failed start left, to be replaced; a
    ``ConfigError`` saying what the folder is when it must not be."""
    resume = f"continue it with `reskill {command} --resume {run_dir}` or pick another run.name"
    marker = run_dir / STARTING
    try:
        kind = os.lstat(marker).st_mode
    except FileNotFoundError:
        raise ConfigError(f"run folder {run_dir} already exists; {resume}") from None
    fd = _lock_start(marker) if stat.S_ISREG(kind) else None
    if fd is None:
        raise ConfigError(
            f"run folder {run_dir} is being started by a live run (its {STARTING} is "
            f"locked); pick another run.name, or --resume {run_dir} once that run has stopped"
        )
    # nothing but what creation wrote: no step on record, no checkpoint, nothing of yours
    extra = [
        e.rel
        for e in safe_files.walk_tree(run_dir, links="include", special="include")
        if e.rel.split("/")[0] not in _CREATED and e.kind != "folder"
    ]
    if extra:
        os.close(fd)
        shown = ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
        raise ConfigError(
            f"run folder {run_dir} is what a run that stopped before its first checkpoint "
            f"left, with more than its config and library ({shown}); {resume}"
        )
    return fd


def create_run_folder(config: C, *, command: str) -> tuple[C, Path]:
    """Make the run folder, write ``config.yaml``, copy the initial library into ``skills/``.

    The name is ``run.name`` or CleanRL-style ``<env>__<exp>__<seed>__<unix time>``; the
    returned config has it set. ``command`` (``train``, ``evolve``) goes into the message
    that says how to continue an existing folder. The folder is written whole (a temporary
    folder renamed into place) and holds a locked ``.starting`` until its first checkpoint;
    an existing folder that a failed start left with nothing else is replaced.
    """
    run = config.run
    name = run.name or default_run_name(run, config.env.name)
    run_dir = Path(run.out_dir) / name
    leftover_fd = None
    if run_dir.exists() and any(run_dir.iterdir()):
        leftover_fd = _failed_start(run_dir, command)
    config = config.model_copy(update={"run": run.model_copy(update={"name": name})})
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{name}.new."))
    fd: int | None = None
    try:
        fd = _lock_start(tmp / STARTING)
        if fd is None:  # a fresh temp folder: only another process racing for it
            raise ConfigError(f"{tmp}: locked by another process; try again")
        _write_config(tmp / "config.yaml", config.to_container())
        copy_library(config.env, config.run.skills_mode, tmp / "skills")
        tmp.chmod(0o755)  # mkdtemp's 0700 is no run folder's mode
        fsync_dir(tmp)
        if leftover_fd is not None:  # still locked: no other run can take it meanwhile
            aside = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{name}.failed."))
            os.replace(run_dir, aside / name)
            logger.warning(
                "%s: replacing the folder a run that failed before its first step left "
                "(it held only its config and library)",
                run_dir,
            )
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(tmp, run_dir)  # onto an empty folder the user made, or none
        fsync_dir(run_dir.parent)
    except BaseException:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if leftover_fd is not None:
            os.close(leftover_fd)
    _start_locks[str(run_dir.absolute())] = fd
    return config, run_dir


def reopen_run_folder(
    run_dir: str | os.PathLike[str],
    overrides: Sequence[str],
    load: Callable[[Path, Sequence[str]], C],
) -> tuple[C, Path]:
    """Read a run folder's ``config.yaml`` with ``overrides`` (e.g. ``run.steps=20``) applied;
    the overridden config is written back so the folder always says what ran."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_symlink():
        raise ConfigError(f"{cfg_path}: is a symbolic link; a run folder's files are its own")
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
    config = load(cfg_path, overrides)
    marker = run_dir / STARTING
    if os.path.lexists(marker):  # a failed start resumed: hold it as its creator did
        release_start(run_dir, started=False)  # a lock of an earlier call in this process
        try:
            fd = _lock_start(marker)
        except OSError as exc:
            why = f"{marker}: {exc.strerror}; a run folder's files are its own"
            raise ConfigError(why) from None
        if fd is None:
            raise ConfigError(f"run folder {run_dir} is being run by another process")
        _start_locks[str(run_dir.absolute())] = fd
    if overrides:
        _write_config(cfg_path, config.to_container())
    return config, run_dir


def copy_library(env: EnvConfig, skills_mode: str, dest: Path) -> None:
    """The run's own library: a copy of ``env.skills`` (or empty), opened with history."""
    import functools

    from reskill_gym.envs.registration import seed_library_path
    from reskill_gym.skills import LibraryError, SkillError
    from reskill_gym.skills.source import seed_library

    src = None if skills_mode == "none" else env.skills
    try:
        seed_library(
            src,
            dest,
            seed=functools.partial(seed_library_path, env.name),
            reason=f"copied from {src}",
            proposed_by="run",
        )
    except (OSError, LibraryError, SkillError) as exc:
        raise ConfigError(f"env.skills: {exc}") from exc


# =========================================================================================
# Checkpoints
# =========================================================================================
def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder of a run (``None`` before the first)."""
    root = Path(run_dir) / CHECKPOINTS
    marker = root / _LATEST
    try:  # LATEST names a folder inside checkpoints/, never a path elsewhere
        name = safe_files.read_text(marker, max_bytes=256).strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if _CHECKPOINT_NAME.match(name):
        folder = root / name
        if not folder.is_symlink() and (folder / "run.json").is_file():
            return folder
    # LATEST missing or pointing at a folder being replaced: the newest complete one
    steps = safe_files.list_folder(
        root, links="skip", special="skip", match="step_*", missing_ok=True
    )
    complete = [
        e.path
        for e in steps
        if _CHECKPOINT_NAME.match(e.name) and e.kind == "folder" and (e.path / "run.json").is_file()
    ]
    return complete[-1] if complete else None


def write_checkpoint(
    run_dir: str | os.PathLike[str],
    steps_done: int,
    fill: Callable[[Path], None],
    meta: Mapping[str, Any],
    *,
    keep: int,
) -> Path:
    """Write ``checkpoints/step_<steps_done>`` atomically and point ``LATEST`` at it.

    ``fill(folder)`` writes the runner's files into a temporary folder; ``meta`` (plus
    ``steps_done``) becomes ``run.json``, the completeness marker. The folder is renamed into
    place, ``LATEST`` replaced, and all but the newest ``keep`` checkpoints removed.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{steps_done:06d}"
    final = root / name
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        fill(tmp)
        atomic_write_text(
            tmp / "run.json", json.dumps({"steps_done": steps_done, **meta}, indent=1)
        )
        fsync_dir(tmp)
        if final.exists():  # a replayed step after a resume: replace the stale folder
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / _LATEST, name + "\n")
    fsync_dir(root)
    release_start(run_dir, started=True)  # an ordinary run folder from now on
    # only real folders named like checkpoints go; a link or FIFO here is left alone
    listed = safe_files.list_folder(root, links="skip", special="skip")
    existing = [e.path for e in listed if e.kind == "folder" and fnmatchcase(e.name, "step_*")]
    for old in existing[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in [e.path for e in listed if e.kind == "folder" and e.name.startswith(".step_")]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def restore_coevolution(ckpt: Path, coevo: Any, library: Any) -> dict[str, Any]:
    """Bring library HEAD and co-evolution state back to checkpoint ``ckpt``; returns its
    ``run.json``. Fails (instead of resuming inexactly) when a version the checkpoint
    refers to was pruned from the store."""
    from reskill_gym.coevolve import CoEvolution

    meta: dict[str, Any] = json.loads(safe_files.read_text(ckpt / "run.json"))
    missing = [v for v in [meta["head"]] if v not in library.versions()]
    if isinstance(coevo, CoEvolution):
        state = json.loads(safe_files.read_text(ckpt / "coevolution.json"))
        arms = (state.get("tester") or {}).get("active") or {}
        referenced = arms.get("versions", []) if isinstance(arms, dict) else []
        missing += [v for v in referenced if v not in library.versions()]
        if missing:
            raise RuntimeError(
                f"{ckpt}: versions {missing} are referenced by the checkpoint but no longer "
                f"in the library store {library.store} (pruned?); cannot resume exactly"
            )
        coevo.load_state_dict(state)
    elif library.head != meta["head"]:
        library.checkout(meta["head"], reason="resume from checkpoint")
    return meta


# =========================================================================================
# metrics.jsonl / events.jsonl
# =========================================================================================
def truncate_jsonl(path: Path, max_step: int) -> int:
    """Keep lines with ``step < max_step`` (and any torn last line is dropped); returns kept.
    A link or FIFO at ``path`` is an error (``safe_files``), never followed or waited on."""
    if not os.path.lexists(path):
        return 0
    kept = []
    text = safe_files.read_bytes(path, max_bytes=MAX_LOG_BYTES).decode("utf-8", "replace")
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # torn, damaged or absurdly nested
            continue
        step = row.get("step", -1) if isinstance(row, dict) else None
        if isinstance(step, int) and step < max_step:
            kept.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in kept))
    return len(kept)


def truncate_logs(run_dir: str | os.PathLike[str], steps_done: int) -> None:
    """Drop ``metrics.jsonl`` / ``events.jsonl`` lines and ``episodes/`` files of steps after
    the checkpoint."""
    from reskill_gym.step_episodes import truncate_step_episodes

    for name in _LOGS:
        truncate_jsonl(Path(run_dir) / name, steps_done)
    truncate_step_episodes(run_dir, steps_done)


def record_episodes(
    run_dir: str | os.PathLike[str], step: int, episodes: Sequence[Any], coevo: Any
) -> None:
    """Write step ``step``'s episodes (dropped ones included) with the SKILL.md text of every
    skill they were shown, from the versions ``coevo.view`` gives (see
    :mod:`reskill_gym.step_episodes`)."""
    from reskill_gym.step_episodes import shown_skill_texts, write_step_episodes

    write_step_episodes(
        run_dir, step, episodes, skill_texts=shown_skill_texts(episodes, coevo.view)
    )


def run_coevolution_config(config: Any, run_dir: Path) -> Any:
    """A run's ``CoEvolutionConfig``: checkpoints are the run's own (``checkpoints/``), and
    creator passes keep their artifacts in ``<run>/creator/`` unless the config says where."""
    update: dict[str, Any] = {"checkpoint_dir": None}
    if config.creator.artifacts_dir is None:
        update["creator"] = config.creator.model_copy(update={"artifacts_dir": run_dir / "creator"})
    return config.model_copy(update=update)


def append_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows (credentials redacted), flushed and fsynced."""
    if not rows:
        return
    from reskill_gym.redaction import redact  # no credential reaches events/metrics files

    with safe_files.open_append(path) as fh:  # a link or FIFO here is an error, not a target
        for row in rows:
            fh.write((redact(json.dumps(row, allow_nan=True, default=str)) + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def event_rows(events: Iterable[Any], step: int) -> list[dict[str, Any]]:
    """A step's events as ``events.jsonl`` rows (``checkpoint`` events are not logged)."""
    from reskill_gym.coevolve import CoEvolutionEvent

    rows = [
        e.model_dump(mode="json") if isinstance(e, CoEvolutionEvent) else dict(e)
        for e in events
        if not (isinstance(e, CoEvolutionEvent) and e.kind == "checkpoint")
    ]
    for row in rows:
        row.setdefault("step", step)
    return rows


def step_row(
    metrics: Mapping[str, Any],
    step: int,
    *,
    coevo: Any,
    events: Iterable[Any],
    library: Any,
    plan: Any,
    wall_s: float,
    cpu_s: float,
) -> dict[str, Any]:
    """One ``metrics.jsonl`` row: the runner's metrics + the shared co-evolution metrics,
    the live versions, and the run's wall/CPU seconds so far."""
    from reskill_gym.coevolve import CoEvolutionEvent, coevolution_metrics

    row: dict[str, Any] = dict(metrics)
    row["step"] = step
    row.update(coevolution_metrics(coevo, [e for e in events if isinstance(e, CoEvolutionEvent)]))
    row["versions/head"] = library.head if library is not None else None
    if bool(getattr(plan, "testing", False)):
        cands = sorted({v for row_v in plan.versions for v in row_v if v != plan.head})
        row["versions/incumbent"] = plan.head
        row["versions/candidate"] = cands[0] if cands else None
    row["run/wall_s"] = wall_s
    row["run/cpu_s"] = cpu_s
    row["time"] = time.time()
    return row


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (env workers, JVMs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# =========================================================================================
# Logging: wandb, console
# =========================================================================================
def init_wandb(run: RunConfig, run_dir: Path, container: dict[str, Any]) -> Any:
    """A wandb run when ``run.wandb`` is on and wandb is installed, else ``None``."""
    if not run.wandb:
        return None
    try:
        import wandb
    except ImportError:
        logger.warning("run.wandb=true but wandb is not installed; logging to JSONL only")
        return None
    return wandb.init(
        project=run.wandb_project,
        entity=run.wandb_entity,
        name=run_dir.name,
        id=run_dir.name.replace("/", "-")[-64:],
        resume="allow",
        dir=str(run_dir),
        config=container,
    )


def log_wandb(wandb_run: Any, row: Mapping[str, Any], step: int) -> None:
    """Log a row's numbers (no-op without a wandb run)."""
    if wandb_run is None:
        return
    wandb_run.log(
        {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        step=step,
    )


def _quiet_bm25s(record: logging.LogRecord) -> bool:
    return not (record.name.startswith("bm25s") and record.levelno < logging.WARNING)


def set_console_log_level(level: str) -> None:
    """Root log level for a run's console; bm25s's own DEBUG/INFO index lines filtered out.

    bm25s (retrieval triggers) sets its logger to DEBUG when imported, later than this
    runs, so the filter goes on the handlers.
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if _quiet_bm25s not in handler.filters:
            handler.addFilter(_quiet_bm25s)


@dataclass
class RunSummary:
    """What a finished (or interrupted) run call did."""

    run_dir: Path
    steps_done: int
    wall_s: float
    cpu_s: float
    head: str | None
    tests_started: int
    tests_decided: int
    report: Path | None


def eta_text(seconds: float) -> str:
    """``ETA 1h05m`` / ``ETA 12m`` / ``ETA 40s``: what is left at the pace so far."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"ETA {s // 3600}h{s % 3600 // 60:02d}m"
    return f"ETA {s // 60}m" if s >= 60 else f"ETA {s}s"


class StepProgress:
    """Rich progress bar + one line per step with an ETA.

    The step lines are printed with or without the live bar (``--no-progress`` drops only the
    bar), so a run in the background (``nohup ... > log``) still says where it is and when
    it should end. The ETA is the mean step time of this process times the steps left.
    """

    _SHOWN = frozenset(
        {
            "candidate_committed",
            "test_started",
            "test_decided",
            "creator_failed",
            "episode_dropped",
        }
    )

    def __init__(self, enabled: bool, total: int, done: int, *, label: str = "training") -> None:
        self.enabled = enabled
        self.total = total
        self.done = done
        self.label = label
        self._progress: Any = None
        self._task: Any = None
        self._console: Any = None
        self._t0 = time.monotonic()
        self._steps_here = 0

    def __enter__(self) -> StepProgress:
        from rich.console import Console

        self._t0 = time.monotonic()
        if not self.enabled:
            self._console = Console(highlight=False, soft_wrap=True)
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._progress.__enter__()
        self._console = self._progress.console
        self._task = self._progress.add_task(self.label, total=self.total, completed=self.done)
        return self

    def start_step(self, step: int, rollouts: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"step {step}: {rollouts} rollouts")

    def eta_s(self, step: int) -> float:
        """Seconds left after ``step`` at this process's mean step time."""
        per_step = (time.monotonic() - self._t0) / max(1, self._steps_here)
        return per_step * max(0, self.total - step - 1)

    def end_step(self, step: int, row: Mapping[str, Any], events: list[dict[str, Any]]) -> None:
        from reskill_gym.safe_text import terminal_text

        self._steps_here += 1
        if self._console is None:
            return
        cand = row.get("versions/candidate")
        p_new = row.get("versions/p_candidate")
        reward = row.get("episode/reward_mean", math.nan)
        line = (
            f"step {step:3d}/{self.total} | rollouts {int(row.get('episode/count', 0))}"
            f" ({int(row.get('episode/dropped', 0))} dropped) | reward {reward:.2f}"
            f" | test {cand or '-'}"
            + (f" | p_new {p_new:.2f}" if p_new is not None else "")
            + f" | {row.get('time/step_s', 0.0):.0f}s | {eta_text(self.eta_s(step))}"
        )
        self._console.print(line, markup=False)
        for e in events:
            if e.get("kind") in self._SHOWN:
                message = terminal_text(str(e.get("message", ""))[:150], one_line=True)
                self._console.print(f"      {e['kind']}: {message}", markup=False)
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=self.label)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
