"""Circuit breaker: failing models cool down so later requests skip them without a timeout.

Per model, a small state machine::

    closed --(failure_threshold consecutive failures within window_s)--> open
    open   --(cooldown_s elapsed; the next request is the probe)-------> half_open
    half_open --(probe succeeds)--> closed      half_open --(probe fails)--> open
    half_open --(probe silent for probe_timeout_s)--> a new probe is allowed

The transitions are pure functions of a small JSON record; a `CircuitStore` applies them
atomically. `InMemoryStore` (the default) keeps the records in this process; `RedisStore`
keeps them in Redis (``WATCH``/``MULTI`` transactions, keys under a prefix with a TTL) so
several processes, such as LiteLLM proxy replicas, share one view of which model is down.

Example:
    >>> t = [0.0]
    >>> cb = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=lambda: t[0])
    >>> cb.record_failure("m"); cb.record_failure("m"); cb.state("m")
    'open'
    >>> cb.allow("m")
    False
    >>> t[0] = 11.0
    >>> cb.allow("m"), cb.allow("m"), cb.state("m")   # one probe only
    (True, False, 'half_open')
    >>> cb.record_success("m"); cb.state("m")
    'closed'
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["CircuitBreaker", "CircuitState", "CircuitStore", "InMemoryStore", "RedisStore"]

CircuitState = Literal["closed", "open", "half_open"]
T = TypeVar("T")
# A store update function: old raw record (or None) -> (new raw record, or None to delete,
# or KEEP to leave it untouched; value to return to the caller)
Update = Callable[[str | None], tuple[Any, T]]
KEEP: Any = object()
_UNREACHABLE: Any = object()
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Record:
    state: CircuitState = "closed"
    failures: int = 0
    first_failure_at: float = 0.0
    opened_at: float = 0.0
    probe_at: float = 0.0

    @classmethod
    def parse(cls, raw: str | None) -> _Record:
        if not raw:
            return cls()
        try:
            return cls(**json.loads(raw))
        except (TypeError, ValueError):
            return cls()  # unreadable state is treated as healthy rather than as an outage

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _Config:
    failure_threshold: int
    window_s: float
    cooldown_s: float
    probe_timeout_s: float


# ---- pure transitions ------------------------------------------------------------------------


def _allow(rec: _Record, now: float, cfg: _Config) -> tuple[_Record | None, bool]:
    """(changed record or None, may this caller call the model)."""
    if rec.state == "closed":
        return None, True
    if rec.state == "open":
        if now - rec.opened_at < cfg.cooldown_s:
            return None, False
        return replace(rec, state="half_open", probe_at=now), True
    if now - rec.probe_at >= cfg.probe_timeout_s:  # the probe never reported back
        return replace(rec, probe_at=now), True
    return None, False


def _failure(rec: _Record, now: float, cfg: _Config) -> _Record:
    if rec.state == "half_open":
        return _Record(state="open", opened_at=now)
    if rec.state == "open":
        return rec
    fresh = rec.failures == 0 or now - rec.first_failure_at > cfg.window_s
    failures = 1 if fresh else rec.failures + 1
    first = now if fresh else rec.first_failure_at
    if failures >= cfg.failure_threshold:
        return _Record(state="open", opened_at=now)
    return _Record(state="closed", failures=failures, first_failure_at=first)


def _effective_state(rec: _Record, now: float, cfg: _Config) -> CircuitState:
    if rec.state == "open" and now - rec.opened_at >= cfg.cooldown_s:
        return "half_open"  # the next allow() becomes the probe
    return rec.state


# ---- stores ----------------------------------------------------------------------------------


class CircuitStore(Protocol):
    """Where circuit records live; `update` must be atomic across every user of the store."""

    def get(self, key: str) -> str | None:
        """The raw record for `key`, or None."""
        ...

    def update(self, key: str, fn: Update[T], *, ttl_s: float) -> T:
        """Atomically apply `fn` to the record of `key`; return `fn`'s value."""
        ...

    def clear(self) -> None:
        """Forget every record of this store."""
        ...


class InMemoryStore:
    """Process-local records behind a lock (the default store)."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        """The raw record for `key`, or None."""
        return self._data.get(key)

    def update(self, key: str, fn: Update[T], *, ttl_s: float) -> T:
        """Atomically apply `fn` to the record of `key`."""
        with self._lock:
            new, value = fn(self._data.get(key))
            if new is None:
                self._data.pop(key, None)
            elif new is not KEEP:
                self._data[key] = new
            return value

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._data.clear()


class RedisStore:
    """Records in Redis, shared by every process that uses the same server and prefix.

    Args:
        client: A ``redis.Redis`` client (its connection pool is thread-safe).
        url: Used when `client` is None, e.g. ``"redis://127.0.0.1:6379/0"``.
        prefix: Key prefix (one namespace per deployment of routed-llm).
        max_conflicts: Optimistic-transaction retries before giving up on one update.
        timeout_s: Socket connect/read timeout of the client built from `url`, so a hung
            Redis cannot stall requests (the breaker then fails open).

    Each record is one string key ``<prefix><model>`` holding JSON, written in a
    ``WATCH``/``MULTI`` transaction and given a TTL so abandoned state disappears.
    """

    def __init__(
        self,
        client: Redis | None = None,
        *,
        url: str | None = None,
        prefix: str = "routed-llm:circuit:",
        max_conflicts: int = 64,
        timeout_s: float = 0.5,
    ) -> None:
        if client is None:
            if url is None:
                msg = "RedisStore needs a client or a url such as 'redis://127.0.0.1:6379/0'"
                raise ConfigError(msg)
            try:
                import redis
            except ImportError as exc:
                msg = "RedisStore needs the redis package: pip install 'routed-llm[redis]' (or pip install redis)"
                raise ImportError(msg) from exc
            client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.client = client
        self.prefix = prefix
        self.max_conflicts = max_conflicts

    def get(self, key: str) -> str | None:
        """The raw record for `key`, or None."""
        raw = self.client.get(self.prefix + key)
        return raw.decode() if isinstance(raw, bytes) else raw

    def update(self, key: str, fn: Update[T], *, ttl_s: float) -> T:
        """Apply `fn` in a WATCH/MULTI transaction, retrying on concurrent writes."""
        from redis.exceptions import WatchError

        full = self.prefix + key
        with self.client.pipeline() as pipe:
            for _ in range(self.max_conflicts):
                try:
                    pipe.watch(full)  # type: ignore[no-untyped-call]
                    raw = pipe.get(full)
                    new, value = fn(raw.decode() if isinstance(raw, bytes) else raw)
                    if new is KEEP:
                        pipe.unwatch()
                        return value
                    pipe.multi()
                    if new is None:
                        pipe.delete(full)
                    else:
                        pipe.set(full, new, px=max(1, int(ttl_s * 1000)))
                    pipe.execute()
                    return value
                except WatchError:
                    continue
        msg = f"RedisStore: {self.max_conflicts} concurrent-write conflicts on {full!r}; raise max_conflicts"
        raise RuntimeError(msg)

    def clear(self) -> None:
        """Delete every key under this store's prefix."""
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=500))
        if keys:
            self.client.delete(*keys)


# ---- the breaker -----------------------------------------------------------------------------


class CircuitBreaker:
    """Skips models that keep failing, then probes them again after a cooldown.

    Args:
        failure_threshold: Consecutive failures (within `window_s`) that open the circuit.
        window_s: Failures further apart than this do not add up.
        cooldown_s: How long an open circuit rejects calls before one probe is allowed.
        probe_timeout_s: A half-open probe that has not reported back after this long is
            presumed lost and another probe is allowed (default: `cooldown_s`).
        store: Where the state lives: `InMemoryStore()` (default) or `RedisStore(...)`.
        clock: Wall-clock seconds; shared stores need the processes' clocks in sync (NTP).
        on_change: Called as ``on_change(model, old_state, new_state)`` after each
            transition made by this process (logging, metrics).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        window_s: float = 60.0,
        cooldown_s: float = 30.0,
        probe_timeout_s: float | None = None,
        store: CircuitStore | None = None,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str, str, str], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or window_s <= 0 or cooldown_s < 0:
            msg = "CircuitBreaker: failure_threshold must be >= 1, window_s > 0 and cooldown_s >= 0"
            raise ConfigError(msg)
        probe = cooldown_s if probe_timeout_s is None else probe_timeout_s
        self.config = _Config(failure_threshold, float(window_s), float(cooldown_s), float(probe) or 1.0)
        self.store: CircuitStore = store if store is not None else InMemoryStore()
        self.clock = clock
        self.on_change = on_change
        self._ttl_s = self.config.window_s + self.config.cooldown_s + self.config.probe_timeout_s + 60.0
        self._last_store_warning = -math.inf

    def __repr__(self) -> str:
        c = self.config
        return (
            f"CircuitBreaker(failure_threshold={c.failure_threshold}, window_s={c.window_s}, "
            f"cooldown_s={c.cooldown_s}, store={type(self.store).__name__})"
        )

    def allow(self, model: str) -> bool:
        """May `model` be called now? In half-open state only the single probe gets True.

        When the store is unreachable (Redis down), every model is allowed (fail-open).
        """
        now = self.clock()
        raw = self._guarded(lambda: self.store.get(model), _UNREACHABLE)
        if raw is None or raw is _UNREACHABLE:
            return True
        changed, ok = _allow(_Record.parse(raw), now, self.config)
        if changed is None:
            return ok  # read-only decision: no write, no contention
        return self._guarded(lambda: self._update(model, lambda rec: _allow(rec, now, self.config)), True)

    def record_success(self, model: str) -> None:
        """A call to `model` succeeded: close its circuit."""
        if self._guarded(lambda: self.store.get(model), None) is None:
            return
        self._guarded(lambda: self._update(model, lambda rec: (_Record(), None)), None)

    def record_failure(self, model: str) -> None:
        """A call to `model` failed in a way that says something about its health."""
        now = self.clock()
        self._guarded(lambda: self._update(model, lambda rec: (_failure(rec, now, self.config), None)), None)

    def state(self, model: str) -> CircuitState:
        """The state of `model`'s circuit now (an expired open circuit reads ``"half_open"``).

        ``"closed"`` when the store is unreachable.
        """
        raw = self._guarded(lambda: self.store.get(model), None)
        return _effective_state(_Record.parse(raw), self.clock(), self.config)

    def _guarded(self, op: Callable[[], T], default: T) -> T:
        """Run a store operation; on a store failure log it (at most once a minute) and fail open."""
        try:
            return op()
        except Exception as exc:  # a broken store must never fail a request
            now = time.monotonic()
            if now - self._last_store_warning >= 60.0:
                self._last_store_warning = now
                _log.warning(
                    "circuit store %s failed (%s: %s); circuits fail open until it recovers",
                    type(self.store).__name__,
                    type(exc).__name__,
                    exc,
                )
            return default

    def reset(self) -> None:
        """Close every circuit of this breaker's store."""
        self.store.clear()

    def _update(self, model: str, step: Callable[[_Record], tuple[_Record | None, T]]) -> T:
        seen: list[CircuitState] = []

        def apply(raw: str | None) -> tuple[Any, T]:
            old = _Record.parse(raw)
            new, value = step(old)
            seen[:] = [old.state, new.state if new is not None else old.state]
            if new is None or new == old:
                return KEEP, value
            return (None if new == _Record() else new.dump()), value

        value = self.store.update(model, apply, ttl_s=self._ttl_s)
        if self.on_change is not None and seen and seen[0] != seen[1]:
            self.on_change(model, seen[0], seen[1])
        return value
