"""A small, deterministic OpenAI-compatible HTTP server for tests, examples and benchmarks.

Stdlib only (`http.server.ThreadingHTTPServer` in a background thread); it never imports
LiteLLM. Reach it through LiteLLM with::

    litellm.completion(model="openai/<name>", api_base=server.base_url, api_key="sk-test",
                       max_retries=0, messages=[...])

API (stable)::

    LocalOpenAIServer(host: str = "127.0.0.1", port: int = 0, *, models: Sequence[str] = (),
                      verbose: bool = False)
        .start() -> LocalOpenAIServer          # also a context manager (start/stop)
        .stop() -> None                        # fast even with hanging requests in flight
        .base_url -> str                       # "http://127.0.0.1:<port>/v1"
        .port -> int
        .requests -> list[dict]                # snapshot: {"method","path","headers","body","model"};
                                               # Authorization/api-key headers are "<redacted>"
        .reset() -> None                       # clear behaviours, faults, down flags, counts, log
        .set_behavior(model: str, behavior: Behavior | None) -> None
        .set_faults(model: str, faults: Iterable[Fault | str | int]) -> None   # queue, one per request
        .set_fault_rate(model: str, rate: float, kinds: Sequence[Fault | str | int] = (500,),
                        *, seed: int = 0) -> None
        .set_down(model: str, down: bool = True) -> None                        # every request: 503
        .count(model: str | None = None) -> int    # chat requests received (faulted ones included)

    Behavior(*, reply: str | Callable[[str], str] | None = None,
             answer_key: Mapping[str, str] | Callable[[str, Sequence[str]], str | None] | None = None,
             latency: float = 0.0, use_tools: bool = True, context_window: int | None = None)
    Fault.http(status, *, retry_after=None, message=None) | Fault.hang(seconds=30.0) | Fault.close()
        | Fault.malformed() | Fault.stream_break(chunks=2, *, abort=True) | Fault.context_window()
        | Fault.content_filter() | Fault.parse("503" | "429:2" | "hang:1.5" | "stream_break:3" | "close" ...)
    answer_key_for_accuracy(gold: Mapping[str, str], accuracy: float, *, seed=0, letters="ABCD")
    prompt_key(prompt: str) -> str

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /health.

Answers (all deterministic, chosen by the request's `model`):

- text: `"[<model>] Answer <8 hex of sha256(model, prompt)> to: <first 12 words of prompt>"`;
- multiple choice (the last user message has lines "A. ...", "B. ..."): `"The answer is (X)"`
  with X from `Behavior.answer_key`, else a hash of model and prompt;
- `tools` present, `tool_choice` not "none" and the last message not a tool result: one
  tool call (the forced tool, else the first) with arguments generated from its JSON schema
  (integer 3, number 3.0, string = the first '...' or "..." quoted span of the last user
  message else "a", enum first, boolean true, arrays of one item, required
  properties, `$ref`/`anyOf` resolved), finish_reason "tool_calls", ids "call_<n>";
- after a tool result: `"[<model>] The tool returned: <tool content>"`;
- `response_format` json_schema: JSON generated from the schema; json_object: `{"answer": text}`,
  or `{"<key>": "a", ...}` when the prompt quotes identifier keys ('setup' and 'punchline');
- `stop` truncates at the first stop string; `max_tokens` cuts at 4 chars/token (finish "length");
- usage: prompt_tokens = ceil(message chars / 4), completion_tokens = ceil(answer chars / 4);
- `stream: true`: SSE over chunked encoding, role chunk, content in several chunks, tool
  calls as deltas (id+name first, arguments in 2-3 fragments), a finish_reason chunk, a
  usage chunk when `stream_options.include_usage`, then `data: [DONE]`.

Faults and what LiteLLM 1.106.2 raises (each row verified in tests/unit/test_server.py; the
exception is the exact class, `type(e) is X`)::

    fault                          server sends                     litellm exception
    Fault.http(400)                400 invalid_request_error        BadRequestError
    Fault.http(401)                401 authentication_error         AuthenticationError
    Fault.http(404)                404 model_not_found              NotFoundError
    Fault.http(408)                408 type "timeout"               Timeout
    Fault.http(429, retry_after=s) 429 + header Retry-After: s      RateLimitError (e.litellm_response_headers
                                                                    ["retry-after"] == "s")
    Fault.http(500)                500 server_error                 InternalServerError
    Fault.http(503), set_down()    503 server_error                 ServiceUnavailableError
    Fault.context_window()         400 context_length_exceeded      ContextWindowExceededError
    Fault.content_filter()         400 content_policy_violation     ContentPolicyViolationError
    Fault.hang(s), timeout < s     nothing before the timeout       Timeout
    Fault.close()                  socket shut, no response         InternalServerError ("Connection error.")
    Fault.malformed()              200, body is not JSON            InternalServerError
    Fault.malformed(), stream      200 SSE "data: {broken json"     MidStreamFallbackError while iterating
    Fault.stream_break(n), stream  n SSE chunks, body cut           MidStreamFallbackError while iterating,
                                   (incomplete chunked encoding)    after the first chunks were yielded
    Fault.stream_break(n), no stream  half the JSON body, then cut  InternalServerError
    Fault.stream_break(n, abort=False) n chunks, clean end, no      no exception; LiteLLM appends its own
                                   finish_reason and no [DONE]      finish_reason="stop" chunk, so the
                                                                    truncation is invisible to the caller

`MidStreamFallbackError` (module `litellm.exceptions`) subclasses `ServiceUnavailableError`.
A request stalled by `hang`/`latency` is released at once by `stop()` (the client then sees
InternalServerError "Connection error.").

Run standalone: `python -m routed_llm.testing.server --port 8099 --models a,b` (stops on
SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from ._behavior import Behavior, Fault, answer_key_for_accuracy, prompt_key
from ._server import LocalOpenAIServer

__all__ = ["Behavior", "Fault", "LocalOpenAIServer", "answer_key_for_accuracy", "main", "prompt_key"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m routed_llm.testing.server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--models", default="", help="comma-separated model names listed by /v1/models")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    models = [m for m in args.models.split(",") if m]
    server = LocalOpenAIServer(args.host, args.port, models=models, verbose=args.verbose).start()
    print(f"serving {server.base_url} models={models}", flush=True)  # noqa: T201 - the CLI reports its URL
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
