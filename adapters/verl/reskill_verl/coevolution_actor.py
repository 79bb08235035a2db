"""Co-evolution across processes: one named Ray actor owns ``CoEvolution``.

Exports ``CoEvolutionService``, ``Assignment``, ``StepStats``, ``CoEvolutionClient``,
``LocalCoEvolutionClient``, ``RayCoEvolutionClient``, ``build_service``,
``build_coevolution``, ``fixed_view``, ``get_or_create_actor``, ``get_client``,
``register_local_client`` and ``inline_view``.

veRL builds a new agent-loop object per trajectory, in many worker processes on many nodes,
so the library, version tester, reservoir and creator cannot live in the loop. They live in
one ``CoEvolutionService`` wrapped as a Ray actor named after the run
(``reskill_coevolution_<hash of the run folder>``, :meth:`reskill_verl.config.CoEvolutionSettings.resolved_actor_name`, in namespace
``reskill``); the trainer hook creates it, agent loops look it up by name.

Per rollout an agent loop calls ``assign(uid, task_id, n, index)`` (validation rollouts of
the published protocol: ``assign_eval``). The plan of a GRPO group
is computed once, when its first rollout asks (``CoEvolution.plan_step`` on that one group,
keyed by the group's ``uid``), so the n rollouts of a group always get the tester's
within-group split, whichever worker or order they arrive in; asking again for the same
``(uid, index)`` returns the same version. ``index`` is veRL V1's ``session_id``; the legacy
trainer has none, so arrival order numbers the rollouts. Finished episodes come back through
``record``; the trainer hook calls ``end_step(step)`` once per step, which flushes the tester,
starts/collects creator passes (the creator runs in a thread inside the actor, off the
trainer's critical path), checkpoints, and returns the step's metrics.

Library views are sent inline (skills + texts, a few KB) and cached per version in each
worker, so rollout nodes need no shared filesystem with the actor.

The service is a plain class so it can be tested and used without Ray:

>>> import tempfile, pathlib
>>> from reskill_gym.skills import Skill, SkillLibrary, Trigger, write_skill
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_skill(Skill(name="plan", description="d", content="Plan first.",
...                       trigger=Trigger(type="beginning")), root)
>>> from reskill_gym.coevolve import CoEvolution, CoEvolutionConfig
>>> svc = CoEvolutionService(CoEvolution.create(SkillLibrary.open(root, create=True),
...                                             CoEvolutionConfig(creator_enabled=False)))
>>> a = svc.assign("uid-0", "task-1", 2, index=1)
>>> a.arm, a.version == svc.head(), a.index
('head', True, 1)
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reskill_gym.coevolve import (
    CHECKPOINT_FILE,
    CoEvolution,
    CoEvolutionEvent,
    CoEvolutionLike,
    NoCoEvolution,
    coevolution_metrics,
)
from reskill_gym.episode import Episode
from reskill_gym.rollout import episode_metrics, validation_metrics
from reskill_gym.skills import LibraryView, SkillLibrary
from reskill_gym.skills.source import is_library, open_view, seed_library

__all__ = [
    "CoEvolutionService",
    "Assignment",
    "StepStats",
    "CoEvolutionClient",
    "LocalCoEvolutionClient",
    "RayCoEvolutionClient",
    "build_service",
    "get_or_create_actor",
    "get_client",
    "register_local_client",
    "build_coevolution",
    "fixed_view",
    "inline_view",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assignment:
    """The library version one rollout uses."""

    version: str
    arm: str
    index: int
    step: int
    testing: bool
    p_candidate: float | None = None


@dataclass
class _GroupPlan:
    versions: list[str]
    arms: list[str]
    testing: bool
    p_candidate: float | None
    next_index: int = 0
    handed: dict[int, Assignment] = field(default_factory=dict)


@dataclass
class StepStats:
    """The step's recorded episodes (reset by ``end_step``): what the metrics are made of."""

    episodes: list[Episode] = field(default_factory=list)
    skill_episodes: Counter[str] = field(default_factory=Counter)

    @property
    def dropped(self) -> int:
        return sum(e.error is not None for e in self.episodes)

    @property
    def kept(self) -> int:
        return sum(e.error is None for e in self.episodes)

    def failures(self) -> dict[str, Any]:
        """``{"sessions", "failed", "errors"}``: counts and the distinct error messages."""
        errors = list(dict.fromkeys(str(e.error) for e in self.episodes if e.error is not None))
        return {"sessions": len(self.episodes), "failed": self.dropped, "errors": errors}


def inline_view(view: LibraryView) -> LibraryView:
    """A copy of ``view`` that pickles by content, not by path (no shared filesystem needed)."""
    return LibraryView(view.version, view.skills, {n: view.text(n) for n in view.names})


def _skill_name(skill_id: str) -> str:
    return skill_id.split("@", 1)[0]


class CoEvolutionService:
    """``CoEvolution`` behind a per-rollout API (what the Ray actor runs).

    Not thread-safe by itself: Ray runs one method at a time on a default actor, and
    :class:`LocalCoEvolutionClient` serialises calls with a lock.
    """

    def __init__(
        self,
        coevo: CoEvolutionLike,
        *,
        resume_step: int | None = None,
        episodes_root: str | Path | None = None,
    ) -> None:
        self.coevo = coevo
        self.episodes_root = Path(episodes_root) if episodes_root is not None else None
        """Run folder whose ``episodes/`` gets every step's episodes (None: not recorded)."""
        self._plans: dict[str, _GroupPlan] = {}
        self._stats = StepStats()
        self._eval = StepStats()
        self.closed = False
        last = coevo.last_step
        if resume_step is not None and last is not None and last > resume_step:
            # veRL resumed from an older checkpoint than ours: let end_step run again from there.
            logger.warning(
                "co-evolution checkpoint is at step %d but training resumes after step %d; "
                "steps up to %d will be replayed against the newer co-evolution state",
                last,
                resume_step,
                last,
            )
            coevo.last_step = resume_step

    # ----- queries ------------------------------------------------------------------------
    @property
    def current_step(self) -> int:
        """The step rollouts are being collected for (last finished step + 1)."""
        last = self.coevo.last_step
        return 1 if last is None else last + 1

    def head(self) -> str | None:
        """The live library version (incumbent while a test runs)."""
        return self.coevo.head

    def view(self, version: str | None = None) -> LibraryView | None:
        """An inline view of ``version`` (default HEAD), or None when there are no skills."""
        view = self.coevo.view(version)
        return inline_view(view) if view is not None else None

    def ping(self) -> bool:
        return True

    # ----- the per-rollout API ------------------------------------------------------------
    def assign(self, uid: str, task_id: str, n: int, index: int | None = None) -> Assignment:
        """Version for rollout ``index`` of group ``uid`` (n rollouts of ``task_id``)."""
        plan = self._plans.get(uid)
        if plan is None:
            step_plan = self.coevo.plan_step([(str(uid), str(task_id), max(int(n), 1))])
            plan = _GroupPlan(
                list(step_plan.versions[0]),
                list(step_plan.arms[0]),
                step_plan.testing,
                step_plan.p_candidate,
            )
            self._plans[uid] = plan
        if index is None:
            index = plan.next_index
            plan.next_index += 1
        index = int(index)
        done = plan.handed.get(index)
        if done is not None:
            return done
        if index >= len(plan.versions):
            # more rollouts than planned (a per-prompt __rollout_n__): extend the split cyclically
            logger.warning(
                "group %s: rollout %d beyond the planned %d", uid, index, len(plan.versions)
            )
        k = index % len(plan.versions)
        out = Assignment(
            plan.versions[k], plan.arms[k], index, self.current_step, plan.testing, plan.p_candidate
        )
        plan.handed[index] = out
        return out

    def assign_eval(self, uid: str, task_id: str, index: int | None = None) -> Assignment:
        """Version of one validation rollout under the published protocol
        (``reskill.validation: published``): while a version test runs, one draw from the
        tester's current assignment probabilities (the published validation envs
        Thompson-sample every slot between the old and the new library; the draw uses the
        tester's seeded generator), arm ``incumbent`` / ``candidate``; otherwise HEAD, arm
        ``eval``. The episode goes to :meth:`record_eval`, never to the tester.
        """
        plan = self.coevo.plan_step([(f"eval:{uid}:{index}", str(task_id), 1)])
        return Assignment(
            plan.versions[0][0],
            plan.arms[0][0] if plan.testing else "eval",
            int(index or 0),
            self.current_step,
            plan.testing,
            plan.p_candidate,
        )

    def record(self, episodes: Sequence[Episode | dict[str, Any]]) -> int:
        """Feed finished episodes to the reservoir/tester; returns how many were accepted.

        Dropped episodes (``error`` set) only count in ``episode/dropped``.
        """
        eps = [e if isinstance(e, Episode) else Episode.model_validate(e) for e in episodes]
        s = self._stats
        for e in eps:
            s.episodes.append(e)
            if e.error is None:
                for name in {_skill_name(i) for i in e.skills_fired}:
                    s.skill_episodes[name] += 1
        kept = [e for e in eps if e.error is None]
        self.coevo.record(kept)
        return len(kept)

    def record_eval(self, episodes: Sequence[Episode | dict[str, Any]]) -> None:
        """Evaluation episodes (validation rows): only counted, for the failure check."""
        for e in episodes:
            self._eval.episodes.append(e if isinstance(e, Episode) else Episode.model_validate(e))

    def step_failures(self) -> dict[str, Any]:
        """This step's training sessions so far: ``{"sessions", "failed", "errors"}``."""
        return self._stats.failures()

    def take_eval(self) -> dict[str, Any]:
        """Evaluation sessions since the last call (then reset): :meth:`step_failures`' keys
        plus ``metrics``, their success per split, task type and topic
        (:func:`reskill_gym.rollout.validation_metrics`)."""
        stats, self._eval = self._eval, StepStats()
        return {**stats.failures(), "metrics": validation_metrics(stats.episodes)}

    def save_checkpoint(self, directory: str) -> str | None:
        """Write the co-evolution checkpoint into ``directory`` (veRL's step folder); the
        versions it names are never pruned, so training can resume from it later."""
        retain = getattr(self.coevo, "retain", None)  # NoCoEvolution keeps no library
        if retain is not None:
            retain()
        path = self.coevo.save(directory)
        return str(path) if path is not None else None

    def end_step(self, step: int) -> dict[str, Any]:
        """Close step ``step``: co-evolution end_step, then ``{"metrics", "events"}``."""
        events: list[CoEvolutionEvent] = list(self.coevo.end_step(int(step)))
        metrics = self._metrics(events)
        if self.episodes_root is not None and self._stats.episodes:
            from reskill_gym.runfolder import record_episodes

            record_episodes(self.episodes_root, int(step), self._stats.episodes, self.coevo)
        events += [
            CoEvolutionEvent(
                kind="episode_dropped",
                step=int(step),
                message=f"{e.episode_id} ({e.task_id}) dropped: {e.error}",
                data={"rollout_id": e.episode_id, "task_id": e.task_id, "error": e.error},
            )
            for e in self._stats.episodes
            if e.error is not None
        ]
        self._plans.clear()
        self._stats = StepStats()
        return {"metrics": metrics, "events": [e.model_dump(mode="json") for e in events]}

    def close(self) -> None:
        """Stop a running creator pass (``closed`` tells it happened)."""
        self.coevo.close()
        self.closed = True

    def state_dict(self) -> dict[str, Any]:
        return self.coevo.state_dict()

    # ----- metrics ------------------------------------------------------------------------
    def _metrics(self, events: Iterable[CoEvolutionEvent]) -> dict[str, float]:
        """The shared namespace (``episode/*``, ``arms/*`` from the step's episodes;
        ``versions/*``, ``creator/*``, ``skills/library_size`` from co-evolution) plus
        ``skills/fired/<name>``: the share of the step's episodes whose prompts showed it."""
        s = self._stats
        m = episode_metrics(s.episodes)
        m.update(coevolution_metrics(self.coevo, events))
        kept = s.kept
        for name, count in sorted(s.skill_episodes.items()):
            m[f"skills/fired/{name}"] = count / kept if kept else 0.0
        return {k: float(v) for k, v in m.items()}


def build_service(
    settings: Any,
    *,
    default_root: str | Path,
    resume_step: int | None = None,
    resume_from: str | Path | None = None,
) -> CoEvolutionService:
    """``CoEvolutionService`` around :func:`build_coevolution`."""
    return CoEvolutionService(
        build_coevolution(settings, default_root=default_root, resume_from=resume_from),
        resume_step=resume_step,
        episodes_root=default_root if settings.record_episodes else None,
    )


def fixed_view(env_name: str, skills: str | None) -> LibraryView | None:
    """The view of ``skills`` (``seed``, a folder or a library, None: no skills)."""
    from reskill_gym.envs.registration import seed_library_path

    return open_view(skills, seed=functools.partial(seed_library_path, env_name))


def build_coevolution(
    settings: Any, *, default_root: str | Path, resume_from: str | Path | None = None
) -> CoEvolution | NoCoEvolution:
    """``CoEvolution`` from ``ReskillVerlConfig`` (library initialised from ``skills``).

    ``default_root`` holds ``library/`` and ``coevolution.json`` unless the settings name
    other places. On resume, the checkpoint in ``resume_from`` (the one saved with veRL's
    checkpoint of the step training resumes from) is loaded; without one there, the latest
    ``coevolution.json`` in the checkpoint folder (written every step). With
    ``coevolution.enabled=false``: ``NoCoEvolution`` on the fixed ``skills`` view (every
    rollout sees it; the service then only collects the step's episodes for the metrics).
    """
    from reskill_gym.envs.registration import seed_library_path

    co = settings.coevolution
    if not co.enabled:
        return NoCoEvolution(fixed_view(settings.env, settings.skills))
    root = Path(default_root)
    library_dir = Path(co.library_dir) if co.library_dir else root / "library"
    checkpoint_dir = Path(co.checkpoint_dir) if co.checkpoint_dir else root
    if is_library(library_dir):
        library = SkillLibrary.open(library_dir)
    else:
        library = seed_library(
            settings.skills,
            library_dir,
            seed=functools.partial(seed_library_path, settings.env),
            reason="reskill verl: initial library",
        )
    config = co.coevolution_config(str(checkpoint_dir))
    coevo = CoEvolution.create(library, config)
    for folder in ([Path(resume_from)] if resume_from else []) + [checkpoint_dir]:
        if (folder / CHECKPOINT_FILE).is_file():
            logger.info("resuming co-evolution from %s", folder / CHECKPOINT_FILE)
            coevo.load(folder)
            break
    return coevo


# --------------------------------------------------------------------------------------------
# Ray glue


_REMOTE_CLS: list[Any] = []


def _remote_service_cls() -> Any:
    if not _REMOTE_CLS:
        import ray

        _REMOTE_CLS.append(ray.remote(_ActorService))
    return _REMOTE_CLS[0]


class _ActorService(CoEvolutionService):
    """The Ray actor: builds its service from settings inside the actor process."""

    def __init__(
        self,
        settings_json: str,
        default_root: str,
        resume_step: int | None,
        resume_from: str | None = None,
    ) -> None:
        from reskill_verl.config import ReskillVerlConfig

        logging.basicConfig(level=logging.INFO)
        settings = ReskillVerlConfig.model_validate_json(settings_json)
        super().__init__(
            build_coevolution(settings, default_root=default_root, resume_from=resume_from),
            resume_step=resume_step,
            episodes_root=default_root if settings.record_episodes else None,
        )
        logger.info("co-evolution actor ready: library HEAD %s", self.head())


def get_or_create_actor(
    settings: Any,
    *,
    default_root: str | Path,
    resume_step: int | None = None,
    resume_from: str | Path | None = None,
    pin_to_node: bool = True,
) -> Any:
    """The named actor (created when missing) for ``ReskillVerlConfig`` ``settings``.

    Its name is the run's (:meth:`CoEvolutionSettings.resolved_actor_name`), so two jobs on
    one cluster never share one. Pinned to the calling node by default, so the library
    folder and checkpoints are on the node that created them (the trainer's).
    """
    import ray

    co = settings.coevolution
    options: dict[str, Any] = {
        "name": co.resolved_actor_name(default_root),
        "namespace": co.namespace,
        "get_if_exists": True,
        "num_cpus": co.actor_num_cpus,
        "max_concurrency": 1,
    }
    if pin_to_node:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
            node_id=ray.get_runtime_context().get_node_id(), soft=False
        )
    return (
        _remote_service_cls()
        .options(**options)
        .remote(
            settings.model_dump_json(),
            str(default_root),
            resume_step,
            str(resume_from) if resume_from is not None else None,
        )
    )


class CoEvolutionClient:
    """What an agent loop needs from co-evolution (async; views cached per version)."""

    async def assign(self, uid: str, task_id: str, n: int, index: int | None) -> Assignment:
        raise NotImplementedError

    async def assign_eval(self, uid: str, task_id: str, index: int | None) -> Assignment:
        raise NotImplementedError

    async def view(self, version: str | None) -> LibraryView | None:
        raise NotImplementedError

    async def head(self) -> str | None:
        raise NotImplementedError

    async def record(self, episodes: list[Episode]) -> None:
        raise NotImplementedError

    async def record_eval(self, episodes: list[Episode]) -> None:
        raise NotImplementedError


_VIEW_CACHE: dict[tuple[str, str], LibraryView | None] = {}
_VIEW_CACHE_LOCK = threading.Lock()
_VIEW_CACHE_MAX = 32


def _cache_get(owner: str, version: str) -> tuple[bool, LibraryView | None]:
    with _VIEW_CACHE_LOCK:
        key = (owner, version)
        return (key in _VIEW_CACHE, _VIEW_CACHE.get(key))


def _cache_put(owner: str, version: str, view: LibraryView | None) -> None:
    with _VIEW_CACHE_LOCK:
        _VIEW_CACHE[(owner, version)] = view
        while len(_VIEW_CACHE) > _VIEW_CACHE_MAX:
            _VIEW_CACHE.pop(next(iter(_VIEW_CACHE)))


class LocalCoEvolutionClient(CoEvolutionClient):
    """In-process client around a ``CoEvolutionService`` (tests, single-process runs)."""

    def __init__(self, service: CoEvolutionService) -> None:
        self.service = service
        self._lock = threading.Lock()

    async def assign(self, uid: str, task_id: str, n: int, index: int | None) -> Assignment:
        with self._lock:
            return self.service.assign(uid, task_id, n, index)

    async def assign_eval(self, uid: str, task_id: str, index: int | None) -> Assignment:
        with self._lock:
            return self.service.assign_eval(uid, task_id, index)

    async def view(self, version: str | None) -> LibraryView | None:
        with self._lock:
            return self.service.view(version)

    async def head(self) -> str | None:
        with self._lock:
            return self.service.head()

    async def record(self, episodes: list[Episode]) -> None:
        with self._lock:
            self.service.record(episodes)

    async def record_eval(self, episodes: list[Episode]) -> None:
        with self._lock:
            self.service.record_eval(episodes)


class RayCoEvolutionClient(CoEvolutionClient):
    """Client of the named actor; views are fetched once per version per process."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        actor_id = getattr(handle, "_actor_id", None)
        self._key = actor_id.hex() if actor_id is not None else str(id(handle))

    async def assign(self, uid: str, task_id: str, n: int, index: int | None) -> Assignment:
        return await self.handle.assign.remote(uid, task_id, n, index)

    async def view(self, version: str | None) -> LibraryView | None:
        if version is None:
            version = await self.handle.head.remote()
            if version is None:
                return None
        found, cached = _cache_get(self._key, version)
        if found:
            return cached
        view = await self.handle.view.remote(version)
        _cache_put(self._key, version, view)
        return view

    async def head(self) -> str | None:
        return await self.handle.head.remote()

    async def assign_eval(self, uid: str, task_id: str, index: int | None) -> Assignment:
        return await self.handle.assign_eval.remote(uid, task_id, index)

    async def record(self, episodes: list[Episode]) -> None:
        await self.handle.record.remote(episodes)

    async def record_eval(self, episodes: list[Episode]) -> None:
        await self.handle.record_eval.remote(episodes)


_CLIENTS: dict[tuple[str, str], RayCoEvolutionClient] = {}
_LOCAL_OVERRIDE: dict[str, CoEvolutionClient] = {}


def get_client(settings: Any, *, default_root: str | Path | None = None) -> CoEvolutionClient:
    """The client for this process: a registered local one, else the named Ray actor.

    The actor is normally created by the trainer hook; if a run uses veRL's stock trainer
    the first agent loop creates it (then nobody calls ``end_step``: versions never change,
    which is logged).
    """
    co = settings.coevolution
    name = co.resolved_actor_name(default_root)
    local = _LOCAL_OVERRIDE.get(name)
    if local is not None:
        return local
    key = (co.namespace, name)
    client = _CLIENTS.get(key)
    if client is None:
        import ray

        try:
            handle = ray.get_actor(name, namespace=co.namespace)
        except ValueError:
            if default_root is None:
                raise
            logger.warning(
                "co-evolution actor %s/%s not found: creating it from an agent loop. Without the "
                "reskill trainer hook (trainer.v1.trainer_mode=reskill_sync) end_step is never "
                "called and the library never changes.",
                co.namespace,
                name,
            )
            handle = get_or_create_actor(settings, default_root=default_root, pin_to_node=False)
        client = _CLIENTS[key] = RayCoEvolutionClient(handle)
    return client


def register_local_client(actor_name: str, client: CoEvolutionClient | None) -> None:
    """Route ``get_client`` for ``actor_name`` to an in-process client (None removes it)."""
    if client is None:
        _LOCAL_OVERRIDE.pop(actor_name, None)
    else:
        _LOCAL_OVERRIDE[actor_name] = client
