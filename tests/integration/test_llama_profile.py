"""A real local LLM end to end: profile SmolLM2-135M (llama.cpp) and route real prompts to it.

1. `routed-llm profile --model openai/smollm2 --api-base <llama.cpp> --limit 60` (subprocess);
2. `routed-llm add-model default smollm2.json --out DIR` (free: price 0);
3. a second candidate, "strong", answers from the package's local OpenAI-compatible server
   and is added with a perfect, expensive profile;
4. `RoutedChatModel` over both, on the saved router: with a high cost weight the real
   SmolLM2 serves the prompt, at cost weight 0 the "strong" model does.

Opt-in: needs `bash .ci/llama.sh .venv` and is skipped with the reason otherwise
(`-m llama` selects it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from routed_llm.testing.llama import MODEL_ALIAS, LlamaServer, llama_unavailable_reason
from routed_llm.testing.server import LocalOpenAIServer
from routed_llm.types import ModelProfile

_REASON = llama_unavailable_reason()
pytestmark = [
    pytest.mark.llama,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(_REASON is not None, reason=f"llama.cpp server unavailable: {_REASON}"),
]

PROMPT = "What is the capital of France? Answer in one short sentence."
# 60 probes take 1-2 minutes on two free cores; a heavily loaded machine may lower this.
LIMIT = int(os.environ.get("ROUTED_LLM_LLAMA_PROFILE_LIMIT", "60"))


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    with LlamaServer() as server:
        yield server


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-m", "routed_llm", *args], capture_output=True, text=True,
                          timeout=1500, env=env, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def router_dir(llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the default router with SmolLM2 (profiled for real) and a perfect, expensive 'strong'."""
    tmp = tmp_path_factory.mktemp("llama-profile")
    out = tmp / "smollm2.json"
    res = _cli(
        "profile", "--model", f"openai/{MODEL_ALIAS}", "--api-base", llama.base_url, "--name", MODEL_ALIAS,
        "--limit", str(LIMIT), "--concurrency", "1", "--max-tokens", "24", "--timeout", "300",
        "--price-in", "0", "--price-out", "0", "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    profile = ModelProfile.load(out)
    assert profile.model == MODEL_ALIAS and len(profile.probe_ids) == LIMIT
    assert profile.meta["n_errors"] <= LIMIT // 5 and profile.expected_cost == 0.0
    assert profile.mean_output_tokens is not None and profile.mean_output_tokens > 0  # real generations

    router = tmp / "router"
    res = _cli("add-model", "default", str(out), "--out", str(router))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"added {MODEL_ALIAS}" in res.stdout

    from routed_llm.default import default_probe_set

    ids = tuple(p["prompt_id"] for p in default_probe_set())
    strong = ModelProfile(model="strong", probe_ids=ids, scores=np.ones(len(ids)), expected_cost=0.01)
    strong.save(tmp / "strong.json")
    res = _cli("add-model", str(router), str(tmp / "strong.json"))
    assert res.returncode == 0, res.stdout + res.stderr
    return router


def _chat(router_dir: Path, llama: LlamaServer, fake: LocalOpenAIServer, cost_weight: float) -> object:
    from routed_llm import RoutedChatModel

    return RoutedChatModel(
        router=str(router_dir),
        cost_weight=cost_weight,
        max_tokens=16,
        temperature=0,
        model_list=[
            {"model_name": MODEL_ALIAS,
             "litellm_params": {"model": f"openai/{MODEL_ALIAS}", "api_base": llama.base_url, "api_key": "none"}},
            {"model_name": "strong",
             "litellm_params": {"model": "openai/strong", "api_base": fake.base_url, "api_key": "none"}},
        ],
    )  # fmt: skip


def test_profiled_local_llm_serves_cheap_requests(
    router_dir: Path, llama: LlamaServer, openai_server: LocalOpenAIServer
) -> None:
    before = openai_server.count("strong")
    msg = _chat(router_dir, llama, openai_server, cost_weight=10.0).invoke(PROMPT)  # type: ignore[attr-defined]
    assert msg.response_metadata["model_name"] == MODEL_ALIAS, msg.response_metadata.get("routing")
    routing = msg.response_metadata["routing"]
    assert routing["ranking"][0] == MODEL_ALIAS
    assert [a["model"] for a in routing["attempts"]] == [MODEL_ALIAS]  # served first time, no fallback
    assert isinstance(msg.content, str) and msg.content.strip()
    assert not msg.content.startswith("[")  # not the fake server's "[model] Answer ..." text
    assert msg.usage_metadata and msg.usage_metadata["output_tokens"] > 0
    assert openai_server.count("strong") == before  # the other server was never asked


def test_quality_first_routes_to_the_stronger_model(
    router_dir: Path, llama: LlamaServer, openai_server: LocalOpenAIServer
) -> None:
    msg = _chat(router_dir, llama, openai_server, cost_weight=0.0).invoke(PROMPT)  # type: ignore[attr-defined]
    assert msg.response_metadata["model_name"] == "strong"
    assert msg.content.startswith("[strong]")
