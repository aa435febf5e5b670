"""A real LiteLLM proxy process serving routed/smart, called with the openai client.

The proxy runs the shipped ``integrations/litellm_proxy/{config.yaml,routes.yaml}`` with the
local server's address substituted for ``http://127.0.0.1:8099/v1``: three profiled models
(default router, MiniLM embeddings) plus a ``backup`` deployment that LiteLLM's own router
falls back to when routed/smart cannot answer. The test prompts are embedded in this process
first, so the proxy finds them in the shared on-disk embedding cache and never loads torch.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from routed_llm.testing import LocalOpenAIServer

pytestmark = pytest.mark.slow

RECIPE = Path(__file__).resolve().parents[2] / "integrations" / "litellm_proxy"
SHIPPED_BASE = "http://127.0.0.1:8099/v1"
CANDIDATES = {
    "gpt-4o-2024-05-13": "local-gpt-4o",
    "deepseek/deepseek-chat": "local-deepseek-chat",
    "gemini-3.1-pro-preview": "local-gemini-pro",
}
PROMPTS = {
    "plain": "What is the derivative of x squared with respect to x?",
    "stream": "Write a haiku about the sea.",
    "tools": "What is the weather in 'Paris' today?",
    "fallback": "Name the capital of France.",
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
STARTUP_TIMEOUT_S = 300.0  # the proxy takes 10-60 s to start on a loaded 2-core machine


@dataclass
class Proxy:
    base_url: str
    key: str
    server: LocalOpenAIServer
    log: Path

    def client(self):  # type: ignore[no-untyped-def]
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key=self.key, max_retries=0, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _localised(name: str, base_url: str, out_dir: Path) -> Path:
    text = (RECIPE / name).read_text(encoding="utf-8")
    assert SHIPPED_BASE in text, f"{name} no longer points at {SHIPPED_BASE}"
    path = out_dir / name
    path.write_text(text.replace(SHIPPED_BASE, base_url), encoding="utf-8")
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    litellm_cli = Path(sys.executable).parent / "litellm"
    if not litellm_cli.exists():
        pytest.skip("the litellm CLI is missing: pip install 'routed-llm[proxy]'")
    from routed_llm.embeddings import get_embedder

    get_embedder("minilm").embed(list(PROMPTS.values()))  # warm the shared disk cache for the proxy
    work = tmp_path_factory.mktemp("proxy")
    with LocalOpenAIServer() as server:
        config = _localised("config.yaml", server.base_url, work)
        routes = _localised("routes.yaml", server.base_url, work)
        port, key = _free_port(), "sk-" + secrets.token_hex(32)
        env = {
            **os.environ,
            "LITELLM_MASTER_KEY": key,
            "ROUTED_LLM_CONFIG": str(routes),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONUNBUFFERED": "1",
        }
        log = work / "proxy.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(litellm_cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                cwd=work,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _alive(f"http://127.0.0.1:{port}/health/liveliness"):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-3000:]
                    pytest.fail(f"the LiteLLM proxy did not start (exit code {process.poll()}):\n{tail}")
                time.sleep(0.5)
            yield Proxy(base_url=f"http://127.0.0.1:{port}/v1", key=key, server=server, log=log)
        finally:
            _stop(process)


def _user(key: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPTS[key]}]


def test_plain_completion_reports_served_model_and_cost(proxy: Proxy) -> None:
    raw = proxy.client().chat.completions.with_raw_response.create(model="smart", messages=_user("plain"))
    response = raw.parse()
    served = raw.headers["llm_provider-x-routed-llm-model"]
    assert served in CANDIDATES
    assert response.choices[0].message.content.startswith(f"[{CANDIDATES[served]}]")
    summary = response.choices[0].message.model_extra["provider_specific_fields"]["routed_llm"]
    assert summary["model_name"] == served and summary["config"] == "smart"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    cost = float(raw.headers["x-litellm-response-cost"])
    assert cost > 0
    assert cost == pytest.approx(float(raw.headers["llm_provider-x-routed-llm-cost"]), rel=1e-6)
    assert cost == pytest.approx(summary["cost_usd"])


def test_streaming(proxy: Proxy) -> None:
    chunks = list(
        proxy.client().chat.completions.create(
            model="smart", messages=_user("stream"), stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    summaries = [
        c.choices[0].delta.model_extra["provider_specific_fields"]["routed_llm"]
        for c in chunks
        if c.choices and (c.choices[0].delta.model_extra or {}).get("provider_specific_fields")
    ]
    assert len(summaries) == 1
    served = summaries[0]["model_name"]
    assert text.startswith(f"[{CANDIDATES[served]}]") and "haiku" in text
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens > 0
    assert summaries[0]["cost_usd"] > 0


def test_tool_calls(proxy: Proxy) -> None:
    raw = proxy.client().chat.completions.with_raw_response.create(
        model="smart", messages=_user("tools"), tools=TOOLS, tool_choice="required"
    )
    response = raw.parse()
    call = response.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert response.choices[0].finish_reason == "tool_calls"
    assert raw.headers["llm_provider-x-routed-llm-model"] in CANDIDATES


def test_litellm_router_falls_back_around_the_routed_model(proxy: Proxy) -> None:
    for deployed in CANDIDATES.values():
        proxy.server.set_down(deployed)
    try:
        raw = proxy.client().chat.completions.with_raw_response.create(model="smart", messages=_user("fallback"))
        tried = {d: proxy.server.count(d) for d in CANDIDATES.values()}
    finally:
        proxy.server.reset()
    response = raw.parse()
    assert response.choices[0].message.content.startswith("[local-backup]")
    assert raw.headers.get("x-litellm-attempted-fallbacks") == "1"
    assert "llm_provider-x-routed-llm-model" not in raw.headers
    assert all(n >= 1 for n in tried.values()), tried  # routed/smart tried each of its candidates first


def test_litellm_router_falls_back_around_a_routed_stream(proxy: Proxy) -> None:
    for deployed in CANDIDATES.values():
        proxy.server.set_down(deployed)
    try:
        chunks = list(proxy.client().chat.completions.create(model="smart", messages=_user("fallback"), stream=True))
    finally:
        proxy.server.reset()
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("[local-backup]")
