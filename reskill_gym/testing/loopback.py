"""A scripted LLM server on 127.0.0.1 that speaks the OpenAI and Anthropic wire formats.

Exports ``LoopbackLLMServer``, ``LoopbackRequest``, ``LoopbackReply``, ``LoopbackError``,
``Responder`` (the callable type), ``scripted``, ``echo_responder``, ``schema_example``,
``ServerDialect`` and ``DIALECTS``.

The real ``openai`` and ``anthropic`` SDKs (and Bedrock's ``AnthropicBedrock``) talk to it as
to the real services: chat completions, Messages (text or forced-tool answers), Bedrock
``invoke``, usage fields, error bodies, ``Retry-After`` headers. A *responder* callable
decides each answer, so tests, the creator's and the evaluator's tests, and users dry-running
a config all script the model in a few lines and no network or key is needed.

Real servers do not all accept every ``response_format``, and each says "no" its own way. A
*dialect* makes the OpenAI route answer like one of them (``DIALECTS``): ``permissive`` (the
default: every format accepted), ``llama-cpp-python`` (``json_schema`` refused with HTTP 500
and the pydantic report its server sends; ``json_object`` with or without a ``schema`` key
accepted), ``openai-legacy`` (400 for ``json_schema`` and for a ``schema`` key, like OpenAI's
models without structured outputs) and ``text-only`` (FastAPI's 422 for any
``response_format``). The responder is only asked when the dialect accepts the request, and
``LoopbackRequest.schema`` is the schema the server would enforce (None when it enforces none).

Routes: ``POST /openai/v1/chat/completions``, ``GET /openai/v1/models``,
``POST /anthropic/v1/messages``, ``POST /bedrock/model/<model>/invoke``.
Token counts are whitespace-separated words (deterministic, so cost can be asserted).

>>> import openai
>>> with LoopbackLLMServer(scripted("hello there")) as srv:
...     client = openai.OpenAI(base_url=srv.openai_base_url, api_key="EMPTY", max_retries=0)
...     r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
>>> r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens
('hello there', 1, 2)
>>> srv.requests[0].last_user_text
'hi'

Run ``python -m reskill_gym.testing.loopback --port 8000 [--dialect llama-cpp-python]`` to serve
the echo/schema-example responder for a dry run of a config
(``openai:http://127.0.0.1:8000/openai/v1#loopback``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import unquote

__all__ = [
    "LoopbackLLMServer",
    "LoopbackRequest",
    "LoopbackReply",
    "LoopbackError",
    "Responder",
    "scripted",
    "echo_responder",
    "schema_example",
    "ServerDialect",
    "DIALECTS",
]

log = logging.getLogger(__name__)

Api = Literal["openai", "anthropic", "bedrock"]


@dataclass(frozen=True)
class LoopbackError:
    """Answer with an HTTP error in the API's own error body; ``retry_after`` in seconds sets
    both ``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``."""

    status: int = 500
    message: str = "scripted error"
    retry_after: float | None = None


@dataclass(frozen=True)
class LoopbackReply:
    """A successful answer with optional per-reply delay, token counts and stop reason.

    ``drip_s`` > 0 sends the body one byte at a time, that many seconds apart (a slow or
    hostile endpoint that per-read timeouts never catch).
    """

    text: str
    delay_s: float = 0.0
    drip_s: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None


@dataclass(frozen=True)
class LoopbackRequest:
    """One request as the server saw it, in a form common to both APIs."""

    index: int
    api: Api
    path: str
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    messages: list[dict[str, str]] = field(default_factory=list)
    schema: dict[str, Any] | None = None
    json_mode: bool = False
    tool_name: str | None = None

    @property
    def system(self) -> str:
        return "\n\n".join(m["content"] for m in self.messages if m["role"] == "system")

    @property
    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m["role"] == "user":
                return m["content"]
        return ""


Responder = Callable[[LoopbackRequest], "str | LoopbackReply | LoopbackError"]

#: The ``response_format`` variants a dialect can accept or refuse.
FormatKind = Literal["json_schema", "json_object_schema", "json_object"]


def _format_kind(body: dict[str, Any]) -> FormatKind | None:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_schema":
        return "json_schema"
    if fmt.get("type") == "json_object":
        return "json_object_schema" if "schema" in fmt else "json_object"
    return None


def _llama_cpp_python_refusal(kind: FormatKind, body: dict[str, Any]) -> tuple[int, Any]:
    # What llama-cpp-python 0.3.x's server sends: FastAPI's RequestValidationError caught by
    # its RouteErrorHandler and wrapped as a 500 "internal_server_error" (the response_format
    # model has type: Literal["text", "json_object"]).
    detail = [
        {
            "type": "literal_error",
            "loc": ("body", "response_format", "type"),
            "msg": "Input should be 'text' or 'json_object'",
            "input": body["response_format"].get("type"),
            "ctx": {"expected": "'text' or 'json_object'"},
        }
    ]
    message = (
        f"1 validation error:\n  {detail[0]!r}\n\n"
        '  File "site-packages/llama_cpp/server/app.py", line 376, in create_chat_completion\n'
        "    POST /v1/chat/completions"
    )
    return 500, {
        "error": {
            "message": message,
            "type": "internal_server_error",
            "param": None,
            "code": None,
        }
    }


def _openai_legacy_refusal(kind: FormatKind, body: dict[str, Any]) -> tuple[int, Any]:
    if kind == "json_schema":
        message = (
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
            "with this model."
        )
        param = "response_format"
    else:
        message = "Unrecognized request argument supplied: response_format.schema"
        param = "response_format.schema"
    return 400, {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def _text_only_refusal(kind: FormatKind, body: dict[str, Any]) -> tuple[int, Any]:
    # FastAPI's own 422 body for a request model with extra="forbid".
    return 422, {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "response_format"],
                "msg": "Extra inputs are not permitted",
                "input": body["response_format"],
            }
        ]
    }


@dataclass(frozen=True)
class ServerDialect:
    """Which ``response_format`` variants a server family accepts and how it refuses the rest.

    ``refuse(kind, body)`` returns ``(status, json_body)`` exactly as that server sends it.

    >>> sorted(DIALECTS["llama-cpp-python"].accepts)
    ['json_object', 'json_object_schema']
    >>> DIALECTS["llama-cpp-python"].refuse("json_schema", {"response_format": {"type": "json_schema"}})[0]
    500
    """

    name: str
    accepts: frozenset[str]
    refuse: Callable[[FormatKind, dict[str, Any]], tuple[int, Any]] | None = None

    def answer_for(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        """The refusal for this request body, or None when the dialect accepts it."""
        kind = _format_kind(body)
        if kind is None or kind in self.accepts or self.refuse is None:
            return None
        return self.refuse(kind, body)


#: Dialects of OpenAI-compatible servers, by name (``LoopbackLLMServer(dialect=...)``).
DIALECTS: dict[str, ServerDialect] = {
    d.name: d
    for d in (
        ServerDialect(
            "permissive", frozenset({"json_schema", "json_object_schema", "json_object"})
        ),
        ServerDialect(
            "llama-cpp-python",
            frozenset({"json_object_schema", "json_object"}),
            _llama_cpp_python_refusal,
        ),
        ServerDialect("openai-legacy", frozenset({"json_object"}), _openai_legacy_refusal),
        ServerDialect("text-only", frozenset(), _text_only_refusal),
    )
}


def scripted(*replies: str | LoopbackReply | LoopbackError) -> Responder:
    """A responder that gives ``replies`` in order (thread-safe); past the end it answers 400
    "script exhausted", which the client does not retry, so an unexpected extra call fails."""
    lock = threading.Lock()
    it = iter(replies)

    def responder(_: LoopbackRequest) -> str | LoopbackReply | LoopbackError:
        with lock:
            nxt = next(it, None)
        if nxt is None:
            return LoopbackError(400, f"loopback script exhausted after {len(replies)} replies")
        return nxt

    return responder


def schema_example(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A minimal instance of a JSON Schema (required fields only, defaults/enums honoured).

    >>> schema_example({"type": "object", "properties": {"n": {"type": "integer"},
    ...     "tags": {"type": "array"}}, "required": ["n"]})
    {'n': 0}
    """
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return schema_example(root.get("$defs", {}).get(name, {}), root)
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_example(schema[key][0], root)
    typ = schema.get("type", "object")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ == "object":
        props = schema.get("properties", {})
        return {k: schema_example(props.get(k, {}), root) for k in schema.get("required", [])}
    if typ == "array":
        n = int(schema.get("minItems", 0))
        return [schema_example(schema.get("items", {}), root) for _ in range(n)]
    return {"string": "", "integer": 0, "number": 0.0, "boolean": False, "null": None}.get(typ, "")


def echo_responder(req: LoopbackRequest) -> str:
    """Default responder: a schema example when JSON is requested, else ``echo: <last user text>``."""
    if req.schema is not None:
        return json.dumps(schema_example(req.schema))
    if req.json_mode:
        return "{}"
    return f"echo: {req.last_user_text}"


def _text_of(content: Any) -> str:
    """Text of a message content: a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if "text" in block:
                    parts.append(str(block["text"]))
                elif block.get("type") == "tool_use":
                    parts.append(json.dumps(block.get("input", {})))
                elif block.get("type") == "tool_result":
                    parts.append(_text_of(block.get("content", "")))
            elif isinstance(block, str):
                parts.append(block)
        return "".join(parts)
    return "" if content is None else str(content)


def _words(text: str) -> int:
    return len(text.split())


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}


class LoopbackLLMServer:
    """Threaded HTTP server on ``host:port`` (port 0 = any free port) answering with ``responder``.

    ``delay_s`` delays every answer (a ``LoopbackReply`` adds its own). ``api_key``, when set,
    makes requests without that key (``x-api-key`` / ``Authorization: Bearer``) fail with 401.
    ``dialect`` (a ``DIALECTS`` name) sets which ``response_format`` the OpenAI route accepts.
    ``requests`` is the log of every request received, in arrival order (refused ones too).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "loopback",
        api_key: str | None = None,
        dialect: str = "permissive",
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown loopback dialect {dialect!r}; known: {', '.join(DIALECTS)}")
        self.dialect = DIALECTS[dialect]
        self.responder: Responder = responder or echo_responder
        self.delay_s = delay_s
        self.model_name = model_name
        self.api_key = api_key
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._log: list[LoopbackRequest] = []
        self._counter = itertools.count()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.responder_errors: list[BaseException] = []

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> LoopbackLLMServer:
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="loopback-llm", daemon=True
        )
        self._thread.start()
        log.debug("loopback LLM server on %s", self.url)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        base_url = self.openai_base_url
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        # What clients learnt about this server must not stick to the next one on this port.
        from reskill_gym.llm.openai_api import SERVER_CAPABILITIES

        SERVER_CAPABILITIES.forget(base_url)

    def __enter__(self) -> LoopbackLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- addresses
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("loopback server is not running (use start() or a with block)")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` / the ``openai`` backend."""
        return f"{self.url}/openai/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic`` / the ``anthropic`` backend."""
        return f"{self.url}/anthropic"

    @property
    def bedrock_base_url(self) -> str:
        """``base_url`` for ``anthropic.AnthropicBedrock`` / the ``bedrock`` backend."""
        return f"{self.url}/bedrock"

    def spec(self) -> str:
        """An ``openai:<base_url>#<model>`` backend spec pointing here."""
        return f"openai:{self.openai_base_url}#{self.model_name}"

    @property
    def requests(self) -> list[LoopbackRequest]:
        with self._lock:
            return list(self._log)

    # ---------------------------------------------------------------- internals
    def _record(self, req: LoopbackRequest) -> None:
        with self._lock:
            self._log.append(req)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _parse_request(
    index: int, api: Api, path: str, model: str, body: dict[str, Any], headers: dict[str, str]
) -> LoopbackRequest:
    messages: list[dict[str, str]] = []
    schema = None
    json_mode = False
    tool_name = None
    if api == "openai":
        for m in body.get("messages", []):
            messages.append({"role": str(m.get("role", "")), "content": _text_of(m.get("content"))})
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            json_mode = True
        elif fmt.get("type") == "json_object":
            schema = fmt.get("schema")  # llama.cpp's schema-constrained JSON object
            json_mode = True
    else:
        system = body.get("system")
        if system:
            messages.append({"role": "system", "content": _text_of(system)})
        for m in body.get("messages", []):
            messages.append({"role": str(m.get("role", "")), "content": _text_of(m.get("content"))})
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            tool_name = choice.get("name")
            for tool in body.get("tools", []):
                if tool.get("name") == tool_name:
                    schema = tool.get("input_schema")
            json_mode = True
    return LoopbackRequest(
        index=index,
        api=api,
        path=path,
        model=model,
        body=body,
        headers=headers,
        messages=messages,
        schema=schema,
        json_mode=json_mode,
        tool_name=tool_name,
    )


def _make_handler(server: LoopbackLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "LoopbackLLM/1.0"
        timeout = 30  # idle keep-alive connections end after this

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("loopback: " + format, *args)

        # -------------------------------------------------------- plumbing
        def _send_json(
            self,
            status: int,
            payload: Any,
            headers: dict[str, str] | None = None,
            drip_s: float = 0.0,
        ) -> None:
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if drip_s > 0:
                    self.wfile.flush()
                    for i in range(len(data)):
                        if server._stopping.is_set():
                            self.close_connection = True
                            return
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        server._wait(drip_s)
                    return
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError) as e:
                log.debug("loopback: client went away before the answer (%s)", e)
                self.close_connection = True

        def _error(
            self, api: Api, status: int, message: str, retry_after: float | None = None
        ) -> None:
            headers: dict[str, str] = {}
            if retry_after is not None:
                headers["retry-after"] = str(max(0, math.ceil(retry_after)))
                headers["retry-after-ms"] = str(int(round(retry_after * 1000)))
            if api == "anthropic":
                etype = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
                body: Any = {"type": "error", "error": {"type": etype, "message": message}}
            elif api == "bedrock":
                headers["x-amzn-ErrorType"] = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
                body = {"message": message}
            else:
                etype = _OPENAI_ERROR_TYPES.get(status, "server_error")
                body = {"error": {"message": message, "type": etype, "param": None, "code": None}}
            self._send_json(status, body, headers)

        def _read_body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return None
            return body if isinstance(body, dict) else None

        def _authorized(self) -> bool:
            if server.api_key is None:
                return True
            bearer = self.headers.get("Authorization", "")
            return server.api_key in (self.headers.get("x-api-key"), bearer.removeprefix("Bearer "))

        # -------------------------------------------------------- routes
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") == "/openai/v1/models":
                self._send_json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": server.model_name,
                                "object": "model",
                                "created": 0,
                                "owned_by": "loopback",
                            }
                        ],
                    },
                )
                return
            self._error("openai", 404, f"no route GET {self.path}")

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0]
            api: Api
            if path == "/openai/v1/chat/completions":
                api = "openai"
            elif path == "/anthropic/v1/messages":
                api = "anthropic"
            elif path.startswith("/bedrock/model/") and path.endswith("/invoke"):
                api = "bedrock"
            else:
                self._error("openai", 404, f"no route POST {path}")
                return
            body = self._read_body()
            if body is None:
                self._error(api, 400, "request body is not a JSON object")
                return
            if api == "bedrock":
                model = unquote(path[len("/bedrock/model/") : -len("/invoke")])
            else:
                model = str(body.get("model", ""))
            headers = {k.lower(): v for k, v in self.headers.items()}
            req = _parse_request(next(server._counter), api, path, model, body, headers)
            server._record(req)
            if not self._authorized():
                self._error(api, 401, "invalid api key")
                return
            if body.get("stream"):
                self._error(api, 400, "the loopback server does not stream; use stream=false")
                return
            refusal = server.dialect.answer_for(body) if api == "openai" else None
            if refusal is not None:
                self._send_json(*refusal)
                return
            server._wait(server.delay_s)
            try:
                answer = server.responder(req)
            except Exception as e:  # a responder bug must show up as a 500, not hang the client
                log.exception("loopback responder failed")
                server.responder_errors.append(e)
                self._error(api, 500, f"loopback responder raised {type(e).__name__}: {e}")
                return
            if isinstance(answer, LoopbackError):
                self._error(api, answer.status, answer.message, answer.retry_after)
                return
            reply = answer if isinstance(answer, LoopbackReply) else LoopbackReply(text=str(answer))
            server._wait(reply.delay_s)
            in_tok = reply.input_tokens
            if in_tok is None:
                in_tok = sum(_words(m["content"]) for m in req.messages)
            out_tok = (
                reply.output_tokens
                if reply.output_tokens is not None
                else max(1, _words(reply.text))
            )
            if api == "openai":
                body = self._openai_body(req, reply, in_tok, out_tok)
            else:
                body = self._anthropic_body(req, reply, in_tok, out_tok)
            self._send_json(200, body, drip_s=reply.drip_s)

        def _openai_body(
            self, req: LoopbackRequest, reply: LoopbackReply, i: int, o: int
        ) -> dict[str, Any]:
            return {
                "id": f"chatcmpl-loopback-{req.index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.model or server.model_name,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.text},
                        "finish_reason": reply.stop_reason or "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o},
            }

        def _anthropic_body(
            self, req: LoopbackRequest, reply: LoopbackReply, i: int, o: int
        ) -> dict[str, Any]:
            content: list[dict[str, Any]]
            stop = reply.stop_reason or "end_turn"
            tool_input = None
            if req.tool_name is not None:
                try:
                    tool_input = json.loads(reply.text)
                except ValueError:
                    tool_input = None
            if isinstance(tool_input, dict):
                content = [
                    {
                        "type": "tool_use",
                        "id": f"toolu_loopback_{req.index}",
                        "name": req.tool_name,
                        "input": tool_input,
                    }
                ]
                stop = reply.stop_reason or "tool_use"
            else:
                content = [{"type": "text", "text": reply.text}]
            return {
                "id": f"msg_loopback_{req.index}",
                "type": "message",
                "role": "assistant",
                "model": req.model or server.model_name,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": i, "output_tokens": o},
            }

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the echo/schema-example responder until interrupted (for dry-running configs)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--dialect",
        default="permissive",
        choices=sorted(DIALECTS),
        help="which response_format the OpenAI route accepts, refusing the rest like that server",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    srv = LoopbackLLMServer(
        delay_s=args.delay, host=args.host, port=args.port, dialect=args.dialect
    ).start()
    log.info(
        "serving: openai base_url %s, anthropic base_url %s",
        srv.openai_base_url,
        srv.anthropic_base_url,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
