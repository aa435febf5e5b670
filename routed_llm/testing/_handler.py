"""HTTP plumbing of the local OpenAI-compatible server: the threading server and handler.

The handler records each request, applies injected faults, and writes the replies planned
by `_protocol` as JSON or as SSE over chunked transfer encoding.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._behavior import Fault
from ._protocol import (
    RequestError,
    context_window_error,
    error_body,
    plan_reply,
    prompt_tokens,
    render_chunks,
    render_completion,
)
from ._state import ServerState, redact_headers

__all__ = ["HTTPServer"]


class HTTPServer(ThreadingHTTPServer):
    """Threading server that knows its state, tracks connections and stays quiet."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the default backlog of 5 drops connections under concurrent load
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: ServerState, *, verbose: bool) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.verbose = verbose
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; print other errors only when verbose."""
        if self.verbose:
            super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Shut down every open client connection (unblocks handler threads)."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            _shutdown(conn)


class _Handler(BaseHTTPRequestHandler):
    """One HTTP connection; routes to the OpenAI endpoints."""

    protocol_version = "HTTP/1.1"
    server: HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/health", "/v1/health"):
            self._send_json(200, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            models = [
                {"id": m, "object": "model", "created": 0, "owned_by": "routed-llm"}
                for m in self.server.state.known_models()
            ]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_json(404, error_body(f"no route GET {path}", status=404))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, error_body(f"no route POST {path}", status=404))
            return
        headers = redact_headers(self.headers.items())
        self.server.state.record(
            {
                "method": "POST",
                "path": path,
                "headers": headers,
                "body": body if body is not None else raw.decode("utf-8", "replace"),
                "model": model,
            }
        )
        if not isinstance(body, dict):
            self._send_json(400, error_body("request body is not a JSON object", status=400))
            return
        self._chat(body, model)

    def _chat(self, body: dict[str, Any], model: str) -> None:
        state, stream = self.server.state, bool(body.get("stream"))
        fault = state.take_fault(model)
        behavior = state.behavior(model)
        if fault is not None and fault.kind == "hang" and self._wait(fault.seconds):
            return
        if fault is not None and fault.kind not in ("hang", "stream_break"):
            self._fault(fault, body)
            return
        if behavior.latency and self._wait(behavior.latency):
            return
        try:
            reply = plan_reply(body, model, behavior, lambda: f"call_{state.next_id()}")
        except RequestError as exc:
            self._send_json(exc.status, error_body(exc.message, status=exc.status, code=exc.code))
            return
        response_id, created = f"chatcmpl-{state.next_id()}", int(time.time())
        if not stream:
            payload = json.dumps(render_completion(reply, model=model, response_id=response_id, created=created))
            if fault is not None:  # stream_break on a non-stream request: cut the body
                self._send_truncated(payload.encode())
            else:
                self._send_raw(200, payload.encode(), "application/json")
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks, closing = render_chunks(
            reply, model=model, response_id=response_id, created=created, include_usage=include_usage
        )
        self._stream(chunks, closing, fault)

    def _fault(self, fault: Fault, body: dict[str, Any]) -> None:
        """Answer with an injected fault other than hang/stream_break."""
        if fault.kind == "close":
            self._abort()
        elif fault.kind == "malformed" and body.get("stream"):
            self._stream([], [], None, raw_events=["data: {broken json\n\n"])
        elif fault.kind == "malformed":
            self._send_raw(
                200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{', "application/json"
            )
        elif fault.kind == "context_window":
            n = max(2, prompt_tokens(body.get("messages") or []))
            err = context_window_error(n - 1, n)
            self._send_json(400, error_body(err.message, status=400, code=err.code))
        elif fault.kind == "content_filter":
            msg = "Your request was rejected as a result of our safety system."
            self._send_json(400, error_body(msg, status=400, code="content_policy_violation"))
        else:
            message = fault.message or f"Injected fault: HTTP {fault.status}"
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            code = {429: "rate_limit_exceeded", 401: "invalid_api_key", 404: "model_not_found"}.get(fault.status)
            self._send_json(fault.status, error_body(message, status=fault.status, code=code), extra)

    def _stream(
        self,
        chunks: list[dict[str, Any]],
        closing: list[dict[str, Any]],
        fault: Fault | None,
        raw_events: Sequence[str] = (),
    ) -> None:
        """Send SSE events over chunked encoding, or break after `fault.chunks` events."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [*raw_events, *(f"data: {json.dumps(c)}\n\n" for c in chunks)]
        if fault is not None:
            for event in events[: max(0, min(fault.chunks, len(events)))]:
                self._write_chunk(event.encode())
            if fault.abort:
                self._abort()
            else:
                self.wfile.write(b"0\r\n\r\n")
            return
        for event in [*events, *(f"data: {json.dumps(c)}\n\n" for c in closing), "data: [DONE]\n\n"]:
            self._write_chunk(event.encode())
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; return True (and drop the connection) if the server stops."""
        if self.server.stopping.wait(seconds):
            self._abort()
            return True
        return False

    def _abort(self) -> None:
        """Close the connection without (the rest of) a response."""
        self.close_connection = True
        _shutdown(self.connection)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(obj).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_truncated(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self._abort()


def _shutdown(conn: socket.socket) -> None:
    """Shut a socket down in both directions, ignoring already-closed sockets."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
