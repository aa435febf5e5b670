"""The Executor's planner, driven with injected sleeps and fakes that raise real LiteLLM errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

from routed_llm.circuit import CircuitBreaker
from routed_llm.errors import AllModelsFailedError, ConfigError
from routed_llm.fallback import (
    Executor,
    FallbackPolicy,
    IncompleteStreamError,
    StreamInterruptedError,
    Target,
)
from routed_llm.transport import litellm_module

litellm = litellm_module()
_REQ = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def err(kind: str, **headers: str) -> Exception:
    """A real LiteLLM exception of class `kind` (response headers optional)."""
    cls = getattr(litellm, kind)
    kw: dict[str, Any] = {"message": f"{kind} happened", "llm_provider": "openai", "model": "m"}
    if headers:
        kw["response"] = httpx.Response(429, headers=headers, request=_REQ)
    return cls(**kw)


def targets(*names: str, costs: Sequence[float] = (), windows: Sequence[int | None] = ()) -> list[Target]:
    return [
        Target(name=n, expected_cost=costs[i] if costs else 1.0, max_input_tokens=windows[i] if windows else None)
        for i, n in enumerate(names)
    ]


class Script:
    """A call that plays a per-model script of exceptions and values, recording each call."""

    def __init__(self, **plays: list[Any]) -> None:
        self.plays = {k: list(v) for k, v in plays.items()}
        self.calls: list[str] = []

    def __call__(self, target: Target) -> Any:
        self.calls.append(target.name)
        item = self.plays[target.name].pop(0) if len(self.plays[target.name]) > 1 else self.plays[target.name][0]
        if isinstance(item, BaseException):
            raise item
        return item

    async def acall(self, target: Target) -> Any:
        await asyncio.sleep(0)
        return self(target)


def executor(
    policy: FallbackPolicy | None = None, breaker: CircuitBreaker | None = None
) -> tuple[Executor, list[float]]:
    slept: list[float] = []

    async def asleep(s: float) -> None:
        slept.append(s)

    return Executor(policy, breaker, sleep=slept.append, asleep=asleep), slept


def actions(attempts: Sequence[Any]) -> list[tuple[str, str]]:
    return [(a.model, a.action) for a in attempts]


# ---- run / arun ------------------------------------------------------------------------------


def test_retries_same_model_with_exponential_backoff_and_jitter() -> None:
    ex, slept = executor(FallbackPolicy(retries_per_model=2, wait_initial_s=1.0, wait_max_s=8.0))
    call = Script(a=[err("InternalServerError"), err("Timeout"), "ok-a"], b=["ok-b"])
    out = ex.run(targets("a", "b"), call)
    assert out.value == "ok-a" and out.target.name == "a"
    assert call.calls == ["a", "a", "a"]
    assert actions(out.attempts) == [("a", "retry"), ("a", "retry"), ("a", "ok")]
    assert [a.error for a in out.attempts] == ["InternalServerError", "Timeout", None]
    assert len(slept) == 2
    assert 1.0 <= slept[0] <= 2.0 and 2.0 <= slept[1] <= 3.0  # 1 * 2**n + U(0, 1)


def test_backoff_is_capped_by_wait_max() -> None:
    policy = FallbackPolicy(wait_initial_s=1.0, wait_max_s=1.5)
    assert all(policy.backoff(n) <= 1.5 for n in range(1, 10))


def test_retry_after_is_honoured() -> None:
    ex, slept = executor()
    call = Script(a=[err("RateLimitError", **{"retry-after": "3"}), "ok"])
    out = ex.run(targets("a"), call)
    assert out.value == "ok" and slept == [3.0]


def test_retry_after_beyond_cap_falls_back_at_once() -> None:
    ex, slept = executor(FallbackPolicy(max_retry_after_s=5.0))
    call = Script(a=[err("RateLimitError", **{"retry-after": "60"})], b=["ok-b"])
    out = ex.run(targets("a", "b"), call)
    assert out.value == "ok-b" and slept == []
    assert actions(out.attempts) == [("a", "fallback"), ("b", "ok")]


def test_fallback_walks_the_ranking_in_order() -> None:
    ex, slept = executor()
    call = Script(a=[err("NotFoundError")], b=[err("AuthenticationError")], c=["ok-c"], d=["ok-d"])
    out = ex.run(targets("a", "b", "c", "d"), call)
    assert out.value == "ok-c" and call.calls == ["a", "b", "c"] and slept == []
    assert actions(out.attempts) == [("a", "fallback"), ("b", "fallback"), ("c", "ok")]


def test_retry_exhaustion_falls_back() -> None:
    ex, slept = executor(FallbackPolicy(retries_per_model=2))
    call = Script(a=[err("ServiceUnavailableError")], b=["ok-b"])
    out = ex.run(targets("a", "b"), call)
    assert call.calls == ["a", "a", "a", "b"] and len(slept) == 2
    assert [a.action for a in out.attempts] == ["retry", "retry", "fallback", "ok"]


def test_raise_propagates_unchanged_at_once() -> None:
    ex, slept = executor()
    bad = err("BadRequestError")
    call = Script(a=[bad], b=["ok-b"])
    with pytest.raises(litellm.BadRequestError) as info:
        ex.run(targets("a", "b"), call)
    assert info.value is bad and call.calls == ["a"] and slept == []


def test_user_code_errors_propagate_unchanged() -> None:
    ex, _ = executor()
    call = Script(a=[KeyError("oops")], b=["ok-b"])
    with pytest.raises(KeyError):
        ex.run(targets("a", "b"), call)
    assert call.calls == ["a"]


def test_max_models_limits_the_chain_and_all_failed_is_raised_from_last_error() -> None:
    ex, _ = executor(FallbackPolicy(max_models=2))
    last = err("BadGatewayError")
    call = Script(a=[err("NotFoundError")], b=[last], c=["ok-c"])
    with pytest.raises(AllModelsFailedError) as info:
        ex.run(targets("a", "b", "c"), call)
    assert call.calls == ["a", "b"]
    assert info.value.__cause__ is last
    assert actions(info.value.attempts) == [("a", "fallback"), ("b", "fallback")]
    assert "BadGatewayError" in str(info.value)


def test_max_cost_ratio_skips_expensive_fallbacks() -> None:
    ex, _ = executor(FallbackPolicy(max_cost_ratio=2.0))
    call = Script(a=[err("NotFoundError")], b=["ok-b"], c=["ok-c"])
    out = ex.run(targets("a", "b", "c", costs=[1.0, 5.0, 1.5]), call)
    assert out.value == "ok-c" and call.calls == ["a", "c"]
    assert actions(out.attempts) == [("a", "fallback"), ("b", "skip"), ("c", "ok")]
    assert out.attempts[1].error == "CostCeiling"


def test_cost_ceiling_that_leaves_nothing_raises_all_failed() -> None:
    ex, _ = executor(FallbackPolicy(max_cost_ratio=1.0))
    call = Script(a=[err("NotFoundError")], b=["ok-b"])
    with pytest.raises(AllModelsFailedError, match="max_cost_ratio"):
        ex.run(targets("a", "b", costs=[1.0, 1.01]), call)


def test_context_window_error_moves_to_a_larger_window() -> None:
    ex, slept = executor()
    call = Script(a=[err("ContextWindowExceededError")], b=["ok-b"], c=["ok-c"])
    out = ex.run(targets("a", "b", "c", windows=[8000, 4000, 128000]), call)
    assert out.value == "ok-c" and call.calls == ["a", "c"] and slept == []
    assert actions(out.attempts) == [("a", "fallback"), ("b", "skip"), ("c", "ok")]
    assert out.attempts[1].error == "ContextWindowTooSmall"


def test_open_circuit_is_skipped_without_a_call() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60)
    breaker.record_failure("a")
    ex, _ = executor(breaker=breaker)
    call = Script(a=["ok-a"], b=["ok-b"])
    out = ex.run(targets("a", "b"), call)
    assert out.value == "ok-b" and call.calls == ["b"]
    assert actions(out.attempts) == [("a", "skip"), ("b", "ok")] and out.attempts[0].error == "CircuitOpen"


def test_failures_feed_the_breaker_but_user_and_request_errors_do_not() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=60)
    ex, _ = executor(FallbackPolicy(retries_per_model=0), breaker)
    ex.run(targets("a", "b"), Script(a=[err("ContextWindowExceededError")], b=["ok"]))
    with pytest.raises(litellm.BadRequestError):
        ex.run(targets("a", "b"), Script(a=[err("BadRequestError")], b=["ok"]))
    assert breaker.state("a") == "closed"
    ex.run(targets("a", "b"), Script(a=[err("InternalServerError")], b=["ok"]))
    ex.run(targets("a", "b"), Script(a=[err("InternalServerError")], b=["ok"]))
    assert breaker.state("a") == "open"
    call = Script(a=["ok-a"], b=["ok-b"])
    ex.run(targets("a", "b"), call)
    assert call.calls == ["b"]


def test_empty_targets_and_bad_policy_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Executor().run([], lambda t: None)
    with pytest.raises(ConfigError):
        FallbackPolicy(max_models=0)
    with pytest.raises(ConfigError):
        FallbackPolicy(max_cost_ratio=0.5)


def test_arun_shares_the_planner() -> None:
    ex, slept = executor(FallbackPolicy(retries_per_model=1, wait_initial_s=0.5))
    call = Script(a=[err("APIConnectionError")], b=[err("ContentPolicyViolationError")], c=["ok-c"])
    out = asyncio.run(ex.arun(targets("a", "b", "c"), call.acall))
    assert out.value == "ok-c" and call.calls == ["a", "a", "b", "c"] and len(slept) == 1
    assert [a.action for a in out.attempts] == ["retry", "fallback", "fallback", "ok"]
    assert all(a.latency_s >= 0 for a in out.attempts)


def test_arun_raise_propagates() -> None:
    ex, _ = executor()
    bad = litellm.UnsupportedParamsError(message="no")
    call = Script(a=[bad], b=["ok-b"])
    with pytest.raises(litellm.UnsupportedParamsError):
        asyncio.run(ex.arun(targets("a", "b"), call.acall))
    assert call.calls == ["a"]


# ---- streams ---------------------------------------------------------------------------------


def chunk(text: str | None, finish: str | None = None) -> Any:
    """A real LiteLLM stream chunk."""
    from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

    return ModelResponseStream(choices=[StreamingChoices(delta=Delta(content=text), finish_reason=finish)])


def text_of(c: Any) -> str:
    return c.choices[0].delta.content or ""


def final(c: Any) -> bool:
    return c.choices[0].finish_reason is not None


class StreamScript:
    """Per model: a list of chunks and exceptions (an exception is raised when reached)."""

    def __init__(self, **plays: list[Any]) -> None:
        self.plays = plays
        self.opened: list[str] = []

    def __call__(self, target: Target) -> Iterator[Any]:
        self.opened.append(target.name)
        items = self.plays[target.name]
        if isinstance(items, BaseException):
            raise items

        def gen() -> Iterator[Any]:
            for item in items:
                if isinstance(item, BaseException):
                    raise item
                yield item

        return gen()

    async def aopen(self, target: Target) -> AsyncIterator[Any]:
        sync = self(target)

        async def agen() -> AsyncIterator[Any]:
            for item in sync:
                await asyncio.sleep(0)
                yield item

        return agen()


GOOD = [chunk(""), chunk("Hel"), chunk("lo"), chunk(None, "stop")]


def collect(run: Any) -> list[tuple[str, str]]:
    return [(t.name, text_of(c)) for t, c in run]


def test_stream_falls_back_before_the_first_chunk() -> None:
    ex, _ = executor(FallbackPolicy(retries_per_model=0))
    opener = StreamScript(a=err("InternalServerError"), b=[chunk(""), err("ServiceUnavailableError")], c=GOOD)
    run = ex.stream(targets("a", "b", "c"), opener, chunk_text=text_of, is_final=final)
    got = collect(run)
    assert got == [("c", ""), ("c", "Hel"), ("c", "lo"), ("c", "")]  # b's role chunk was held back, never shown
    assert run.target is not None and run.target.name == "c"
    assert actions(run.attempts) == [("a", "fallback"), ("b", "fallback"), ("c", "ok")]


def test_stream_error_after_content_raises_with_streamed_chars() -> None:
    ex, _ = executor()
    boom = err("InternalServerError")
    opener = StreamScript(a=[chunk(""), chunk("Hel"), chunk("lo"), boom], b=GOOD)
    run = ex.stream(targets("a", "b"), opener, chunk_text=text_of, is_final=final)
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for _, c in run:
            seen.append(text_of(c))
    assert "".join(seen) == "Hello" and opener.opened == ["a"]
    assert info.value.__cause__ is boom
    assert isinstance(info.value, AllModelsFailedError)
    (attempt,) = info.value.attempts
    assert attempt.streamed_chars == 5 and attempt.action == "raise" and attempt.error == "InternalServerError"


def test_stream_without_final_chunk_is_a_failure() -> None:
    ex, _ = executor(FallbackPolicy(retries_per_model=0))
    cut = [chunk(""), chunk("Hel")]
    opener = StreamScript(a=cut, b=GOOD)
    with pytest.raises(StreamInterruptedError) as info:
        collect(ex.stream(targets("a", "b"), opener, chunk_text=text_of, is_final=final))
    assert isinstance(info.value.__cause__, IncompleteStreamError)
    assert info.value.attempts[-1].streamed_chars == 3


def test_stream_that_ends_before_any_text_without_final_falls_back() -> None:
    ex, slept = executor(FallbackPolicy(retries_per_model=1))
    opener = StreamScript(a=[chunk("")], b=GOOD)
    run = ex.stream(targets("a", "b"), opener, chunk_text=text_of, is_final=final)
    assert "".join(t for _, t in collect(run)) == "Hello"
    assert [(a.model, a.error, a.action) for a in run.attempts] == [
        ("a", "IncompleteStreamError", "retry"),
        ("a", "IncompleteStreamError", "fallback"),
        ("b", None, "ok"),
    ]
    assert len(slept) == 1


class WrapperLike:
    """Mimics LiteLLM's CustomStreamWrapper: a synthetic "stop" chunk but no provider finish reason."""

    def __init__(self, chunks: list[Any], received: str | None) -> None:
        self._it = iter(chunks)
        self.received_finish_reason = received
        self.intermittent_finish_reason = None
        self.closed = False

    def __iter__(self) -> WrapperLike:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def close(self) -> None:
        self.closed = True


def test_synthetic_finish_reason_from_litellm_wrapper_is_detected() -> None:
    ex, _ = executor(FallbackPolicy(retries_per_model=0))
    wrappers = {"a": WrapperLike([chunk(""), chunk(None, "stop")], None), "b": WrapperLike(GOOD, "stop")}
    run = ex.stream(targets("a", "b"), lambda t: wrappers[t.name], chunk_text=text_of, is_final=final)
    assert "".join(t for _, t in collect(run)) == "Hello"
    assert actions(run.attempts) == [("a", "fallback"), ("b", "ok")]
    assert wrappers["a"].closed and wrappers["b"].closed


def test_stream_raise_error_before_content_propagates() -> None:
    ex, _ = executor()
    bad = err("BadRequestError")
    opener = StreamScript(a=bad, b=GOOD)
    with pytest.raises(litellm.BadRequestError) as info:
        collect(ex.stream(targets("a", "b"), opener, chunk_text=text_of, is_final=final))
    assert info.value is bad and opener.opened == ["a"]


def test_stream_all_fail_before_content() -> None:
    ex, _ = executor(FallbackPolicy(retries_per_model=0))
    opener = StreamScript(a=err("NotFoundError"), b=err("BadGatewayError"))
    with pytest.raises(AllModelsFailedError) as info:
        collect(ex.stream(targets("a", "b"), opener, chunk_text=text_of, is_final=final))
    assert not isinstance(info.value, StreamInterruptedError)
    assert actions(info.value.attempts) == [("a", "fallback"), ("b", "fallback")]


def test_astream_with_awaitable_opener_falls_back_and_raises_after_content() -> None:
    ex, slept = executor(FallbackPolicy(retries_per_model=1))
    opener = StreamScript(a=[chunk(""), err("Timeout")], b=GOOD)

    async def consume(run: Any) -> list[tuple[str, str]]:
        return [(t.name, text_of(c)) async for t, c in run]

    run = ex.astream(targets("a", "b"), opener.aopen, chunk_text=text_of, is_final=final)
    got = asyncio.run(consume(run))
    assert [n for n, _ in got] == ["b"] * 4 and len(slept) == 1
    assert [a.action for a in run.attempts] == ["retry", "fallback", "ok"]

    broken = StreamScript(a=[chunk("Hi"), err("APIConnectionError")], b=GOOD)
    with pytest.raises(StreamInterruptedError) as info:
        asyncio.run(consume(ex.astream(targets("a", "b"), broken.aopen, chunk_text=text_of, is_final=final)))
    assert info.value.attempts[-1].streamed_chars == 2 and broken.opened == ["a"]


def test_astream_accepts_an_async_iterator_directly() -> None:
    ex, _ = executor()

    async def gen(t: Target) -> AsyncIterator[Any]:
        for c in GOOD:
            yield c

    async def consume() -> str:
        return "".join([text_of(c) async for _, c in ex.astream(targets("a"), gen, chunk_text=text_of, is_final=final)])

    assert asyncio.run(consume()) == "Hello"


def test_no_retry_once_the_circuit_opened_during_the_request() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=60)
    ex, slept = executor(FallbackPolicy(retries_per_model=5), breaker)
    call = Script(a=[err("InternalServerError")], b=["ok-b"])
    out = ex.run(targets("a", "b"), call)
    assert call.calls == ["a", "a", "b"] and len(slept) == 1
    assert [a.action for a in out.attempts] == ["retry", "fallback", "ok"]


def test_failed_half_open_probe_is_not_retried() -> None:
    t = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=lambda: t[0])
    breaker.record_failure("a")
    t[0] = 11.0
    ex, slept = executor(FallbackPolicy(retries_per_model=3), breaker)
    call = Script(a=[err("ServiceUnavailableError")], b=["ok-b"])
    out = ex.run(targets("a", "b"), call)
    assert call.calls == ["a", "b"] and slept == [] and breaker.state("a") == "open"
    assert out.attempts[0].action == "fallback"


def test_open_circuits_are_the_last_resort_not_a_lost_request() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60)
    breaker.record_failure("b")
    breaker.record_failure("c")
    ex, _ = executor(FallbackPolicy(retries_per_model=0), breaker)
    call = Script(a=[err("BadGatewayError")], b=["ok-b"], c=["ok-c"])
    out = ex.run(targets("a", "b", "c"), call)
    assert call.calls == ["a", "b"] and out.value == "ok-b"
    assert actions(out.attempts) == [("a", "fallback"), ("b", "skip"), ("c", "skip"), ("b", "ok")]
    assert breaker.state("b") == "closed" and breaker.state("c") == "open"


def test_all_circuits_open_still_tries_once_each_within_max_models() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60)
    for m in "abc":
        breaker.record_failure(m)
    ex, slept = executor(FallbackPolicy(retries_per_model=3, max_models=2), breaker)
    call = Script(a=[err("ServiceUnavailableError")], b=[err("ServiceUnavailableError")], c=["ok-c"])
    with pytest.raises(AllModelsFailedError):
        ex.run(targets("a", "b", "c"), call)
    assert call.calls == ["a", "b"] and slept == []  # no retries on an open circuit


def test_a_stream_run_is_single_use() -> None:
    ex, _ = executor()
    run = ex.stream(targets("a"), StreamScript(a=GOOD), chunk_text=text_of, is_final=final)
    assert "".join(t for _, t in collect(run)) == "Hello"
    with pytest.raises(RuntimeError, match="only once"):
        collect(run)


def test_policy_can_replace_the_classifier() -> None:
    def strict(exc: BaseException) -> str:
        return "raise" if isinstance(exc, litellm.RateLimitError) else "fallback"

    ex, slept = executor(FallbackPolicy(classify=strict))  # type: ignore[arg-type]
    call = Script(a=[err("InternalServerError")], b=[err("RateLimitError")], c=["ok-c"])
    with pytest.raises(litellm.RateLimitError):
        ex.run(targets("a", "b", "c"), call)
    assert call.calls == ["a", "b"] and slept == []


def test_wrapped_stream_keeps_the_source_finish_bookkeeping() -> None:
    from routed_llm.fallback import WrappedStream

    def view(source: WrapperLike) -> Iterator[Any]:
        yield from source  # e.g. an error-translating generator

    ex, _ = executor(FallbackPolicy(retries_per_model=0))
    sources = {"a": WrapperLike([chunk(""), chunk(None, "stop")], None), "b": WrapperLike(GOOD, "stop")}
    hidden = ex.stream(targets("a", "b"), lambda t: view(sources[t.name]), chunk_text=text_of, is_final=final)
    assert [a.model for a in hidden.attempts] == [] and collect(hidden)[0][0] == "a"  # a generator hides it
    sources = {"a": WrapperLike([chunk(""), chunk(None, "stop")], None), "b": WrapperLike(GOOD, "stop")}
    run = ex.stream(
        targets("a", "b"),
        lambda t: WrappedStream(sources[t.name], view(sources[t.name])),
        chunk_text=text_of,
        is_final=final,
    )
    assert "".join(t for _, t in collect(run)) == "Hello"
    assert actions(run.attempts) == [("a", "fallback"), ("b", "ok")]
    assert sources["a"].closed and sources["b"].closed


def test_wrapped_stream_async() -> None:
    from routed_llm.fallback import WrappedStream

    class AsyncSource:
        def __init__(self, chunks: list[Any], received: str | None) -> None:
            self.chunks, self.received_finish_reason = chunks, received
            self.intermittent_finish_reason = None

        async def gen(self) -> AsyncIterator[Any]:
            for c in self.chunks:
                yield c

    async def opener(t: Target) -> Any:
        src = AsyncSource([chunk(""), chunk(None, "stop")], None) if t.name == "a" else AsyncSource(GOOD, "stop")
        return WrappedStream(src, src.gen())

    async def consume() -> tuple[str, Any]:
        run = ex.astream(targets("a", "b"), opener, chunk_text=text_of, is_final=final)
        return "".join([text_of(c) async for _, c in run]), run

    ex, _ = executor(FallbackPolicy(retries_per_model=0))
    text, run = asyncio.run(consume())
    assert text == "Hello" and actions(run.attempts) == [("a", "fallback"), ("b", "ok")]
