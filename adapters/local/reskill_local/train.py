"""A ``reskill train`` run: config, run folder, the GRPO + co-evolution loop, checkpoints, resume.

Exports ``TrainConfig``, ``RunConfig``, ``EnvConfig``, ``ConfigError``, ``load_config``,
``TrainingRun``, ``RunSummary``, ``latest_checkpoint`` and ``CHECKPOINTS``.

A run config has four sections (OmegaConf YAML; ``key=value`` overrides on the command
line): ``run`` (:class:`RunConfig`), ``env`` (:class:`EnvConfig`), ``trainer``
(``reskill_local.grpo.GRPOConfig``) and ``coevolution``
(``reskill_gym.coevolve.CoEvolutionConfig`` with its ``tester`` and ``creator``). The merged
config is checked key by key against those schemas *before* anything heavy is built, so a
typo fails at once with the key's path and a "did you mean".

The run folder (``runs/<env>__<exp>__<seed>__<unix time>`` unless ``run.name`` is set)::

    config.yaml          the full resolved config, written at start
    skills/              the skill library (copied from the seed library), with history
    checkpoints/step_000004/{trainer.pt, coevolution.json, run.json}
    checkpoints/LATEST   name of the newest complete checkpoint
    metrics.jsonl        one line per step (trainer metrics, per-arm reward, test state)
    events.jsonl         co-evolution events (creator, tests, dropped episodes)
    report.md, plots/    written at the end (``reskill report`` regenerates them)

Checkpoints are written after every step into a temporary folder that is renamed into
place, then ``LATEST`` is replaced (atomic rename): a ``kill -9`` at any moment leaves the
previous complete checkpoint. On resume the library HEAD, tester, reservoir, creator
assertions, trainer weights/optimizer and every RNG come from that checkpoint, and lines of
``metrics.jsonl`` / ``events.jsonl`` from steps after it are dropped (they are replayed).
Versions committed after the checkpoint stay in the store as unreferenced objects; being
content-addressed, a replayed proposal gets the same id (never a duplicate).

>>> cfg = load_config(None, ["env.name=alfworld", "run.steps=2"])
>>> cfg.run.steps, cfg.trainer.seed == cfg.run.seed
(2, True)
>>> load_config(None, ["trainer.lerning_rate=1e-5"])
Traceback (most recent call last):
...
reskill_local.train.ConfigError: override: unknown key 'trainer.lerning_rate' (did you mean 'trainer.learning_rate'?)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import resource
import shutil
import tempfile
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reskill_gym.atomic import atomic_write_text, fsync_dir
from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig, CoEvolutionEvent, NoCoEvolution
from reskill_local.grpo import GRPOConfig

__all__ = [
    "TrainConfig",
    "RunConfig",
    "EnvConfig",
    "ConfigError",
    "load_config",
    "TrainingRun",
    "RunSummary",
    "latest_checkpoint",
    "CHECKPOINTS",
]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
_LATEST = "LATEST"
_SECTIONS = ("run", "env", "trainer", "coevolution")


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the file and the key."""


# =========================================================================================
# Config schema
# =========================================================================================
class RunConfig(BaseModel):
    """Where the run lives and how long it lasts."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, description="Run folder name; default '<env>__<exp_name>__<seed>__<unix time>'."
    )
    exp_name: str = Field("reskill", description="Experiment name (run names, wandb).")
    out_dir: str = Field("runs", description="Parent folder of run folders.")
    seed: int = Field(
        1, description="The run's seed; trainer/coevolution/creator seeds default to it."
    )
    steps: int = Field(10, ge=1, description="GRPO steps in total (a resumed run continues).")
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="Level of library log lines on the console."
    )


class EnvConfig(BaseModel):
    """Which environment, which tasks, and how skills are shown."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["alfworld", "scienceworld", "search"] = Field(
        "alfworld", description="Environment (ReSkill-<Name>-v0)."
    )
    split: str = Field("train", description="Task split GRPO groups are drawn from.")
    tasks: list[str] | None = Field(
        None, description="Explicit task ids (default: every task of the split)."
    )
    max_tasks: int | None = Field(
        None, ge=1, description="Use only the first N task ids of the split."
    )
    skills: str = Field(
        "seed",
        description="Initial library copied into the run: 'seed' (skills/<env>), a folder, or "
        "'none' (start empty).",
    )
    max_active_skills: int = Field(8, ge=0, description="Skills per turn (bundle cap).")
    skill_budget_chars: int | None = Field(
        1500, ge=0, description="Character budget of the rendered skill block (None: no cap)."
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


class TrainConfig(BaseModel):
    """The whole run config (what ``config.yaml`` holds)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    run: RunConfig = Field(default_factory=RunConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    trainer: GRPOConfig = Field(default_factory=GRPOConfig)
    coevolution: CoEvolutionConfig = Field(default_factory=CoEvolutionConfig)

    def to_container(self) -> dict[str, Any]:
        """Plain data for ``config.yaml`` (round-trips through :func:`load_config`)."""
        data = self.model_dump(mode="json")
        data["trainer"] = dataclasses.asdict(self.trainer)
        return json.loads(json.dumps(data))


_SCHEMAS: dict[str, Any] = {
    "run": RunConfig,
    "env": EnvConfig,
    "trainer": GRPOConfig,
    "coevolution": CoEvolutionConfig,
}


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return args[0] if len(args) == 1 else None
    return tp


def _children(schema: Any) -> dict[str, Any] | None:
    """Field name -> type for a pydantic model or dataclass; None for free-form values."""
    if isinstance(schema, dict):
        return schema
    schema = _unwrap(schema)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return {n: f.annotation for n, f in schema.model_fields.items()}
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        hints = typing.get_type_hints(schema)
        return {f.name: hints.get(f.name) for f in dataclasses.fields(schema)}
    return None


def _check_keys(data: Any, schema: Any, prefix: str, source: str) -> None:
    """Raise ConfigError on the first key no schema knows, with a close match if any."""
    fields = _children(schema)
    if fields is None or not isinstance(data, dict):
        return
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)" if close else ""
            known = "" if close else f"; known keys: {', '.join(sorted(fields))}"
            raise ConfigError(f"{source}: unknown key '{path}'{hint}{known}")
        _check_keys(value, fields[key], path, source)


def _format_validation(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        lines.append(f"{source}: {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Merge a YAML file (or nothing) with ``key=value`` overrides and validate the result.

    Seeds: ``trainer.seed``, ``coevolution.seed`` and ``coevolution.creator.seed`` follow
    ``run.seed`` unless set explicitly; ``trainer.exp_name`` follows ``run.exp_name``.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    source = str(path) if path is not None else "config"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            user = OmegaConf.load(p)
        except Exception as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if not OmegaConf.is_dict(user):
            raise ConfigError(f"{p}: the top level must be a mapping of sections {_SECTIONS}")
    else:
        user = OmegaConf.create({})
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"override {bad[0]!r}: expected key=value (e.g. run.steps=4)")
    try:
        over = OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"override: {exc}") from exc
    top = _SCHEMAS
    _check_keys(OmegaConf.to_container(user, resolve=False), top, "", source)
    _check_keys(OmegaConf.to_container(over, resolve=False), top, "", "override")
    try:
        merged = OmegaConf.to_container(OmegaConf.merge(user, over), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    assert isinstance(merged, dict)
    for section in _SECTIONS:
        if merged.get(section) is None:
            merged[section] = {}
        elif not isinstance(merged[section], dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping")
    run_seed = merged["run"].get("seed", RunConfig.model_fields["seed"].default)
    merged["trainer"].setdefault("seed", run_seed)
    merged["trainer"].setdefault(
        "exp_name", merged["run"].get("exp_name", RunConfig.model_fields["exp_name"].default)
    )
    merged["coevolution"].setdefault("seed", run_seed)
    creator = merged["coevolution"].setdefault("creator", {}) or {}
    merged["coevolution"]["creator"] = creator
    creator.setdefault("seed", run_seed)
    trainer_values = merged.pop("trainer")
    _check_trainer_types(trainer_values, source)
    try:
        trainer = GRPOConfig(**trainer_values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: trainer: {exc}") from exc
    try:
        return TrainConfig.model_validate({**merged, "trainer": trainer})
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from exc


def _check_trainer_types(values: dict[str, Any], source: str) -> None:
    """Dataclass fields get no type coercion: catch 'learning_rate: fast' with its key."""
    hints = typing.get_type_hints(GRPOConfig)
    for name, value in values.items():
        tp = _unwrap(hints[name])
        if value is None or tp is None or typing.get_origin(tp) is Literal:
            continue
        if tp is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif tp is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, tp) if isinstance(tp, type) else True
        if not ok:
            raise ConfigError(
                f"{source}: trainer.{name}: expected {tp.__name__}, got {value!r} "
                f"({type(value).__name__})"
            )


# =========================================================================================
# Run folder helpers
# =========================================================================================
def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder of a run (``None`` before the first)."""
    root = Path(run_dir) / CHECKPOINTS
    marker = root / _LATEST
    if marker.is_file():
        folder = root / marker.read_text().strip()
        if (folder / "run.json").is_file():
            return folder
    # LATEST missing or pointing at a folder being replaced: the newest complete one
    complete = sorted(p for p in root.glob("step_*") if (p / "run.json").is_file())
    return complete[-1] if complete else None


def _truncate_jsonl(path: Path, max_step: int) -> int:
    """Keep lines with ``step < max_step`` (and any torn last line is dropped); returns kept."""
    if not path.is_file():
        return 0
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(row.get("step", -1)) < max_step:
            kept.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in kept))
    return len(kept)


def _append_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, allow_nan=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _arm_metrics(episodes: Sequence[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    arms: dict[str, list[Any]] = {}
    for e in episodes:
        arms.setdefault(e.arm or "head", []).append(e)
    for arm, eps in sorted(arms.items()):
        out[f"arms/{arm}/episodes"] = float(len(eps))
        out[f"arms/{arm}/reward_mean"] = float(sum(e.reward for e in eps) / len(eps))
        out[f"arms/{arm}/success_rate"] = float(sum(bool(e.won) for e in eps) / len(eps))
    return out


@dataclass
class RunSummary:
    """What a finished (or interrupted) ``train`` call did."""

    run_dir: Path
    steps_done: int
    wall_s: float
    cpu_s: float
    head: str | None
    tests_started: int
    tests_decided: int
    report: Path | None


# =========================================================================================
# The run
# =========================================================================================
class TrainingRun:
    """One run folder: builds library, co-evolution, envs and trainer; trains; checkpoints.

    Use :meth:`create` for a new run and :meth:`resume` for an existing folder. ``policy``
    (a loaded ``reskill_local.policy.Policy``) skips model loading (tests share one model).
    """

    def __init__(self, config: TrainConfig, run_dir: Path, *, policy: Any = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self._policy = policy
        self.library: Any = None
        self.coevo: CoEvolution | NoCoEvolution | None = None
        self.trainer: Any = None
        self.pool: Any = None
        self._wandb: Any = None
        self._cpu_at_start = _cpu_seconds()
        self._t_start = time.perf_counter()

    # ----- creation -----------------------------------------------------------------------
    @staticmethod
    def default_name(config: TrainConfig) -> str:
        """CleanRL-style ``<env>__<exp>__<seed>__<unix time>``."""
        return f"{config.env.name}__{config.run.exp_name}__{config.run.seed}__{int(time.time())}"

    @classmethod
    def create(cls, config: TrainConfig, *, policy: Any = None) -> TrainingRun:
        """Make the run folder, write ``config.yaml`` and copy the initial library into it."""
        name = config.run.name or cls.default_name(config)
        run_dir = Path(config.run.out_dir) / name
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(
                f"run folder {run_dir} already exists; continue it with "
                f"`reskill train --resume {run_dir}` or pick another run.name"
            )
        config = config.model_copy(update={"run": config.run.model_copy(update={"name": name})})
        run_dir.mkdir(parents=True, exist_ok=True)
        from omegaconf import OmegaConf

        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(config.to_container()))
        cls._copy_library(config, run_dir / "skills")
        return cls(config, run_dir, policy=policy)

    @classmethod
    def resume(
        cls, run_dir: str | os.PathLike[str], overrides: Sequence[str] = (), *, policy: Any = None
    ) -> TrainingRun:
        """Reopen a run folder; ``overrides`` (e.g. ``run.steps=20``) apply to its config."""
        run_dir = Path(run_dir)
        cfg_path = run_dir / "config.yaml"
        if not cfg_path.is_file():
            raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
        config = load_config(cfg_path, overrides)
        if overrides:
            from omegaconf import OmegaConf

            atomic_write_text(cfg_path, OmegaConf.to_yaml(config.to_container()))
        return cls(config, run_dir, policy=policy)

    @staticmethod
    def _copy_library(config: TrainConfig, dest: Path) -> None:
        from reskill_gym.envs.registration import seed_library_path
        from reskill_gym.skills import SkillLibrary

        src = config.env.skills
        if config.run.skills_mode == "none" or src == "none":
            dest.mkdir(parents=True, exist_ok=True)
        else:
            folder = seed_library_path(config.env.name) if src == "seed" else Path(src)
            if not folder.is_dir():
                raise ConfigError(f"env.skills: {folder} is not a folder")
            shutil.copytree(folder, dest, dirs_exist_ok=False)
        SkillLibrary.open(dest, create=True, reason=f"copied from {src}", proposed_by="run")

    # ----- building -----------------------------------------------------------------------
    def _tasks(self, probe: Any) -> list[str]:
        env_cfg = self.config.env
        tasks = list(env_cfg.tasks) if env_cfg.tasks else list(probe.task_ids(env_cfg.split))
        if env_cfg.max_tasks is not None:
            tasks = tasks[: env_cfg.max_tasks]
        if not tasks:
            raise ConfigError(f"env: no tasks in split {env_cfg.split!r} of {env_cfg.name}")
        return tasks

    def build(self) -> None:
        """Library, co-evolution, env factory, policy and trainer (loads the model)."""
        import gymnasium as gym

        from reskill_gym.envs.registration import ENV_IDS, make_skill_env
        from reskill_gym.skills import SkillLibrary
        from reskill_local.grpo import GRPOTrainer
        from reskill_local.pool import EnvPool

        cfg = self.config
        self.library = SkillLibrary.open(self.run_dir / "skills")
        co_cfg = cfg.coevolution.model_copy(update={"checkpoint_dir": None})
        if cfg.run.skills_mode == "coevolve":
            self.coevo = CoEvolution.create(self.library, co_cfg)
        elif cfg.run.skills_mode == "frozen":
            self.coevo = NoCoEvolution(self.library)
        else:
            self.coevo = NoCoEvolution(None)
        coevo = self.coevo
        wrapper_kw = {
            "max_active_skills": cfg.env.max_active_skills,
            "skill_budget_chars": cfg.env.skill_budget_chars,
        }
        env_kwargs = {"split": cfg.env.split, **cfg.env.kwargs}

        def build_env() -> gym.Env:
            return make_skill_env(cfg.env.name, skills=None, **env_kwargs, **wrapper_kw)

        spec = gym.spec(ENV_IDS[cfg.env.name])
        if cfg.env.reuse_engines:
            self.pool = EnvPool(build_env, coevo.view, spec=spec)
            make_env = self.pool
        else:

            def make_env(task_id: str, version: str | None) -> gym.Env:
                env = build_env()
                env.set_skills(coevo.view(version))
                return env

        probe = build_env()
        try:
            tasks = self._tasks(probe.unwrapped)
        finally:
            probe.close()
        self.trainer = GRPOTrainer(cfg.trainer, make_env, tasks, coevo=coevo, policy=self._policy)

    # ----- checkpoints --------------------------------------------------------------------
    def _save_checkpoint(self, steps_done: int) -> Path:
        root = self.run_dir / CHECKPOINTS
        root.mkdir(parents=True, exist_ok=True)
        name = f"step_{steps_done:06d}"
        final = root / name
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
        try:
            self.trainer.save(tmp / "trainer.pt")
            if isinstance(self.coevo, CoEvolution):
                self.coevo.save(tmp)
            meta = {
                "steps_done": steps_done,
                "head": self.library.head,
                "versions": self.library.versions(),
                "wall_s": self._wall_before + (time.perf_counter() - self._t_start),
                "cpu_s": self._cpu_before + (_cpu_seconds() - self._cpu_at_start),
                "time": time.time(),
            }
            atomic_write_text(tmp / "run.json", json.dumps(meta, indent=1))
            fsync_dir(tmp)
            if final.exists():  # a replayed step after a resume: replace the stale folder
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_text(root / _LATEST, name + "\n")
        fsync_dir(root)
        existing = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in existing[: -self.config.run.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(".step_*"):
            shutil.rmtree(stale, ignore_errors=True)
        return final

    def restore(self) -> int:
        """Load the newest checkpoint; returns the number of steps it covers (0 if none).

        Builds the run first if needed. ``train`` calls it; tests call it to inspect the
        restored state.
        """
        if self.trainer is None:
            self.build()
        ckpt = latest_checkpoint(self.run_dir)
        self._wall_before = 0.0
        self._cpu_before = 0.0
        if ckpt is None:
            for name in ("metrics.jsonl", "events.jsonl"):
                _truncate_jsonl(self.run_dir / name, 0)
            return 0
        meta = json.loads((ckpt / "run.json").read_text())
        missing = [v for v in [meta["head"]] if v not in self.library.versions()]
        if isinstance(self.coevo, CoEvolution):
            state = json.loads((ckpt / "coevolution.json").read_text())
            arms = (state.get("tester") or {}).get("active") or {}
            referenced = arms.get("versions", []) if isinstance(arms, dict) else []
            missing += [v for v in referenced if v not in self.library.versions()]
            if missing:
                raise RuntimeError(
                    f"{ckpt}: versions {missing} are referenced by the checkpoint but no longer "
                    f"in the library store {self.library.store} (pruned?); cannot resume exactly"
                )
            self.coevo.load_state_dict(state)
        elif self.library.head != meta["head"]:
            self.library.checkout(meta["head"], reason="resume from checkpoint")
        self.trainer.load(ckpt / "trainer.pt")
        steps = int(meta["steps_done"])
        if self.trainer.step_count != steps:
            raise RuntimeError(
                f"{ckpt}: trainer state is at step {self.trainer.step_count}, run.json says {steps}"
            )
        for name in ("metrics.jsonl", "events.jsonl"):
            _truncate_jsonl(self.run_dir / name, steps)
        self._wall_before = float(meta.get("wall_s", 0.0))
        self._cpu_before = float(meta.get("cpu_s", 0.0))
        logger.info("resumed %s from %s (%d steps done)", self.run_dir, ckpt.name, steps)
        return steps

    # ----- logging ------------------------------------------------------------------------
    def _init_wandb(self) -> None:
        if not self.config.run.wandb:
            return
        try:
            import wandb
        except ImportError:
            logger.warning("run.wandb=true but wandb is not installed; logging to JSONL only")
            return
        self._wandb = wandb.init(
            project=self.config.run.wandb_project,
            entity=self.config.run.wandb_entity,
            name=self.run_dir.name,
            id=self.run_dir.name.replace("/", "-")[-64:],
            resume="allow",
            dir=str(self.run_dir),
            config=self.config.to_container(),
        )

    def _row(self, result: Any, plan: Any) -> dict[str, Any]:
        row: dict[str, Any] = {k: v for k, v in result.metrics.items()}
        row["step"] = result.step
        row.update(_arm_metrics(result.episodes))
        testing = bool(getattr(plan, "testing", False))
        row["versions/testing"] = testing
        row["versions/p_candidate"] = plan.p_candidate if testing else None
        row["versions/head"] = self.library.head if self.library is not None else None
        if testing:
            cands = sorted({v for row_v in plan.versions for v in row_v if v != plan.head})
            row["versions/incumbent"] = plan.head
            row["versions/candidate"] = cands[0] if cands else None
        row["run/wall_s"] = self._wall_before + (time.perf_counter() - self._t_start)
        row["run/cpu_s"] = self._cpu_before + (_cpu_seconds() - self._cpu_at_start)
        row["time"] = time.time()
        return row

    # ----- the loop -----------------------------------------------------------------------
    def train(self, *, progress: bool | None = None) -> RunSummary:
        """Build (if needed), restore the newest checkpoint, run the remaining steps."""
        done = self.restore()
        self._init_wandb()
        total = self.config.run.steps
        show = self.config.run.progress if progress is None else progress
        started = decided = 0
        try:
            with _Progress(show, total, done) as bar:
                for step in range(done, total):
                    bar.start_step(step, self.trainer.config.rollouts_per_step)
                    result = self.trainer.step()
                    plan = getattr(self.trainer, "last_plan", None)
                    row = self._row(result, plan)
                    events = [
                        e.model_dump(mode="json") if isinstance(e, CoEvolutionEvent) else dict(e)
                        for e in result.events
                        if not (isinstance(e, CoEvolutionEvent) and e.kind == "checkpoint")
                    ]
                    for e in events:
                        e.setdefault("step", step)
                    started += sum(e.get("kind") == "test_started" for e in events)
                    decided += sum(e.get("kind") == "test_decided" for e in events)
                    # metrics first, checkpoint second: lines past the checkpoint are dropped on
                    # resume, so a kill between the two never loses or doubles a step
                    _append_jsonl(self.run_dir / "metrics.jsonl", [row])
                    _append_jsonl(self.run_dir / "events.jsonl", events)
                    self._save_checkpoint(step + 1)
                    if self._wandb is not None:
                        self._wandb.log(
                            {
                                k: v
                                for k, v in row.items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)
                            },
                            step=step,
                        )
                    bar.end_step(step, row, events)
        finally:
            self.close()
        report = None
        if self.config.run.report:
            from reskill_gym.report import write_report

            report = write_report(self.run_dir)
        return RunSummary(
            run_dir=self.run_dir,
            steps_done=self.trainer.step_count,
            wall_s=self._wall_before + (time.perf_counter() - self._t_start),
            cpu_s=self._cpu_before + (_cpu_seconds() - self._cpu_at_start),
            head=self.library.head if self.library is not None else None,
            tests_started=started,
            tests_decided=decided,
            report=report,
        )

    def close(self) -> None:
        """Stop the creator thread, close pooled engines, finish wandb."""
        if isinstance(self.coevo, CoEvolution):
            self.coevo.close()
        if self.pool is not None:
            self.pool.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


class _Progress:
    """Rich progress bar + one line per step (also readable when stdout is not a terminal)."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled = enabled
        self.total = total
        self.done = done
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self._progress.__enter__()
        self._task = self._progress.add_task("training", total=self.total, completed=self.done)
        return self

    def start_step(self, step: int, rollouts: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"step {step}: {rollouts} rollouts")

    def end_step(self, step: int, row: dict[str, Any], events: list[dict[str, Any]]) -> None:
        if self._progress is None:
            return
        cand = row.get("versions/candidate")
        p_new = row.get("versions/p_candidate")
        reward = row.get("charts/reward_mean", math.nan)
        line = (
            f"step {step:3d} | rollouts {int(row.get('rollouts/finished', 0))}"
            f" ({int(row.get('rollouts/dropped', 0))} dropped) | reward {reward:.2f}"
            f" | test {cand or '-'}"
            + (f" | p_new {p_new:.2f}" if p_new is not None else "")
            + f" | {row.get('time/step_s', 0.0):.0f}s"
        )
        self._progress.console.print(line)
        for e in events:
            if e.get("kind") in {
                "candidate_committed",
                "test_started",
                "test_decided",
                "creator_failed",
                "episode_dropped",
            }:
                self._progress.console.print(f"      {e['kind']}: {e.get('message', '')[:150]}")
        self._progress.update(self._task, advance=1, description="training")

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
