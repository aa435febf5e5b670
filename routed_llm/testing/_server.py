"""`LocalOpenAIServer`: lifecycle and configuration of the local OpenAI-compatible server."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from ._behavior import Behavior, Fault
from ._handler import HTTPServer
from ._state import ServerState

__all__ = ["LocalOpenAIServer"]


class LocalOpenAIServer:
    """A deterministic OpenAI-compatible chat server on 127.0.0.1 (API: `routed_llm.testing.server`).

    Example:
        >>> with LocalOpenAIServer() as server:
        ...     server.set_faults("flaky", [Fault.http(503)])
        ...     server.base_url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, models: Sequence[str] = (), verbose: bool = False):
        """Configure the server; nothing binds until `start`.

        Args:
            host: Interface to bind (keep the loopback default).
            port: TCP port; 0 picks a free one.
            models: Model names listed by GET /v1/models (any name is served anyway).
            verbose: Log requests and handler errors to stderr.
        """
        self._address = (host, port)
        self._verbose = verbose
        self._state = ServerState(models)
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalOpenAIServer:
        """Bind and serve in a daemon thread; return self. Starting twice is a no-op."""
        if self._httpd is None:
            self._httpd = HTTPServer(self._address, self._state, verbose=self._verbose)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"LocalOpenAIServer:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hanging requests and close every connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            msg = "the server is not running; call start() first"
            raise RuntimeError(msg)
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. "http://127.0.0.1:40123/v1"."""
        return f"http://{self._address[0]}:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of received chat requests (credential headers redacted)."""
        return self._state.snapshot()

    def reset(self) -> None:
        """Forget behaviours, faults, down flags, counters and recorded requests."""
        self._state.reset()

    def set_behavior(self, model: str, behavior: Behavior | None) -> None:
        """Set how `model` answers; None restores the default behaviour."""
        self._state.set_behavior(model, behavior)

    def set_faults(self, model: str, faults: Iterable[Fault | str | int]) -> None:
        """Replace the fault queue of `model`; each request consumes one fault."""
        self._state.set_faults(model, faults)

    def set_fault_rate(
        self, model: str, rate: float, kinds: Sequence[Fault | str | int] = (500,), *, seed: int = 0
    ) -> None:
        """Fail a random share `rate` of `model`'s requests with a fault drawn from `kinds`."""
        self._state.set_fault_rate(model, rate, kinds, seed)

    def set_down(self, model: str, down: bool = True) -> None:
        """Make every request to `model` fail with 503 (or, with False, recover)."""
        self._state.set_down(model, down)

    def count(self, model: str | None = None) -> int:
        """Return the number of chat requests received for `model` (None: all models)."""
        return self._state.count(model)
