"""One ScienceWorld JVM, driven over py4j without the wheel's slow step.

Exports ``ScienceWorldEngine``, ``EngineActionError``, ``java_pids`` and
``DEFAULT_JAVA_OPTIONS``.

Why not ``scienceworld.ScienceWorldEnv`` itself: its ``step()`` also asks the JVM for every
valid action-object combination (~140 ms of a ~145 ms step) plus look/inventory text on
every call; here ``step`` is the bare ``PythonInterface.step`` (~7 ms) and valid actions
are a separate call made only when wanted. Owning the launch also gives one place that
turns a dead or hung JVM into :class:`~reskill_gym.envs.base.EngineCrashedError`, reaps
the process (no zombies), and kills it when the owner is garbage collected.

>>> engine = ScienceWorldEngine()   # nothing starts until start() / the first call
>>> engine.alive, engine.pid
(False, None)
>>> engine.close()                  # closing an engine that never started is fine
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reskill_gym.envs.base import EngineCrashedError

__all__ = ["ScienceWorldEngine", "EngineActionError", "java_pids", "DEFAULT_JAVA_OPTIONS"]

#: A capped heap and the serial collector: measured 240-265 MiB resident per JVM (the
#: JVM's defaults grew to 0.8-1.7 GiB on a 23 GiB machine) and one GC thread per env, so
#: many envs share few cores; the heaviest gold plan (mendelian genetics) runs in 512 MiB.
DEFAULT_JAVA_OPTIONS: tuple[str, ...] = ("-Xmx1g", "-XX:+UseSerialGC")

logger = logging.getLogger(__name__)

_INSTALL_HINT = 'install it with `pip install -e ".[scienceworld]"` (needs Java >= 8 on PATH)'


class EngineActionError(RuntimeError):
    """The JVM is alive but raised a Java exception for one call (kept with its text)."""


def java_pids(parent: int | None = None) -> list[int]:
    """Pids of running ScienceWorld JVMs (children of ``parent`` when given), via /proc.

    Zombies (exited, not yet reaped) count too: a zombie is a leak of its own kind.
    """
    found = []
    for entry in Path("/proc").iterdir():  # the kernel's process table, not a user folder
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces.
        fields = stat.rsplit(")", 1)[-1].split()
        ppid = int(fields[1])
        is_java = b"scienceworld.jar" in cmdline or (fields[0] == "Z" and "(java)" in stat)
        if is_java and (parent is None or ppid == parent):
            found.append(int(entry.name))
    return sorted(found)


def _terminate(proc: subprocess.Popen[bytes] | None, gateway: Any, timeout: float = 5.0) -> None:
    """Stop a gateway and its JVM for sure, then reap the process."""
    if gateway is not None:
        try:
            gateway.shutdown()
        except Exception:  # noqa: BLE001 - the JVM may already be gone; we kill it below
            logger.debug("gateway shutdown failed", exc_info=True)
    if proc is None:
        return
    if proc.poll() is None:
        try:  # py4j's die_on_exit JVM exits on a line on stdin
            assert proc.stdin is not None
            proc.stdin.write(b"\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    else:
        proc.wait()
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass


class ScienceWorldEngine:
    """A ScienceWorld simulator in its own JVM; the JVM starts on :meth:`start` only
    (never implicitly, so a crashed engine cannot come back mid-episode without a task).

    Every call goes through one guard: a dead JVM, a broken socket or a call slower than
    ``timeout_s`` kills what is left, reaps it and raises ``EngineCrashedError``; a Java
    exception with the JVM still alive raises :class:`EngineActionError`.
    """

    def __init__(
        self,
        *,
        jar_path: str | os.PathLike[str] | None = None,
        java_path: str = "java",
        java_options: Sequence[str] = DEFAULT_JAVA_OPTIONS,
        timeout_s: float = 600.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.jar_path = None if jar_path is None else str(jar_path)
        self.java_path = java_path
        self.java_options = tuple(java_options)
        self.timeout_s = float(timeout_s)
        self._proc: subprocess.Popen[bytes] | None = None
        self._gateway: Any = None
        self._server: Any = None
        self._finalizer: weakref.finalize | None = None
        self.start_seconds: float | None = None

    # ----- lifecycle ----------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The JVM's pid while one is running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the JVM (a no-op when one is running; a dead one is cleaned up first)."""
        if self.alive:
            return
        self.close()
        try:
            from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
            from scienceworld.constants import BASEPATH, JAR_PATH
        except ImportError as exc:
            raise ImportError(f"ScienceWorld engine is not installed: {_INSTALL_HINT}") from exc
        if shutil.which(self.java_path) is None:
            raise RuntimeError(
                f"ScienceWorld needs Java but {self.java_path!r} is not on PATH; {_INSTALL_HINT}"
            )
        jar = self.jar_path or JAR_PATH
        if not Path(jar).is_file():
            raise FileNotFoundError(f"ScienceWorld jar not found: {jar}")
        began = time.perf_counter()
        port, proc = launch_gateway(
            classpath=jar,
            javaopts=list(self.java_options),
            java_path=self.java_path,
            die_on_exit=True,  # the JVM exits when our stdin pipe closes (parent died)
            cwd=BASEPATH,
            return_proc=True,
        )
        self._proc = proc
        try:
            self._gateway = JavaGateway(
                gateway_parameters=GatewayParameters(
                    port=port, auto_field=True, read_timeout=self.timeout_s
                ),
                java_process=proc,
            )
            self._server = self._gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
        except Exception as exc:
            self._kill()
            raise EngineCrashedError(f"ScienceWorld JVM failed to start: {exc}") from exc
        self._finalizer = weakref.finalize(self, _terminate, proc, self._gateway)
        self.start_seconds = time.perf_counter() - began
        logger.info("ScienceWorld JVM pid %d up in %.2f s", proc.pid, self.start_seconds)

    def close(self) -> None:
        """Stop the JVM and reap it; safe to call any number of times."""
        if self._finalizer is not None:
            self._finalizer()  # runs _terminate once
            self._finalizer = None
        elif self._proc is not None:
            _terminate(self._proc, self._gateway)
        self._proc = self._gateway = self._server = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self.close()

    def _exit_code(self, wait_s: float) -> int | None:
        """The JVM's exit code, waiting briefly: a killed JVM closes its socket first."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    # ----- the guard ----------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> Any:
        if self._server is None:
            raise EngineCrashedError(
                f"ScienceWorld engine is not running ({method}() needs start(); after a crash, "
                "reset() starts a fresh one)"
            )
        from py4j.protocol import Py4JError, Py4JJavaError

        pid = self.pid
        began = time.perf_counter()
        try:
            return getattr(self._server, method)(*args)
        except Py4JJavaError as exc:
            if self.alive:
                raise EngineActionError(
                    f"ScienceWorld {method}{args!r} raised: {exc.java_exception}"
                ) from exc
            code = self._exit_code(wait_s=1.0)
            self._kill()
            raise EngineCrashedError(
                f"ScienceWorld JVM (pid {pid}) died during {method}() (exit code {code}); "
                "call reset() to start a fresh engine"
            ) from exc
        except (Py4JError, OSError) as exc:
            code = self._exit_code(wait_s=1.0)
            elapsed = time.perf_counter() - began
            if code is None and elapsed >= self.timeout_s * 0.99:
                reason = f"did not answer {method}() within {self.timeout_s:.0f} s and was killed"
            elif code is None:
                reason = f"lost its connection during {method}() and was killed"
            else:
                reason = f"died during {method}() (exit code {code})"
            self._kill()
            raise EngineCrashedError(
                f"ScienceWorld JVM (pid {pid}) {reason}; call reset() to start a fresh engine"
            ) from exc

    # ----- engine calls -------------------------------------------------------------------
    def task_names(self) -> list[str]:
        return [str(n) for n in self._call("getTaskNames")]

    def max_variations(self, task_name: str) -> int:
        return int(self._call("getTaskMaxVariations", task_name))

    def variation_sets(self) -> tuple[list[int], list[int], list[int]]:
        """Train/dev/test variation indices of the loaded task."""
        return (
            [int(v) for v in self._call("getVariationsTrain")],
            [int(v) for v in self._call("getVariationsDev")],
            [int(v) for v in self._call("getVariationsTest")],
        )

    def load(
        self, task_name: str, variation: int, simplifications: str = "", gold: bool = False
    ) -> None:
        """Build a fresh world for a task variation (with the gold plan when ``gold``)."""
        error = self._call("load", task_name, int(variation), simplifications, bool(gold))
        if error:
            raise ValueError(f"ScienceWorld could not load {task_name}:{variation}: {error}")

    def step(self, action: str) -> str:
        """The bare engine step: no valid-action enumeration, no look/inventory."""
        return str(self._call("step", action))

    def score(self) -> float:
        """Engine score in [-1, 1] (-1 = failed); meaningful only after a step."""
        return float(self._call("getScore"))

    def completed(self) -> bool:
        return bool(self._call("getCompleted"))

    def moves(self) -> int:
        return int(self._call("getNumMoves"))

    def task_description(self) -> str:
        return str(self._call("getTaskDescription"))

    def look(self) -> str:
        """The room description; free (no simulation tick)."""
        return str(self._call("freeActionLook"))

    def inventory(self) -> str:
        return str(self._call("freeActionInventory"))

    def valid_actions(self) -> list[str]:
        """All valid action-object combinations (the slow part of the wheel's step)."""
        return [str(a) for a in self._call("getValidActionObjectCombinations")]

    def possible_actions(self) -> list[str]:
        """The action templates (``open OBJ``, ``look around``, ...); cheap, unlike
        ``valid_actions``."""
        return [str(a) for a in self._call("getPossibleActions")]

    def possible_objects(self) -> list[str]:
        """The objects observable now (what ``OBJ`` may be)."""
        return [str(o) for o in self._call("getPossibleObjects")]

    def gold_actions(self) -> list[str]:
        """The gold plan of a task loaded with ``gold=True``."""
        return [str(a) for a in self._call("getGoldActionSequence")]

    def rss_bytes(self) -> int | None:
        """Resident memory of the JVM (Linux /proc), or None when unknown."""
        if self._proc is None:
            return None
        try:
            for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
