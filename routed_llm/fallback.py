"""Retries and fallback across ranked candidates: the one layer of routed-llm that retries.

`classify` interprets every exception a provider call can raise as one of three actions::

    "retry"     the same model again, after exponential backoff with jitter (or Retry-After)
    "fallback"  the next candidate of the router's ranking
    "raise"     the caller's own error: propagate it unchanged, at once

`Executor` walks a ranking of `Target` s under a `FallbackPolicy`, skipping models whose
circuit is open (`routed_llm.circuit.CircuitBreaker`). The decisions are made by one pure
planner (`_Planner`, after tenacity's ``iter``): it answers "attempt target X", "sleep N
seconds" or "give up", and the sync and async drivers (`Executor.run` / `arun` / `stream` /
`astream`) only carry those actions out.

Example:
    >>> ex = Executor(FallbackPolicy(retries_per_model=0), sleep=lambda s: None)
    >>> out = ex.run([Target(name="a", expected_cost=1.0)], lambda t: f"answer from {t.name}")
    >>> out.value, [a.action for a in out.attempts]
    ('answer from a', ['ok'])
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .errors import AllModelsFailedError, ConfigError, IncompleteStreamError, StreamInterruptedError
from .types import Attempt

if TYPE_CHECKING:
    from .circuit import CircuitBreaker

__all__ = [
    "Action",
    "AsyncStreamRun",
    "Executor",
    "FallbackPolicy",
    "IncompleteStreamError",
    "Outcome",
    "StreamInterruptedError",
    "StreamRun",
    "Target",
    "WrappedStream",
    "classify",
    "retry_after_seconds",
]

Action = Literal["retry", "fallback", "raise"]
R = TypeVar("R")
C = TypeVar("C")


# ---------------------------------------------------------------------------------------------
# classification

# Keyed by "<module>.<qualname>"; looked up along the exception's MRO, most specific first, so
# an unknown LiteLLM subclass inherits the action of its nearest known base. The reasoning for
# each row is in docs/fallback.md; tests/unit/test_classify.py keeps this table complete.
_L = "litellm.exceptions."
_TABLE: dict[str, Action] = {
    # transient: the same model will probably answer in a moment
    _L + "RateLimitError": "retry",
    _L + "Timeout": "retry",
    _L + "APIConnectionError": "retry",
    _L + "InternalServerError": "retry",
    _L + "ServiceUnavailableError": "retry",
    "routed_llm.errors.IncompleteStreamError": "retry",
    # this model cannot serve this request (or at all right now): another one may
    _L + "ContextWindowExceededError": "fallback",
    _L + "ContentPolicyViolationError": "fallback",
    _L + "NotFoundError": "fallback",
    _L + "AuthenticationError": "fallback",
    _L + "PermissionDeniedError": "fallback",
    _L + "PaymentRequiredError": "fallback",
    _L + "BadGatewayError": "fallback",
    _L + "MidStreamFallbackError": "fallback",
    _L + "APIResponseValidationError": "fallback",
    _L + "JSONSchemaValidationError": "fallback",
    _L + "LiteLLMUnknownProvider": "fallback",
    _L + "ModelNotMappedError": "fallback",
    _L + "OpenAIError": "fallback",
    "litellm.types.router.RouterRateLimitError": "fallback",
    "litellm.types.router.RouterRateLimitErrorBasic": "fallback",
    # the caller's own request (or their own policy) is at fault: every model would refuse it
    _L + "BadRequestError": "raise",
    _L + "InvalidRequestError": "raise",
    _L + "UnsupportedParamsError": "raise",
    _L + "UnprocessableEntityError": "raise",
    _L + "ImageFetchError": "raise",
    _L + "RejectedRequestError": "raise",
    _L + "VectorStoreSearchError": "raise",
    _L + "BudgetExceededError": "raise",
    _L + "GuardrailRaisedException": "raise",
    _L + "BlockedPiiEntityError": "raise",
    _L + "SensitiveDataRouteException": "raise",
    _L + "ModifyResponseException": "raise",
    "litellm.tool_loop.ToolLoopMaxRoundsExceeded": "raise",
}
# classes whose action depends on the HTTP status they carry
_BY_STATUS = {
    _L + "APIError",
    _L + "MockException",
    "openai.APIStatusError",
    "openai.APIError",
}
# transport errors seen raw (outside LiteLLM's mapping, e.g. while iterating a stream)
_TRANSPORT: dict[str, Action] = {
    "httpx.TimeoutException": "retry",
    "httpx.TransportError": "retry",
    "httpx.RemoteProtocolError": "retry",
    "openai.APITimeoutError": "retry",
    "openai.APIConnectionError": "retry",
}


def _status_action(status: object) -> Action:
    """Action for a generic API error by its HTTP status (unknown status: fall back)."""
    try:
        code = int(status)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "fallback"
    if code in (408, 409, 425, 429):
        return "retry"
    if code in (400, 413, 422):
        return "raise"
    return "fallback"  # 401/402/403/404, 5xx, malformed responses, anything unknown


def classify(exc: BaseException) -> Action:
    """What to do after `exc` was raised by a call to one candidate model.

    Args:
        exc: The exception the provider call raised.

    Returns:
        ``"retry"`` (same model, after a backoff), ``"fallback"`` (next candidate) or
        ``"raise"`` (the caller's error: propagate unchanged). Anything that is not a provider
        error (our own `DataError`, a `ValueError` in user code, `KeyboardInterrupt`,
        cancellation) is ``"raise"``.
    """
    if not isinstance(exc, Exception):
        return "raise"
    for cls in type(exc).__mro__:
        key = f"{cls.__module__}.{cls.__qualname__}"
        if key in _TABLE:
            return _TABLE[key]
        if key in _BY_STATUS:
            return _status_action(getattr(exc, "status_code", None))
        if key in _TRANSPORT:
            return _TRANSPORT[key]
    return "raise"


def _is_health_failure(exc: BaseException, action: str) -> bool:
    """Does `exc` (classified as `action`) say something about the model's health?"""
    return action != "raise" and type(exc).__name__ not in ("ContextWindowExceededError", "ContentPolicyViolationError")


def retry_after_seconds(exc: BaseException) -> float | None:
    """The provider's Retry-After hint carried by `exc`, in seconds, or None.

    Reads ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date) from
    ``exc.litellm_response_headers``, ``exc.response.headers`` or ``exc.headers``.
    """
    for headers in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if headers is None or not hasattr(headers, "get"):
            continue
        value = _parse_retry_after(headers)
        if value is not None:
            return value
    return None


def _parse_retry_after(headers: Mapping[str, Any]) -> float | None:
    lowered = {str(k).lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except (TypeError, ValueError):
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        try:
            when = parsedate_to_datetime(str(raw))
        except (TypeError, ValueError, IndexError):
            return None
        value = when.timestamp() - time.time()
    return max(0.0, value) if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackPolicy:
    """How hard to try: retries per model, backoff, how many models, a cost ceiling.

    Args:
        retries_per_model: Extra tries of the same model after a ``"retry"`` error.
        max_models: How many candidates of the ranking may be called (skipped ones, e.g.
            with an open circuit, do not count).
        wait_initial_s: First backoff wait; doubles per retry, plus up to this much jitter
            (tenacity's ``wait_exponential_jitter``).
        wait_max_s: Longest backoff wait.
        max_retry_after_s: A provider's Retry-After is honoured up to this many seconds; a
            longer one moves on to the next candidate at once instead of waiting.
        max_cost_ratio: A fallback candidate may cost at most this many times the routed
            choice's (the first target's) expected cost; None means no ceiling.
        wait: Optional tenacity wait strategy replacing the exponential default.
        classify: Optional replacement for `classify` (e.g. to treat a provider-specific
            error differently); it must return ``"retry"``, ``"fallback"`` or ``"raise"``.

    Example:
        >>> policy = FallbackPolicy(retries_per_model=1, max_cost_ratio=3.0)
        >>> 0.25 <= policy.backoff(1) <= 0.5  # 0.25 s x 2**0 + up to 0.25 s of jitter
        True
    """

    retries_per_model: int = 2
    max_models: int = 3
    wait_initial_s: float = 0.25
    wait_max_s: float = 8.0
    max_retry_after_s: float = 20.0
    max_cost_ratio: float | None = None
    wait: Callable[[Any], float] | None = field(default=None, compare=False)
    classify: Callable[[BaseException], Action] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        checks = (
            (self.retries_per_model >= 0, "retries_per_model must be >= 0"),
            (self.max_models >= 1, "max_models must be >= 1"),
            (self.wait_initial_s >= 0 and self.wait_max_s >= 0, "wait_initial_s and wait_max_s must be >= 0"),
            (self.max_retry_after_s >= 0, "max_retry_after_s must be >= 0"),
            (self.max_cost_ratio is None or self.max_cost_ratio >= 1, "max_cost_ratio must be None or >= 1"),
        )
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"FallbackPolicy: {msg}")

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before retry number `retry_number` (1-based) of the same model."""
        from tenacity import RetryCallState, wait_exponential_jitter

        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = retry_number
        strategy = self.wait or wait_exponential_jitter(
            multiplier=self.wait_initial_s, max=self.wait_max_s, jitter=self.wait_initial_s
        )
        return float(strategy(state))


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One candidate of the ranking, as the executor sees it.

    Args:
        name: The candidate's model_name (what the circuit breaker and attempts record).
        expected_cost: Expected cost of one call (for `FallbackPolicy.max_cost_ratio`).
        max_input_tokens: Context window, when known (a context-window error moves on to a
            candidate with a larger one).
    """

    name: str
    expected_cost: float
    max_input_tokens: int | None = None


@dataclass
class Outcome(Generic[R]):
    """A successful call: its value, the target that produced it and every attempt made."""

    value: R
    target: Target
    attempts: list[Attempt]


# ---------------------------------------------------------------------------------------------
# the pure planner


@dataclass(frozen=True, slots=True)
class _DoAttempt:
    target: Target


@dataclass(frozen=True, slots=True)
class _DoSleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class _GiveUp:
    error: AllModelsFailedError
    cause: BaseException | None


_Step = _DoAttempt | _DoSleep | _GiveUp


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Planner:
    """Decides the next step; knows nothing about sync, async, calls or sleeping."""

    def __init__(self, targets: Sequence[Target], policy: FallbackPolicy, breaker: CircuitBreaker | None) -> None:
        if not targets:
            msg = "no target to call: pass at least one candidate"
            raise ConfigError(msg)
        self.policy = policy
        self.breaker = breaker
        self.attempts: list[Attempt] = []
        self._queue = list(targets)
        self._ceiling = None if policy.max_cost_ratio is None else policy.max_cost_ratio * targets[0].expected_cost
        self._current: Target | None = None
        self._tries = 0  # calls made to the current target
        self._models_called = 0
        self._pending_sleep: float | None = None
        self._min_window: int | None = None  # after a context-window error: need a larger one
        self._last_error: BaseException | None = None
        self._circuit_skipped: list[Target] = []  # skipped for an open circuit: the last resort

    def next(self) -> _Step:
        """The next step: sleep before a retry, attempt a target, or give up."""
        if self._pending_sleep is not None:
            seconds, self._pending_sleep = self._pending_sleep, None
            return _DoSleep(seconds)
        if self._current is not None:
            return _DoAttempt(self._current)
        while self._queue and self._models_called < self.policy.max_models:
            target = self._queue.pop(0)
            reason = self._skip_reason(target)
            if reason is not None:
                self.attempts.append(
                    Attempt(model=target.name, error=reason[0], message=reason[1], action="skip", latency_s=0.0)
                )
                if reason[0] == "CircuitOpen":
                    self._circuit_skipped.append(target)
                continue
            return self._start(target)
        if self._circuit_skipped and self._models_called < self.policy.max_models:
            return self._start(self._circuit_skipped.pop(0))  # fail open: an open circuit beats losing the request
        return self._give_up()

    def _start(self, target: Target) -> _DoAttempt:
        self._current, self._tries = target, 0
        self._models_called += 1
        return _DoAttempt(target)

    def _skip_reason(self, target: Target) -> tuple[str, str] | None:
        if self._ceiling is not None and target.expected_cost > self._ceiling:
            return (
                "CostCeiling",
                f"expected cost {target.expected_cost:.3g} > max_cost_ratio ceiling {self._ceiling:.3g}",
            )
        if (
            self._min_window is not None
            and target.max_input_tokens is not None
            and target.max_input_tokens <= self._min_window
        ):
            return (
                "ContextWindowTooSmall",
                f"max_input_tokens {target.max_input_tokens} <= {self._min_window} that already overflowed",
            )
        if self.breaker is not None and not self.breaker.allow(target.name):
            return "CircuitOpen", "circuit open: the model failed repeatedly and is cooling down"
        return None

    def _give_up(self) -> _GiveUp:
        tried = [a for a in self.attempts if a.action != "skip"]
        if tried:
            last = tried[-1]
            msg = (
                f"all {self._models_called} candidate(s) failed after {len(tried)} attempt(s); "
                f"last error: {last.error}: {last.message}"
            )
        else:
            msg = "no candidate could be called: " + "; ".join(f"{a.model}: {a.message}" for a in self.attempts)
        msg += ". See .attempts; add candidates or raise FallbackPolicy.max_models / max_cost_ratio."
        return _GiveUp(AllModelsFailedError(msg, attempts=self.attempts), self._last_error)

    def succeeded(self, latency_s: float) -> None:
        """Record the current target's success."""
        target = self._require_current()
        self.attempts.append(Attempt(model=target.name, error=None, message=None, action="ok", latency_s=latency_s))
        if self.breaker is not None:
            self.breaker.record_success(target.name)
        self._current = None

    def failed(self, exc: BaseException, latency_s: float, *, streamed_chars: int = 0) -> str:
        """Record a failure of the current target; return the action taken.

        The action is ``"raise"`` (caller re-raises `exc` unchanged), ``"retry"`` or
        ``"fallback"``; after content was streamed it is ``"raise"`` too (no splicing).
        """
        target = self._require_current()
        action: str = (self.policy.classify or classify)(exc)
        self._last_error = exc
        self._tries += 1
        if self.breaker is not None and _is_health_failure(exc, action):
            self.breaker.record_failure(target.name)
        if action == "retry":
            action = self._plan_retry(target, exc)
        if streamed_chars and action != "raise":
            action = "raise"
        if type(exc).__name__ == "ContextWindowExceededError" and target.max_input_tokens is not None:
            self._min_window = max(self._min_window or 0, target.max_input_tokens)
        self.attempts.append(
            Attempt(
                model=target.name,
                error=type(exc).__name__,
                message=_short(exc),
                action=action,
                latency_s=latency_s,
                streamed_chars=streamed_chars,
            )
        )
        if action != "retry":
            self._current = None
            self._pending_sleep = None
        return action

    def _plan_retry(self, target: Target, exc: BaseException) -> str:
        if self._tries > self.policy.retries_per_model:
            return "fallback"
        if self.breaker is not None and self.breaker.state(target.name) != "closed":
            return "fallback"  # its circuit opened meanwhile (or this was the half-open probe)
        hint = retry_after_seconds(exc)
        if hint is not None and hint > self.policy.max_retry_after_s:
            return "fallback"  # the provider asks for longer than we may wait: try another model now
        self._pending_sleep = hint if hint is not None else self.policy.backoff(self._tries)
        return "retry"

    def _require_current(self) -> Target:
        if self._current is None:
            msg = "planner: no attempt in progress"
            raise RuntimeError(msg)
        return self._current


# ---------------------------------------------------------------------------------------------
# streaming: one pure per-attempt state machine shared by both drivers


class _StreamAttempt(Generic[C]):
    """Holds chunks back until the first one with text, counts what reached the caller."""

    def __init__(self, chunk_text: Callable[[C], str], is_final: Callable[[C], bool]) -> None:
        self._chunk_text = chunk_text
        self._is_final = is_final
        self._held: list[C] = []
        self.committed = False
        self.streamed_chars = 0
        self.saw_final = False

    def feed(self, chunk: C) -> list[C]:
        """Chunks to hand to the caller now (possibly none while holding back)."""
        if self._is_final(chunk):
            self.saw_final = True
        text = self._chunk_text(chunk) or ""
        if not self.committed and not text:
            self._held.append(chunk)
            return []
        out, self._held = [*self._held, chunk], []
        self.committed = True
        self.streamed_chars += len(text)
        return out

    def finish(self, stream: object) -> list[C]:
        """The stream ended cleanly: release held chunks, or raise if it was cut short."""
        if not self.saw_final or _provider_finished(stream) is False:
            msg = "the stream ended without a final chunk (no finish_reason): the connection was probably dropped"
            raise IncompleteStreamError(msg)
        out, self._held = self._held, []
        return out


def _provider_finished(stream: object) -> bool | None:
    """Did the provider itself send a finish_reason? None when `stream` cannot tell.

    LiteLLM's stream wrapper (``CustomStreamWrapper``) synthesises a final chunk with
    finish_reason "stop" when the connection drops cleanly mid-answer (1.106), so a
    finish_reason on a chunk is not proof; the wrapper's ``received_finish_reason`` is.
    """
    if isinstance(stream, WrappedStream):
        stream = stream.source
    if not hasattr(stream, "received_finish_reason"):
        return None
    return stream.received_finish_reason is not None or getattr(stream, "intermittent_finish_reason", None) is not None


class WrappedStream(Generic[C]):
    """Iterate a transformed view of a provider stream while keeping the source's bookkeeping.

    `Executor.stream` / `astream` tell a dropped connection from a finished answer by reading
    LiteLLM's ``received_finish_reason`` on the object `open_stream` returns. A generator
    that wraps LiteLLM's stream (to translate or scrub errors, say) hides it; return
    ``WrappedStream(source, view)`` instead, where `view` iterates (or async-iterates)
    `source`. Closing it closes both.

    Args:
        source: The provider's stream object (LiteLLM's ``CustomStreamWrapper``).
        view: An iterator or async iterator over `source`'s chunks.
    """

    def __init__(self, source: object, view: Iterator[C] | AsyncIterator[C]) -> None:
        self.source = source
        self.view = view

    @property
    def received_finish_reason(self) -> object:
        """The source's own record of the provider's finish reason (None when not sent)."""
        return getattr(self.source, "received_finish_reason", None)

    @property
    def intermittent_finish_reason(self) -> object:
        """The source's record of a finish reason seen mid-stream."""
        return getattr(self.source, "intermittent_finish_reason", None)

    def __iter__(self) -> Iterator[C]:
        return self

    def __next__(self) -> C:
        return next(self.view)  # type: ignore[arg-type]

    def __aiter__(self) -> AsyncIterator[C]:
        return self

    async def __anext__(self) -> C:
        return await self.view.__anext__()  # type: ignore[union-attr]

    def close(self) -> None:
        """Close the view and the source (best effort)."""
        _close(self.view)
        _close(self.source)

    async def aclose(self) -> None:
        """Async `close`."""
        await _aclose(self.view)
        await _aclose(self.source)


class _StreamDriverBase(Generic[C]):
    def __init__(
        self,
        executor: Executor,
        targets: Sequence[Target],
        chunk_text: Callable[[C], str],
        is_final: Callable[[C], bool],
    ) -> None:
        self._planner = _Planner(targets, executor.policy, executor.breaker)
        self._executor = executor
        self._chunk_text = chunk_text
        self._is_final = is_final
        self.target: Target | None = None
        self._started = False

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt so far (complete once iteration has finished)."""
        return self._planner.attempts

    def _start_once(self) -> None:
        if self._started:
            msg = "a fallback stream can be iterated only once; call Executor.stream/astream again"
            raise RuntimeError(msg)
        self._started = True

    def _new_attempt(self) -> _StreamAttempt[C]:
        return _StreamAttempt(self._chunk_text, self._is_final)

    def _on_error(self, exc: Exception, state: _StreamAttempt[C], t0: float) -> None:
        """Record a failed attempt; raise when the caller must see it."""
        action = self._planner.failed(exc, time.monotonic() - t0, streamed_chars=state.streamed_chars)
        if action != "raise":
            return
        if not state.committed:
            raise exc
        msg = (
            f"the stream from {self.attempts[-1].model} failed after {state.streamed_chars} characters were "
            f"delivered ({type(exc).__name__}); not continuing with another model's text"
        )
        raise StreamInterruptedError(msg, attempts=self.attempts) from exc


class StreamRun(_StreamDriverBase[C]):
    """A fallback-protected stream: iterate for ``(target, chunk)``; then read `attempts`/`target`."""

    def __init__(
        self,
        executor: Executor,
        targets: Sequence[Target],
        open_stream: Callable[[Target], Iterator[C]],
        chunk_text: Callable[[C], str],
        is_final: Callable[[C], bool],
    ) -> None:
        super().__init__(executor, targets, chunk_text, is_final)
        self._open = open_stream

    def __iter__(self) -> Iterator[tuple[Target, C]]:
        self._start_once()
        while True:
            step = self._planner.next()
            if isinstance(step, _DoSleep):
                self._executor.sleep(step.seconds)
                continue
            if isinstance(step, _GiveUp):
                raise step.error from step.cause
            state, t0 = self._new_attempt(), time.monotonic()
            try:
                stream = self._open(step.target)
                try:
                    for chunk in stream:
                        for out in state.feed(chunk):
                            self.target = step.target
                            yield step.target, out
                    tail = state.finish(stream)
                finally:
                    _close(stream)
            except Exception as exc:
                self._on_error(exc, state, t0)
                continue
            self.target = step.target
            for out in tail:
                yield step.target, out
            self._planner.succeeded(time.monotonic() - t0)
            return


class AsyncStreamRun(_StreamDriverBase[C]):
    """Async `StreamRun`: ``async for target, chunk in run``."""

    def __init__(
        self,
        executor: Executor,
        targets: Sequence[Target],
        open_stream: Callable[[Target], AsyncIterator[C]] | Callable[[Target], Awaitable[AsyncIterator[C]]],
        chunk_text: Callable[[C], str],
        is_final: Callable[[C], bool],
    ) -> None:
        super().__init__(executor, targets, chunk_text, is_final)
        self._open = open_stream

    async def __aiter__(self) -> AsyncIterator[tuple[Target, C]]:
        self._start_once()
        while True:
            step = self._planner.next()
            if isinstance(step, _DoSleep):
                await self._executor.asleep(step.seconds)
                continue
            if isinstance(step, _GiveUp):
                raise step.error from step.cause
            state, t0 = self._new_attempt(), time.monotonic()
            try:
                opened = self._open(step.target)
                stream: AsyncIterator[C] = await opened if inspect.isawaitable(opened) else opened
                try:
                    async for chunk in stream:
                        for out in state.feed(chunk):
                            self.target = step.target
                            yield step.target, out
                    tail = state.finish(stream)
                finally:
                    await _aclose(stream)
            except Exception as exc:
                self._on_error(exc, state, t0)
                continue
            self.target = step.target
            for out in tail:
                yield step.target, out
            self._planner.succeeded(time.monotonic() - t0)
            return


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # best effort: the stream is being abandoned
            close()


async def _aclose(stream: object) -> None:
    aclose = getattr(stream, "aclose", None)
    if callable(aclose):
        with contextlib.suppress(Exception):  # best effort: the stream is being abandoned
            result = aclose()
            if inspect.isawaitable(result):
                await result


# ---------------------------------------------------------------------------------------------
# the executor


class Executor:
    """Runs a call against ranked targets with retries, fallback and a circuit breaker.

    Targets are tried in order; one is skipped (an attempt with action ``"skip"``) when it
    exceeds the cost ceiling, when an earlier one overflowed a context window at least as
    large, or when its circuit is open. Targets skipped only for an open circuit are still
    tried, once each, after every other one failed (fail-open), so an open circuit never
    loses a request on its own. See docs/fallback.md.

    Args:
        policy: Retry and fallback policy (default `FallbackPolicy()`).
        breaker: Optional `routed_llm.circuit.CircuitBreaker`, shared across requests.
        sleep: Blocking sleep (injectable for tests).
        asleep: Async sleep (injectable for tests).

    Example:
        >>> ex = Executor(sleep=lambda s: None)
        >>> ex.run([Target(name="m", expected_cost=0.0)], lambda t: "hi").attempts[0].action
        'ok'
    """

    def __init__(
        self,
        policy: FallbackPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        sleep: Callable[[float], object] = time.sleep,
        asleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.policy = policy or FallbackPolicy()
        self.breaker = breaker
        self.sleep = sleep
        self.asleep = asleep

    def run(self, targets: Sequence[Target], call: Callable[[Target], R]) -> Outcome[R]:
        """Call `call(target)` down the ranking until one succeeds.

        Raises:
            AllModelsFailedError: Every allowed target failed (raised from the last error).
            Exception: A ``"raise"``-classified error, unchanged.
        """
        planner = _Planner(targets, self.policy, self.breaker)
        while True:
            step = planner.next()
            if isinstance(step, _DoSleep):
                self.sleep(step.seconds)
                continue
            if isinstance(step, _GiveUp):
                raise step.error from step.cause
            t0 = time.monotonic()
            try:
                value = call(step.target)
            except Exception as exc:
                if planner.failed(exc, time.monotonic() - t0) == "raise":
                    raise
                continue
            planner.succeeded(time.monotonic() - t0)
            return Outcome(value=value, target=step.target, attempts=planner.attempts)

    async def arun(self, targets: Sequence[Target], acall: Callable[[Target], Awaitable[R]]) -> Outcome[R]:
        """Async `run`."""
        planner = _Planner(targets, self.policy, self.breaker)
        while True:
            step = planner.next()
            if isinstance(step, _DoSleep):
                await self.asleep(step.seconds)
                continue
            if isinstance(step, _GiveUp):
                raise step.error from step.cause
            t0 = time.monotonic()
            try:
                value = await acall(step.target)
            except Exception as exc:
                if planner.failed(exc, time.monotonic() - t0) == "raise":
                    raise
                continue
            planner.succeeded(time.monotonic() - t0)
            return Outcome(value=value, target=step.target, attempts=planner.attempts)

    def stream(
        self,
        targets: Sequence[Target],
        open_stream: Callable[[Target], Iterator[C]],
        *,
        chunk_text: Callable[[C], str],
        is_final: Callable[[C], bool],
    ) -> StreamRun[C]:
        """A stream that falls back transparently until the first chunk with text.

        Chunks without text (role headers, tool-call deltas when `chunk_text` ignores them)
        are held back until text arrives or the stream ends, so a failure before any text
        still falls back. A stream that ends without a chunk for which `is_final` is true is
        an `IncompleteStreamError`. After text reached the caller, a failure raises
        `StreamInterruptedError` (its `attempts` carry ``streamed_chars``).
        """
        return StreamRun(self, targets, open_stream, chunk_text, is_final)

    def astream(
        self,
        targets: Sequence[Target],
        open_stream: Callable[[Target], AsyncIterator[C]] | Callable[[Target], Awaitable[AsyncIterator[C]]],
        *,
        chunk_text: Callable[[C], str],
        is_final: Callable[[C], bool],
    ) -> AsyncStreamRun[C]:
        """Async `stream`; `open_stream` may return the async iterator or an awaitable of it."""
        return AsyncStreamRun(self, targets, open_stream, chunk_text, is_final)
