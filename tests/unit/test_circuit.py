"""Circuit breaker state machine with an injected clock (the Redis store is in tests/integration)."""

from __future__ import annotations

import json
import threading

import pytest

from routed_llm.circuit import CircuitBreaker, InMemoryStore
from routed_llm.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(**kw: object) -> tuple[CircuitBreaker, Clock, list[tuple[str, str, str]]]:
    clock, changes = Clock(), []
    cb = CircuitBreaker(clock=clock, on_change=lambda *c: changes.append(c), **kw)  # type: ignore[arg-type]
    return cb, clock, changes


def test_opens_after_threshold_consecutive_failures() -> None:
    cb, _, changes = breaker(failure_threshold=3, cooldown_s=30)
    for _ in range(2):
        cb.record_failure("m")
        assert cb.state("m") == "closed" and cb.allow("m")
    cb.record_failure("m")
    assert cb.state("m") == "open" and not cb.allow("m")
    assert changes == [("m", "closed", "open")]
    assert cb.state("other") == "closed" and cb.allow("other")


def test_success_resets_the_count() -> None:
    cb, _, _ = breaker(failure_threshold=3)
    cb.record_failure("m")
    cb.record_failure("m")
    cb.record_success("m")
    cb.record_failure("m")
    cb.record_failure("m")
    assert cb.state("m") == "closed"


def test_failures_outside_the_window_do_not_add_up() -> None:
    cb, clock, _ = breaker(failure_threshold=3, window_s=10)
    cb.record_failure("m")
    cb.record_failure("m")
    clock.now += 11
    cb.record_failure("m")
    cb.record_failure("m")
    assert cb.state("m") == "closed"
    cb.record_failure("m")
    assert cb.state("m") == "open"


def test_half_open_allows_exactly_one_probe_then_closes_on_success() -> None:
    cb, clock, changes = breaker(failure_threshold=1, cooldown_s=30)
    cb.record_failure("m")
    clock.now += 29.9
    assert not cb.allow("m")
    clock.now += 0.2
    assert cb.state("m") == "half_open"
    assert cb.allow("m")
    assert not cb.allow("m") and not cb.allow("m")
    cb.record_success("m")
    assert cb.state("m") == "closed" and cb.allow("m")
    assert changes == [("m", "closed", "open"), ("m", "open", "half_open"), ("m", "half_open", "closed")]


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    cb, clock, _ = breaker(failure_threshold=1, cooldown_s=30)
    cb.record_failure("m")
    clock.now += 31
    assert cb.allow("m")
    cb.record_failure("m")
    assert cb.state("m") == "open"
    clock.now += 29
    assert not cb.allow("m")
    clock.now += 2
    assert cb.allow("m")


def test_lost_probe_is_replaced_after_probe_timeout() -> None:
    cb, clock, _ = breaker(failure_threshold=1, cooldown_s=30, probe_timeout_s=5)
    cb.record_failure("m")
    clock.now += 31
    assert cb.allow("m")
    clock.now += 4
    assert not cb.allow("m")
    clock.now += 2
    assert cb.allow("m")


def test_failures_while_open_do_not_extend_the_cooldown() -> None:
    cb, clock, _ = breaker(failure_threshold=1, cooldown_s=30)
    cb.record_failure("m")
    clock.now += 20
    cb.record_failure("m")  # a call that started before the circuit opened
    clock.now += 11
    assert cb.allow("m")


def test_closed_healthy_models_leave_no_record() -> None:
    store = InMemoryStore()
    cb = CircuitBreaker(store=store, failure_threshold=2)
    cb.record_success("m")
    assert store.get("m") is None
    cb.record_failure("m")
    assert json.loads(store.get("m") or "{}")["failures"] == 1
    cb.record_success("m")
    assert store.get("m") is None


def test_unreadable_record_is_treated_as_closed() -> None:
    store = InMemoryStore()
    store.update("m", lambda raw: ("not json", None), ttl_s=1)
    cb = CircuitBreaker(store=store)
    assert cb.allow("m") and cb.state("m") == "closed"


def test_reset_clears_every_circuit() -> None:
    cb, _, _ = breaker(failure_threshold=1)
    cb.record_failure("a")
    cb.record_failure("b")
    cb.reset()
    assert cb.state("a") == cb.state("b") == "closed"


def test_threads_get_one_probe_and_lose_no_failures() -> None:
    cb, clock, _ = breaker(failure_threshold=400, cooldown_s=5)
    barrier = threading.Barrier(8)

    def fail() -> None:
        barrier.wait()
        for _ in range(50):
            cb.record_failure("m")

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert cb.state("m") == "open"  # exactly 400 failures were needed

    clock.now += 6
    granted: list[bool] = []
    barrier2 = threading.Barrier(8)

    def probe() -> None:
        barrier2.wait()
        granted.append(cb.allow("m"))

    threads = [threading.Thread(target=probe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(granted) == [False] * 7 + [True]


@pytest.mark.parametrize("kw", [{"failure_threshold": 0}, {"window_s": 0}, {"cooldown_s": -1}])
def test_bad_parameters_are_config_errors(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        CircuitBreaker(**kw)  # type: ignore[arg-type]


class BrokenStore:
    """A store whose backend is down."""

    def get(self, key: str) -> str | None:
        raise ConnectionError("store down")

    def update(self, key: str, fn: object, *, ttl_s: float) -> object:
        raise ConnectionError("store down")

    def clear(self) -> None:
        raise ConnectionError("store down")


def test_unreachable_store_fails_open_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    cb = CircuitBreaker(store=BrokenStore(), failure_threshold=1)
    with caplog.at_level("WARNING", logger="routed_llm.circuit"):
        for _ in range(3):
            cb.record_failure("m")
            assert cb.allow("m")
            cb.record_success("m")
            assert cb.state("m") == "closed"
    warnings = [r for r in caplog.records if "fail open" in r.getMessage()]
    assert len(warnings) == 1 and "ConnectionError" in warnings[0].getMessage()
