"""Thread-safe mutable state of the local server: behaviours, faults, counters, log."""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._behavior import Behavior, Fault

__all__ = ["ServerState", "redact_headers"]

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"})
REDACTED = "<redacted>"


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the headers as a dict with every credential-bearing value replaced."""
    return {name: (REDACTED if name.lower() in _SECRET_HEADERS else value) for name, value in headers}


class ServerState:
    """Everything the request handlers share, guarded by one lock."""

    def __init__(self, models: Sequence[str] = ()) -> None:
        """Start empty; `models` are listed by GET /v1/models."""
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.models: list[str] = list(models)
        self._clear()

    def _clear(self) -> None:
        """Forget every per-test setting and record (caller holds the lock or is __init__)."""
        self.behaviors: dict[str, Behavior] = {}
        self.faults: dict[str, deque[Fault]] = {}
        self.rates: dict[str, tuple[float, list[Fault], random.Random]] = {}
        self.down: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Clear behaviours, faults, down flags, counters and the request log."""
        with self._lock:
            self._clear()

    def next_id(self) -> int:
        """Return a process-unique increasing integer (for response and tool-call ids)."""
        with self._lock:
            return next(self._ids)

    def set_behavior(self, model: str, behavior: Behavior | None) -> None:
        """Set (or with None, drop) the behaviour of `model`."""
        with self._lock:
            if behavior is None:
                self.behaviors.pop(model, None)
            else:
                self.behaviors[model] = behavior

    def behavior(self, model: str) -> Behavior:
        """Return the behaviour of `model` (the default one when unset)."""
        with self._lock:
            return self.behaviors.get(model) or Behavior()

    def set_faults(self, model: str, faults: Iterable[Fault | str | int]) -> None:
        """Replace the fault queue of `model`."""
        queue = deque(Fault.parse(f) for f in faults)
        with self._lock:
            self.faults[model] = queue

    def set_fault_rate(self, model: str, rate: float, kinds: Sequence[Fault | str | int], seed: int) -> None:
        """Fail a share `rate` of requests to `model` with a fault drawn from `kinds`."""
        if not 0.0 <= rate <= 1.0 or (rate > 0 and not kinds):
            msg = f"rate must be in [0, 1] with at least one kind, got rate={rate}, kinds={kinds!r}"
            raise ValueError(msg)
        parsed = [Fault.parse(k) for k in kinds]
        with self._lock:
            self.rates[model] = (rate, parsed, random.Random(seed))

    def set_down(self, model: str, down: bool) -> None:
        """Mark `model` down (every request gets 503) or up again."""
        with self._lock:
            (self.down.add if down else self.down.discard)(model)

    def record(self, entry: Mapping[str, Any]) -> None:
        """Append a request to the log and count it for its model."""
        with self._lock:
            self.log.append(dict(entry))
            self.counts[str(entry.get("model"))] += 1

    def take_fault(self, model: str) -> Fault | None:
        """Return the fault for this request: down, then the queue, then the random rate."""
        with self._lock:
            if model in self.down:
                return Fault.http(503, message=f"The model {model} is down (set_down).")
            queue = self.faults.get(model)
            if queue:
                return queue.popleft()
            if model in self.rates:
                rate, kinds, rng = self.rates[model]
                if rng.random() < rate:
                    return kinds[rng.randrange(len(kinds))]
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        """Return a copy of the request log."""
        with self._lock:
            return [dict(e) for e in self.log]

    def count(self, model: str | None) -> int:
        """Return how many chat requests `model` (None: any model) received."""
        with self._lock:
            return sum(self.counts.values()) if model is None else self.counts[model]

    def known_models(self) -> list[str]:
        """Return configured plus seen model names, in first-seen order."""
        with self._lock:
            return list(dict.fromkeys([*self.models, *self.behaviors, *self.counts]))
