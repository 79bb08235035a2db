"""Two Ray nodes on one machine: what a multi-node veRL run needs beyond one process.

The cluster is two raylets started with ``ray start`` (a head and a worker node, each with
its own temp folder and ports, so no other Ray on the machine is touched); each node's Ray
workers inherit that node's environment, as on separate machines. The worker node is
broken the way a node without its data is: its ``$RESKILL_CACHE`` (where the search corpus
lives) is a file. On it:

- ``reskill verl preflight`` runs its checks on both nodes (a Ray task pinned to each)
  with the job's credentials, and names the broken node;
- veRL's real ``fit()`` (``verl_fit_harness``: veRL's trainer, ``AgentLoopManagerTQ`` with
  one Ray agent-loop worker per node, TransferQueue; the GPU workers stood in for) puts
  the co-evolution actor on the trainer's node, hands library views to the workers on both
  nodes, the credentials of the launching shell reach every worker through Ray's job-level
  runtime environment, and the sessions that fail on the broken node stop training at
  step 1, before any update, with one error naming that node; the failed sessions are in
  the step's episode counts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.verl, pytest.mark.slow]

verl = pytest.importorskip("verl")
ray = pytest.importorskip("ray")

import verl_fit_harness as fh  # noqa: E402  (conftest puts this folder on sys.path)
from reskill_verl.cli import CREDENTIAL_ENV_VARS, RAY_JOB_CONFIG_ENV, job_runtime_env  # noqa: E402
from verl_harness import prepare_search  # noqa: E402

QWEN3_4B = Path(__file__).parent / "models" / "qwen3-4b-instruct-2507"
SECRET = "sk-two-node-test"
"""The launching shell's ``$ANTHROPIC_API_KEY`` (never set on the nodes themselves)."""
FORWARDED = "RESKILL_TWO_NODE_TOKEN"
"""A variable passed with ``--forward-env``."""
NODE_START_S = 180


@dataclass
class TwoNodes:
    address: str
    head: str
    """Node id of the head (the driver's node: the trainer's)."""
    worker: str
    """Node id of the worker node (its ``$RESKILL_CACHE`` is broken)."""
    data: Path
    """``reskill verl prepare``'s search files (the corpus is in the head's cache)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, however it dies, so a
    killed test run leaves no Ray node behind (Linux; elsewhere the teardown stops them)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``ray start --block``: the node lives as long as this process; SIGTERM stops it.

    Three CPUs per node: TransferQueue's controller and storage actors hold one each
    (wherever Ray puts them), and veRL's agent-loop worker for a node is placed there only
    if a CPU is free (``NodeAffinitySchedulingStrategy(soft=True)``). Every port is free-picked
    and no worker is prestarted: other Rays on this machine are left alone."""
    exe = str(Path(sys.executable).with_name("ray"))
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                exe,
                "start",
                "--block",
                "--num-cpus=3",
                "--object-store-memory=100000000",
                "--disable-usage-stats",
                f"--dashboard-agent-listen-port={_free_port()}",
                f"--metrics-export-port={_free_port()}",
                *args,
            ],
            env={**env, "RAY_enable_worker_prestart": "false"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # its own session: the node's processes only
            p.wait(timeout=30)


def _wait_for_nodes(address: str, procs: list[subprocess.Popen[bytes]], logs: Path) -> list[Any]:
    deadline = time.monotonic() + NODE_START_S
    while True:
        for p in procs:
            if p.poll() is not None:
                text = "\n".join(f.read_text()[-2000:] for f in sorted(logs.glob("*.log")))
                raise RuntimeError(f"`ray start` exited with {p.returncode}:\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), 1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    ray.init(address=address, log_to_driver=False)
    try:
        while True:
            nodes = [n for n in ray.nodes() if n["Alive"]]
            if len(nodes) == 2 or time.monotonic() > deadline:
                return nodes
            time.sleep(0.5)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    root = tmp_path_factory.mktemp("two-node")
    data = prepare_search(root / "data", root / "cache", train=2, val=2)
    session_ray = ray.is_initialized()  # the suite's one local Ray, if a test started it
    if session_ray:
        ray.shutdown()
    # Ray's socket paths must stay under 108 characters: a short folder of our own
    tmp = Path(tempfile.mkdtemp(prefix="rk2n-"))
    broken = tmp / "cache-is-a-file"
    broken.write_text("not a folder\n")
    drop = {*CREDENTIAL_ENV_VARS, FORWARDED, "RAY_ADDRESS", RAY_JOB_CONFIG_ENV, "RESKILL_CACHE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            _ray_start(
                [
                    "--head",
                    f"--port={port}",
                    "--include-dashboard=false",
                    f"--dashboard-port={_free_port()}",
                    f"--ray-client-server-port={_free_port()}",
                    f"--temp-dir={tmp}/a",
                ],
                {**env, "RESKILL_CACHE": str(root / "cache")},
                tmp / "head.log",
            )
        )
        procs.append(
            _ray_start(
                [f"--address={address}", f"--temp-dir={tmp}/b"],
                {**env, "RESKILL_CACHE": str(broken)},
                tmp / "worker.log",
            )
        )
        nodes = _wait_for_nodes(address, procs, tmp)
        assert len(nodes) == 2, f"two nodes expected, {len(nodes)} joined"
        head = next(n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"])
        worker = next(n["NodeID"] for n in nodes if n["NodeID"] != head)
        yield TwoNodes(address, head, worker, data)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)
        if session_ray:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


@pytest.fixture()
def launching_shell(monkeypatch: pytest.MonkeyPatch, two_nodes: TwoNodes) -> None:
    """The environment ``reskill verl train`` / ``preflight`` start from: the cluster's
    address, a credential and a forwarded variable set here only, no cache override."""
    monkeypatch.setenv("RAY_ADDRESS", two_nodes.address)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv(FORWARDED, "forwarded")
    monkeypatch.setenv(RAY_JOB_CONFIG_ENV, "{}")  # restored after the test
    monkeypatch.setenv("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
    for name in ("RESKILL_CACHE", "ALFWORLD_DATA", "RESKILL_SKILLS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_verl_two_node_preflight_checks_every_node(two_nodes, launching_shell):
    """`reskill verl preflight` against the running cluster: every check on both nodes,
    with the job's credentials; the env check fails on the worker node and names it."""
    from typer.testing import CliRunner

    from reskill_gym.cli import app

    result = CliRunner().invoke(
        app,
        [
            "verl", "preflight", "--config-name", "search", "--model-config", str(QWEN3_4B),
            "--forward-env", FORWARDED,
            f"data.train_files={two_nodes.data / 'train.parquet'}",
            f"data.val_files={two_nodes.data / 'val.parquet'}",
            "reskill.coevolution.config.creator.backend=anthropic:claude-sonnet-4-5",
            "trainer.logger=[console]",
        ],
    )  # fmt: skip
    out = result.output
    assert result.exit_code == 1, out
    assert not ray.is_initialized(), "preflight leaves the cluster as it found it"
    lines = [line for line in out.splitlines() if line.startswith(("  ok", "  FAIL"))]

    def on(node: str, name: str) -> str:
        found = [x for x in lines if f" {node[:8]}] {name}:" in x]
        assert len(found) == 1, (node, name, out)
        return found[0]

    for node in (two_nodes.head, two_nodes.worker):
        for name in ("train data", "val data"):
            assert on(node, name).startswith("  ok"), out
        assert on(node, "creator anthropic").startswith("  ok"), "the job's key on every node"
        assert "$ANTHROPIC_API_KEY set" in on(node, "creator anthropic")
    for name in ("env (train task)", "env (val task)"):
        assert on(two_nodes.head, name).startswith("  ok"), out
        failed = on(two_nodes.worker, name)
        assert failed.startswith("  FAIL") and "NotADirectoryError" in failed, out
    assert len(lines) == 10, out
    assert "2 of 10 checks failed" in out, out


def _worker_state(agent_loop_worker: Any) -> dict[str, Any]:
    """Inside an agent-loop worker: its node, the variables it sees, the library views it
    was sent (``RayCoEvolutionClient``'s per-process cache)."""
    import os

    import ray
    from reskill_verl import coevolution_actor

    return {
        "node": ray.get_runtime_context().get_node_id(),
        "key": os.environ.get("ANTHROPIC_API_KEY"),
        "forwarded": os.environ.get("RESKILL_TWO_NODE_TOKEN"),
        "cache": os.environ.get("RESKILL_CACHE"),
        "views": sorted(v for _, v in coevolution_actor._VIEW_CACHE),
    }


def _actor_state(service: Any) -> dict[str, Any]:
    """Inside the co-evolution actor: its node, the step's failures and episode metrics."""
    import ray

    return {
        "node": ray.get_runtime_context().get_node_id(),
        "failures": service.step_failures(),
        "metrics": service._metrics([]),
        "head": service.head(),
    }


def test_verl_two_node_fit_stops_on_a_broken_node(two_nodes, launching_shell, tmp_path):
    """veRL's fit() over both nodes: one agent-loop worker per node, the co-evolution actor
    on the trainer's node, the job's credentials in both workers; the worker node's
    sessions fail (no corpus there), so step 1 stops before the update, naming that node."""
    from reskill_verl.cli import env_var_overrides

    # what `reskill verl train` hands the job: the runtime_env overrides (none: no cache
    # override in this shell) and the credentials in Ray's job-level runtime_env
    assert env_var_overrides() == []
    job = job_runtime_env(os.environ, [FORWARDED])
    assert job is not None and SECRET in job
    os.environ[RAY_JOB_CONFIG_ENV] = job  # launching_shell restores it
    ray.init(address=two_nodes.address, log_to_driver=False)
    tq = fh.start_transfer_queue()
    model = fh.build_tiny_model(tmp_path / "tiny-qwen3")
    cfg = fh.fit_config(
        tmp_path,
        model,
        two_nodes.data,
        None,
        [
            "data.max_response_length=32",
            "reskill.rollout.layout=per_turn",
            "trainer.total_training_steps=2",
            "trainer.save_freq=-1",
            "trainer.test_freq=-1",
        ],
        workers=2,
    )
    run = fh.run_fit(cfg, tmp_path / "weights")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the probes below
    try:
        assert ray.get_runtime_context().get_node_id() == two_nodes.head
        workers = ray.get(
            [w.__ray_call__.remote(_worker_state) for w in run.manager.agent_loop_workers]
        )
        assert {w["node"] for w in workers} == {two_nodes.head, two_nodes.worker}
        for w in workers:
            assert (w["key"], w["forwarded"]) == (SECRET, "forwarded"), w
        broken = next(w for w in workers if w["node"] == two_nodes.worker)
        assert broken["cache"] is not None and broken["cache"].endswith("cache-is-a-file")
        actor = ray.get(run.trainer.reskill_hook.actor.__ray_call__.remote(_actor_state))
        assert actor["node"] == two_nodes.head, "the co-evolution actor sits on the trainer's"
        for w in workers:
            assert w["views"] == [actor["head"]], "the library reached both nodes' workers"

        assert isinstance(run.error, RuntimeError), run.error
        message = str(run.error)
        assert "2 of 4 sessions failed in step 1 (50%, more than" in message, message
        assert "reskill.max_failed_session_share=0.1" in message
        assert "NotADirectoryError" in message and f" {two_nodes.worker[:8]}]" in message
        assert f" {two_nodes.head[:8]}]" not in message, "only the broken node is named"
        assert not [c for c in run.stubs.actor.calls if c[0] == "update"], "no update"
        assert run.logged == [], "nothing logged for a step that did not train"
        # the failed sessions count: 4 sessions, 2 dropped (success rate over all 4)
        assert actor["failures"]["sessions"] == 4 and actor["failures"]["failed"] == 2
        m = actor["metrics"]
        assert (m["episode/count"], m["episode/dropped"]) == (2.0, 2.0), m
    finally:
        run.kill()
        tq.close()
        ray.shutdown()
