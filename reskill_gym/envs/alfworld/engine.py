"""Parent side of the ALFWorld engine worker: start, talk to, and end one worker process.

Exports ``EngineProcess``.

A plain ``subprocess`` (not ``multiprocessing``) so it also works inside Gymnasium's
``AsyncVectorEnv`` workers, which are daemonic and may not start multiprocessing children.
Every read has a timeout (``select``), so a hung engine cannot hang the trainer; a dead or
hung worker is killed, reaped (no zombie) and reported as
:class:`~reskill_gym.envs.base.EngineCrashedError` with its exit status and the tail of its
stderr. If the parent dies, the worker sees end-of-file on stdin and exits.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO, Any

from reskill_gym.envs.base import EngineCrashedError

__all__ = ["EngineProcess"]

logger = logging.getLogger(__name__)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


def _stop(proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    """End ``proc`` (polite close, then kill) and reap it; safe to call twice."""
    if proc.poll() is None:
        try:
            if proc.stdin is not None:
                proc.stdin.write(b'{"op": "close"}\n')
                proc.stdin.flush()
            proc.wait(timeout=2.0)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        log.close()
    except OSError:
        pass


class EngineProcess:
    """One worker process and its request/reply pipe.

    >>> EngineProcess(name="demo").alive
    False
    """

    def __init__(self, *, name: str = "alfworld", startup_timeout: float = 120.0) -> None:
        self.name = name
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._buffer = b""
        self._finalizer: weakref.finalize | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start a fresh worker (ending any previous one)."""
        self.close()
        env = dict(os.environ)
        env["PYTHONPATH"] = _PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        self._log = tempfile.TemporaryFile(prefix=f"reskill-{self.name}-", suffix=".log")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "reskill_gym.envs.alfworld.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            close_fds=True,
        )
        self._buffer = b""
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._log)
        self.request({"op": "ping"}, timeout=self.startup_timeout, what="start")
        logger.debug("%s worker started (pid %d)", self.name, self._proc.pid)

    def request(
        self, payload: dict[str, Any], *, timeout: float, what: str | None = None
    ) -> dict[str, Any]:
        """Send one request and return the reply; a worker-side exception raises ``RuntimeError``."""
        what = what or str(payload.get("op"))
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise self._crashed(what, "the engine worker is not running")
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write((json.dumps(payload) + "\n").encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self._crashed(what, f"could not send the request ({exc})") from None
        line = self._read_line(proc, timeout, what)
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise self._crashed(what, f"garbled reply {line[:200]!r}") from None
        if not reply.get("ok"):
            raise RuntimeError(f"{self.name} engine failed during {what}: {reply.get('error')}")
        return reply

    def _read_line(self, proc: subprocess.Popen[bytes], timeout: float, what: str) -> str:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._crashed(what, f"no reply within {timeout:.0f} s (engine hung; killed)")
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                if proc.poll() is not None:
                    raise self._crashed(what, "the worker exited")
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._crashed(what, "the worker closed its pipe")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace")

    def _crashed(self, what: str, reason: str) -> EngineCrashedError:
        """Kill and reap the worker; build the error the env raises."""
        proc = self._proc
        status = "not started"
        tail = ""
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
            status = f"exit code {code}"
            if code < 0:
                try:
                    status = f"killed by {signal.Signals(-code).name}"
                except ValueError:
                    status = f"killed by signal {-code}"
            tail = self._stderr_tail()
            if self._finalizer is not None:
                self._finalizer()  # closes pipes and the log; the process is already reaped
        self._proc = None
        self._finalizer = None
        msg = f"{self.name} engine worker crashed during {what}: {reason} ({status})."
        if tail:
            msg += f" Last stderr lines:\n{tail}"
        msg += "\nCall reset() to start a fresh engine."
        return EngineCrashedError(msg)

    def _stderr_tail(self, limit: int = 1500) -> str:
        log = self._log
        if log is None or log.closed:
            return ""
        try:
            log.flush()
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - limit))
            return log.read().decode("utf-8", errors="replace").strip()
        except OSError:
            return ""

    def close(self) -> None:
        """End the worker and reap it (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        self._proc = None
        self._finalizer = None
        self._log = None
        self._buffer = b""
