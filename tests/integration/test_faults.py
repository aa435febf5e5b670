"""Fault injection over real HTTP on 127.0.0.1, through LiteLLM, for every call shape.

Part 1 drives `routed_llm.fallback.Executor` directly over `routed_llm.transport` (sync,
async, stream, astream, tool calls, structured output) against the package's local
OpenAI-compatible server, which injects 500, 503, 429 + Retry-After, hangs, closed
connections, malformed JSON, context-window and content-filter errors and broken streams.
Part 2 runs the same faults through `RoutedChatModel` and checks the attempts it reports.

Backoff sleeps are recorded instead of slept (the executor's sleep is injected); the only real
waits are the hang faults (each at most the 0.6 s call timeout).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from routed_llm import transport
from routed_llm.circuit import CircuitBreaker
from routed_llm.errors import AllModelsFailedError
from routed_llm.fallback import Executor, FallbackPolicy, StreamInterruptedError, Target
from routed_llm.testing.server import Behavior, Fault, LocalOpenAIServer

litellm = transport.litellm_module()
TIMEOUT = 0.6
MSGS = [{"role": "user", "content": "What is the capital of France? Answer briefly please."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "Capital",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
            "required": ["city", "population"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
def server(fresh_openai_server: LocalOpenAIServer) -> LocalOpenAIServer:
    return fresh_openai_server


def targets(*names: str, windows: tuple[int | None, ...] = ()) -> list[Target]:
    return [
        Target(name=n, expected_cost=1.0, max_input_tokens=windows[i] if windows else None) for i, n in enumerate(names)
    ]


def executor(retries: int = 1, breaker: CircuitBreaker | None = None) -> tuple[Executor, list[float]]:
    slept: list[float] = []

    async def asleep(s: float) -> None:
        slept.append(s)

    return Executor(FallbackPolicy(retries_per_model=retries), breaker, sleep=slept.append, asleep=asleep), slept


def params(server: LocalOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {"api_base": server.base_url, "api_key": "sk-test", "timeout": TIMEOUT, **extra}


def caller(server: LocalOpenAIServer, **extra: Any) -> Any:
    def call(t: Target) -> Any:
        return transport.complete(f"openai/{t.name}", MSGS, **params(server, **extra))

    return call


def acaller(server: LocalOpenAIServer, **extra: Any) -> Any:
    async def call(t: Target) -> Any:
        return await transport.acomplete(f"openai/{t.name}", MSGS, **params(server, **extra))

    return call


def text_of(chunk: Any) -> str:
    parts = []
    for choice in chunk.choices or ():
        parts.append(choice.delta.content or "")
        for tc in choice.delta.tool_calls or ():
            parts.append((tc.function.name or "") + (tc.function.arguments or ""))
    return "".join(parts)


def is_final(chunk: Any) -> bool:
    return any(c.finish_reason for c in chunk.choices or ())


def summary(attempts: Any) -> list[tuple[str, str | None, str]]:
    return [(a.model, a.error, a.action) for a in attempts]


# (fault on model "a", exception LiteLLM raises for it, action on the first try of "a")
FAULTS = [
    pytest.param(Fault.http(500), "InternalServerError", "retry", id="500"),
    pytest.param(Fault.http(503), "ServiceUnavailableError", "retry", id="503"),
    pytest.param(Fault.http(502), "BadGatewayError", "fallback", id="502"),
    pytest.param(Fault.http(429, retry_after=0.2), "RateLimitError", "retry", id="429"),
    pytest.param(Fault.hang(1.5), "Timeout", "retry", id="hang"),
    pytest.param(Fault.close(), "InternalServerError", "retry", id="close"),
    pytest.param(Fault.malformed(), None, None, id="malformed"),  # class checked in test_malformed
    pytest.param(Fault.content_filter(), "ContentPolicyViolationError", "fallback", id="content_filter"),
    pytest.param(Fault.http(401), "AuthenticationError", "fallback", id="401"),
    pytest.param(Fault.http(404), "NotFoundError", "fallback", id="404"),
]


def expected_attempts(error: str, first: str) -> list[tuple[str, str | None, str]]:
    if first == "retry":  # retries_per_model=1: two failures of "a", then "b" answers
        return [("a", error, "retry"), ("a", error, "fallback"), ("b", None, "ok")]
    return [("a", error, "fallback"), ("b", None, "ok")]


def arm(server: LocalOpenAIServer, fault: Fault) -> None:
    server.set_faults("a", [fault, fault])


# ---- part 1: the executor over LiteLLM ---------------------------------------------------------


@pytest.mark.parametrize(("fault", "error", "first"), FAULTS)
def test_sync_call_survives(server: LocalOpenAIServer, fault: Fault, error: str | None, first: str | None) -> None:
    arm(server, fault)
    ex, slept = executor()
    out = ex.run(targets("a", "b"), caller(server))
    assert out.target.name == "b" and "[b]" in out.value.choices[0].message.content
    if error is not None:
        assert summary(out.attempts) == expected_attempts(error, first or "")
    if fault.kind == "http" and fault.status == 429:
        assert slept == [pytest.approx(0.2)]  # Retry-After honoured instead of the backoff
    assert server.count("b") == 1


@pytest.mark.parametrize(("fault", "error", "first"), FAULTS)
async def test_async_call_survives(
    server: LocalOpenAIServer, fault: Fault, error: str | None, first: str | None
) -> None:
    arm(server, fault)
    ex, _ = executor()
    out = await ex.arun(targets("a", "b"), acaller(server))
    assert out.target.name == "b" and "[b]" in out.value.choices[0].message.content
    if error is not None:
        assert summary(out.attempts) == expected_attempts(error, first or "")


def test_malformed_json_is_not_a_user_error(server: LocalOpenAIServer) -> None:
    server.set_faults("a", [Fault.malformed()])
    ex, _ = executor(retries=0)
    out = ex.run(targets("a", "b"), caller(server))
    (failed, ok) = out.attempts
    assert failed.error in ("InternalServerError", "APIError", "APIResponseValidationError")
    assert failed.action == "fallback" and ok.model == "b"


def test_transient_fault_is_retried_on_the_same_model(server: LocalOpenAIServer) -> None:
    server.set_faults("a", [Fault.http(503)])
    ex, slept = executor(retries=2)
    out = ex.run(targets("a", "b"), caller(server))
    assert out.target.name == "a" and summary(out.attempts) == [
        ("a", "ServiceUnavailableError", "retry"),
        ("a", None, "ok"),
    ]
    assert len(slept) == 1 and server.count("b") == 0


def test_bad_request_is_raised_without_fallback(server: LocalOpenAIServer) -> None:
    server.set_faults("a", [Fault.http(400)])
    ex, slept = executor()
    with pytest.raises(litellm.BadRequestError):
        ex.run(targets("a", "b"), caller(server))
    assert server.count("a") == 1 and server.count("b") == 0 and slept == []


def test_context_window_moves_to_a_larger_window(server: LocalOpenAIServer) -> None:
    server.set_behavior("small", Behavior(context_window=4))
    server.set_behavior("also-small", Behavior(context_window=4))
    ex, _ = executor()
    out = ex.run(targets("small", "also-small", "big", windows=(4, 4, 100_000)), caller(server))
    assert out.target.name == "big"
    assert summary(out.attempts) == [
        ("small", "ContextWindowExceededError", "fallback"),
        ("also-small", "ContextWindowTooSmall", "skip"),
        ("big", None, "ok"),
    ]
    assert server.count("also-small") == 0


def test_every_model_failing_raises_all_models_failed(server: LocalOpenAIServer) -> None:
    server.set_down("a")
    server.set_down("b")
    ex, _ = executor(retries=0)
    with pytest.raises(AllModelsFailedError) as info:
        ex.run(targets("a", "b"), caller(server))
    assert isinstance(info.value.__cause__, litellm.ServiceUnavailableError)
    assert summary(info.value.attempts) == [
        ("a", "ServiceUnavailableError", "fallback"),
        ("b", "ServiceUnavailableError", "fallback"),
    ]


def test_tool_call_survives_mixed_faults_and_is_returned_once(server: LocalOpenAIServer) -> None:
    server.set_faults("a", [Fault.http(500), Fault.close()])
    ex, _ = executor()
    out = ex.run(targets("a", "b"), caller(server, tools=TOOLS))
    calls = out.value.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "a", "days": 3}
    assert server.count("a") == 2 and server.count("b") == 1


@pytest.mark.parametrize(("fault", "error", "first"), FAULTS)
def test_tool_call_survives(server: LocalOpenAIServer, fault: Fault, error: str | None, first: str | None) -> None:
    arm(server, fault)
    ex, _ = executor()
    out = ex.run(targets("a", "b"), caller(server, tools=TOOLS, tool_choice="required"))
    (call,) = out.value.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"city": "a", "days": 3} and out.target.name == "b"
    if error is not None:
        assert summary(out.attempts) == expected_attempts(error, first or "")


@pytest.mark.parametrize(("fault", "error", "first"), FAULTS)
async def test_structured_output_survives(
    server: LocalOpenAIServer, fault: Fault, error: str | None, first: str | None
) -> None:
    arm(server, fault)
    ex, slept = executor()
    out = await ex.arun(targets("a", "b"), acaller(server, response_format=SCHEMA))
    assert json.loads(out.value.choices[0].message.content) == {"city": "a", "population": 3}
    assert out.target.name == "b"
    if error is not None:
        assert summary(out.attempts) == expected_attempts(error, first or "")
    if fault.kind == "http" and fault.status == 429:
        assert slept == [pytest.approx(0.2)]


def test_circuit_opens_and_later_requests_skip_the_dead_model(server: LocalOpenAIServer) -> None:
    server.set_down("a")
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=60)
    ex, _ = executor(retries=0, breaker=breaker)
    for _ in range(5):
        assert ex.run(targets("a", "b"), caller(server)).target.name == "b"
    assert server.count("a") == 2 and breaker.state("a") == "open"
    last = ex.run(targets("a", "b"), caller(server))
    assert summary(last.attempts) == [("a", "CircuitOpen", "skip"), ("b", None, "ok")]


# ---- streams -----------------------------------------------------------------------------------


def opener(server: LocalOpenAIServer, **extra: Any) -> Any:
    def open_stream(t: Target) -> Iterator[Any]:
        return iter(transport.complete(f"openai/{t.name}", MSGS, **params(server, stream=True, **extra)))

    return open_stream


def aopener(server: LocalOpenAIServer, **extra: Any) -> Any:
    async def open_stream(t: Target) -> AsyncIterator[Any]:
        stream: AsyncIterator[Any] = await transport.acomplete(
            f"openai/{t.name}", MSGS, **params(server, stream=True, **extra)
        )
        return stream

    return open_stream


STREAM_FAULTS_BEFORE_CONTENT = [
    pytest.param(Fault.http(500), id="500"),
    pytest.param(Fault.http(429, retry_after=0.05), id="429"),
    pytest.param(Fault.hang(1.5), id="hang"),
    pytest.param(Fault.close(), id="close"),
    pytest.param(Fault.stream_break(1), id="break-after-role-chunk"),
    pytest.param(Fault.stream_break(1, abort=False), id="clean-eof-after-role-chunk"),
    pytest.param(Fault.content_filter(), id="content_filter"),
]


@pytest.mark.parametrize("fault", STREAM_FAULTS_BEFORE_CONTENT)
def test_stream_falls_back_before_content(server: LocalOpenAIServer, fault: Fault) -> None:
    arm(server, fault)
    ex, _ = executor()
    run = ex.stream(
        targets("a", "b"), opener(server, stream_options={"include_usage": True}), chunk_text=text_of, is_final=is_final
    )
    pieces = [(t.name, text_of(c)) for t, c in run]
    assert {n for n, _ in pieces} == {"b"}
    assert "".join(p for _, p in pieces).startswith("[b] Answer")
    assert run.target is not None and run.target.name == "b" and run.attempts[-1].action == "ok"
    assert all(a.streamed_chars == 0 for a in run.attempts)


@pytest.mark.parametrize("fault", STREAM_FAULTS_BEFORE_CONTENT)
async def test_astream_falls_back_before_content(server: LocalOpenAIServer, fault: Fault) -> None:
    arm(server, fault)
    ex, _ = executor()
    run = ex.astream(targets("a", "b"), aopener(server), chunk_text=text_of, is_final=is_final)
    pieces = [(t.name, text_of(c)) async for t, c in run]
    assert {n for n, _ in pieces} == {"b"} and run.attempts[-1].model == "b"


@pytest.mark.parametrize("abort", [True, False], ids=["cut", "clean-eof"])
def test_stream_broken_after_content_raises_with_streamed_chars(server: LocalOpenAIServer, abort: bool) -> None:
    server.set_faults("a", [Fault.stream_break(2, abort=abort)])
    ex, _ = executor()
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for _, c in ex.stream(targets("a", "b"), opener(server), chunk_text=text_of, is_final=is_final):
            got.append(text_of(c))
    streamed = "".join(got)
    assert streamed.startswith("[a]")
    (attempt,) = info.value.attempts
    assert attempt.model == "a" and attempt.action == "raise" and attempt.streamed_chars == len(streamed) > 0
    assert server.count("b") == 0  # never spliced with another model's continuation


@pytest.mark.parametrize("abort", [True, False], ids=["cut", "clean-eof"])
async def test_astream_broken_after_content_raises(server: LocalOpenAIServer, abort: bool) -> None:
    server.set_faults("a", [Fault.stream_break(2, abort=abort)])
    ex, _ = executor()
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for _, c in ex.astream(targets("a", "b"), aopener(server), chunk_text=text_of, is_final=is_final):
            got.append(text_of(c))
    assert info.value.attempts[-1].streamed_chars == len("".join(got)) > 0 and server.count("b") == 0


def test_wrapped_litellm_stream_still_detects_a_dropped_connection(server: LocalOpenAIServer) -> None:
    from routed_llm.fallback import WrappedStream

    def translate(stream: Any) -> Iterator[Any]:
        yield from stream  # an engine-side generator (e.g. scrubbing credentials from errors)

    def open_stream(t: Target) -> Any:
        stream = transport.complete(f"openai/{t.name}", MSGS, **params(server, stream=True))
        return WrappedStream(stream, translate(stream))

    server.set_faults("a", [Fault.stream_break(1, abort=False)])
    ex, _ = executor(retries=0)
    run = ex.stream(targets("a", "b"), open_stream, chunk_text=text_of, is_final=is_final)
    assert "".join(text_of(c) for _, c in run).startswith("[b] Answer")
    assert summary(run.attempts) == [("a", "IncompleteStreamError", "fallback"), ("b", None, "ok")]


def test_streamed_tool_call_survives_a_fault(server: LocalOpenAIServer) -> None:
    arm(server, Fault.http(503))
    ex, _ = executor()
    chunks = [
        c for _, c in ex.stream(targets("a", "b"), opener(server, tools=TOOLS), chunk_text=text_of, is_final=is_final)
    ]
    built = litellm.stream_chunk_builder(chunks, messages=MSGS)
    (call,) = built.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"city": "a", "days": 3}


async def test_streamed_structured_output_survives_a_hang(server: LocalOpenAIServer) -> None:
    server.set_faults("a", [Fault.hang(1.5)])
    ex, _ = executor(retries=0)
    run = ex.astream(targets("a", "b"), aopener(server, response_format=SCHEMA), chunk_text=text_of, is_final=is_final)
    text = "".join([text_of(c) async for _, c in run])
    assert json.loads(text) == {"city": "a", "population": 3}
    assert summary(run.attempts) == [("a", "Timeout", "fallback"), ("b", None, "ok")]


# ---- part 2: through RoutedChatModel --------------------------------------------------------------


PROMPT = "solve the equation for my class"


@pytest.fixture
def chat(server: LocalOpenAIServer, hash_router: Any, make_model_list: Any) -> Any:
    from routed_llm.chat_model import RoutedChatModel

    def make(**kw: Any) -> Any:
        policy = FallbackPolicy(retries_per_model=1, wait_initial_s=0.01, wait_max_s=0.02)
        return RoutedChatModel(model_list=make_model_list(), router=hash_router, timeout=TIMEOUT, fallback=policy, **kw)

    return make


def top_two(llm: Any, prompt: str = PROMPT, **params: Any) -> tuple[str, str]:
    plan = llm.engine.plan([{"role": "user", "content": prompt}], params)
    return plan.targets[0].name, plan.targets[1].name


def check_attempts(meta: dict[str, Any], failed: str, error: str, served: str) -> None:
    attempts = meta["routing"]["attempts"]
    assert meta["model_name"] == served
    assert [a["model"] for a in attempts] == [failed, failed, served]
    assert [a["error"] for a in attempts] == [error, error, None]
    assert [a["action"] for a in attempts] == ["retry", "fallback", "ok"]
    assert all(isinstance(a["latency_s"], float) and a["latency_s"] >= 0 for a in attempts)


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.http(500), "InternalServerError"), (Fault.hang(1.5), "Timeout"), (Fault.close(), "InternalServerError")],
    ids=["500", "hang", "close"],
)
def test_chat_model_invoke_survives(server: LocalOpenAIServer, chat: Any, fault: Fault, error: str) -> None:
    llm = chat()
    first, second = top_two(llm)
    server.set_faults(f"fake-{first}", [fault, fault])
    msg = llm.invoke(PROMPT)
    check_attempts(msg.response_metadata, first, error, second)
    assert f"[fake-{second}]" in msg.content


async def test_chat_model_ainvoke_survives(server: LocalOpenAIServer, chat: Any) -> None:
    llm = chat()
    first, second = top_two(llm)
    server.set_faults(f"fake-{first}", [Fault.http(503), Fault.http(503)])
    msg = await llm.ainvoke(PROMPT)
    check_attempts(msg.response_metadata, first, "ServiceUnavailableError", second)


def test_chat_model_stream_falls_back_before_content(server: LocalOpenAIServer, chat: Any) -> None:
    llm = chat()
    first, second = top_two(llm)
    server.set_faults(f"fake-{first}", [Fault.stream_break(1, abort=False), Fault.stream_break(1)])
    chunks = list(llm.stream(PROMPT))
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert f"[fake-{second}]" in full.content
    metas = [c.response_metadata["routing"] for c in chunks if "routing" in c.response_metadata]
    assert len(metas) == 1
    attempts = metas[0]["attempts"]
    assert [(a["model"], a["error"], a["action"]) for a in attempts] == [
        (first, "IncompleteStreamError", "retry"),
        (first, "MidStreamFallbackError", "fallback"),
        (second, None, "ok"),
    ]


async def test_chat_model_astream_raises_after_content(server: LocalOpenAIServer, chat: Any) -> None:
    llm = chat()
    first, _ = top_two(llm)
    server.set_faults(f"fake-{first}", [Fault.stream_break(3)])
    got = []
    with pytest.raises(StreamInterruptedError) as info:
        async for c in llm.astream(PROMPT):
            got.append(c.content)
    assert "".join(x for x in got if isinstance(x, str)).startswith(f"[fake-{first}]")
    assert info.value.attempts[-1].streamed_chars > 0 and info.value.attempts[-1].model == first


def test_chat_model_stream_cut_cleanly_after_content_is_not_a_short_answer(
    server: LocalOpenAIServer, chat: Any
) -> None:
    llm = chat()
    first, _ = top_two(llm)
    server.set_faults(f"fake-{first}", [Fault.stream_break(2, abort=False)])
    with pytest.raises(StreamInterruptedError) as info:
        for _ in llm.stream(PROMPT):
            pass
    assert info.value.attempts[-1].error == "IncompleteStreamError" and info.value.attempts[-1].streamed_chars > 0


def test_chat_model_tool_call_survives_and_runs_once(server: LocalOpenAIServer, chat: Any) -> None:
    llm = chat()
    first, second = top_two(llm, tools=TOOLS)
    server.set_faults(f"fake-{first}", [Fault.http(502)])
    bound = llm.bind_tools(TOOLS, tool_choice="any")
    msg = bound.invoke(PROMPT)
    assert len(msg.tool_calls) == 1 and msg.tool_calls[0]["args"] == {"city": "a", "days": 3}
    assert msg.response_metadata["model_name"] == second
    assert [a["action"] for a in msg.response_metadata["routing"]["attempts"]] == ["fallback", "ok"]


async def test_chat_model_structured_output_survives(server: LocalOpenAIServer, chat: Any) -> None:
    from pydantic import BaseModel

    class Capital(BaseModel):
        city: str
        population: int

    llm = chat()
    first, _ = top_two(llm, tools=TOOLS)
    server.set_faults(f"fake-{first}", [Fault.http(429, retry_after=0.05), Fault.http(500)])
    out = await llm.with_structured_output(Capital, include_raw=True).ainvoke(PROMPT)
    assert out["parsed"] == Capital(city="a", population=3)
    attempts = out["raw"].response_metadata["routing"]["attempts"]
    assert [(a["model"], a["error"]) for a in attempts][:2] == [
        (first, "RateLimitError"),
        (first, "InternalServerError"),
    ]


def test_chat_model_circuit_skips_a_dead_model(server: LocalOpenAIServer, chat: Any) -> None:
    llm = chat(circuit_breaker=CircuitBreaker(failure_threshold=2, cooldown_s=60))
    first, second = top_two(llm)
    server.set_down(f"fake-{first}")
    for _ in range(3):
        assert llm.invoke(PROMPT).response_metadata["model_name"] == second
    assert server.count(f"fake-{first}") == 2
    attempts = llm.invoke(PROMPT).response_metadata["routing"]["attempts"]
    assert [(a["model"], a["action"]) for a in attempts] == [(first, "skip"), (second, "ok")]


def test_chat_model_all_down_raises_all_models_failed(server: LocalOpenAIServer, chat: Any) -> None:
    llm = chat(circuit_breaker=False)
    for name in ("gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-nano"):
        server.set_down(f"fake-{name}")
    with pytest.raises(AllModelsFailedError) as info:
        llm.invoke(PROMPT)
    assert len({a.model for a in info.value.attempts}) == 3


def test_event_loop_is_not_blocked_by_sleeps() -> None:
    # the async driver awaits its (injected) asleep: a real asyncio.sleep keeps the loop running
    ex = Executor(FallbackPolicy(retries_per_model=1, wait_initial_s=0.05, wait_max_s=0.05))
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(5):
            ticks.append(i)
            await asyncio.sleep(0.01)

    async def flaky(t: Target) -> str:
        if not ticks or len(ticks) < 2:
            raise litellm.ServiceUnavailableError(message="busy", llm_provider="openai", model=t.name)
        return "ok"

    async def main() -> str:
        task = asyncio.create_task(ticker())
        out = await ex.arun(targets("a"), flaky)
        await task
        return out.value

    assert asyncio.run(main()) == "ok"
