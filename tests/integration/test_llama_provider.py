"""A real local LLM through the LiteLLM provider: ``litellm.completion(model="routed/local")``.

SmolLM2-135M answers on llama.cpp's OpenAI-compatible server next to a perfect but expensive
"strong" model on the package's local server, and real prompts are routed through the
provider: with a high cost weight SmolLM2 generates the answer (sync, async and streamed),
at cost weight 0 the strong model does. Both join a copy of the default router through
`Router.add_model` with constructed profiles (SmolLM2: free and weak); profiling SmolLM2 for
real with `routed-llm profile` is tests/integration/test_llama_profile.py's job, and
profiling it again here would only add minutes.

Opt-in: needs `bash .ci/llama.sh .venv` and is skipped with the reason otherwise
(`-m llama` selects it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from routed_llm.routers import Router
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


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    with LlamaServer() as server:
        yield server


@pytest.fixture(scope="module")
def router() -> Router:
    """The default router plus SmolLM2 (free, weak) and 'strong' (perfect, expensive)."""
    from routed_llm.default import default_router

    router = default_router()
    ids = tuple(router.probe_ids_)
    return router.add_models(
        [
            ModelProfile(model=MODEL_ALIAS, probe_ids=ids, scores=np.full(len(ids), 0.3), expected_cost=0.0),
            ModelProfile(model="strong", probe_ids=ids, scores=np.ones(len(ids)), expected_cost=0.01),
        ]
    )


@pytest.fixture
def routed(router: Router, llama: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalOpenAIServer]:
    import litellm

    import routed_llm.litellm_provider as lp

    monkeypatch.setattr(litellm, "custom_provider_map", [])
    monkeypatch.setattr(lp, "handler", lp.RoutedProvider())
    with LocalOpenAIServer() as fake:
        lp.register(
            name="local",
            config={
                "router": router,
                "fallback": {"retries_per_model": 0},
                "candidates": [
                    {"model_name": MODEL_ALIAS,
                     "litellm_params": {"model": f"openai/{MODEL_ALIAS}", "api_base": llama.base_url,
                                        "api_key": "none"}},
                    {"model_name": "strong",
                     "litellm_params": {"model": "openai/strong", "api_base": fake.base_url, "api_key": "none"}},
                ],
            },
        )  # fmt: skip
        yield fake


def _ask(**kwargs: Any) -> Any:
    import litellm

    return litellm.completion(model="routed/local", messages=[{"role": "user", "content": PROMPT}], max_tokens=16,
                              temperature=0, **kwargs)  # fmt: skip


def test_cheap_requests_are_served_by_the_real_local_llm(routed: LocalOpenAIServer) -> None:
    response = _ask(cost_weight=10.0)
    assert response.model == MODEL_ALIAS, response._hidden_params["routing"]
    text = response.choices[0].message.content
    assert isinstance(text, str) and text.strip() and not text.startswith("[")  # real generation, not the fake server
    assert response.usage.completion_tokens > 0
    assert response._hidden_params["routing"]["attempts"][0]["model"] == MODEL_ALIAS
    assert routed.count("strong") == 0


def test_streamed_from_the_real_local_llm(routed: LocalOpenAIServer) -> None:
    chunks = list(_ask(cost_weight=10.0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and not text.startswith("[")
    served = {c.model for c in chunks if c.choices and c.choices[0].delta.content}
    assert served == {MODEL_ALIAS}
    assert any(getattr(c, "usage", None) is not None and c.usage.completion_tokens > 0 for c in chunks)


async def test_async_from_the_real_local_llm(routed: LocalOpenAIServer) -> None:
    import litellm

    response = await litellm.acompletion(model="routed/local", messages=[{"role": "user", "content": PROMPT}],
                                         max_tokens=16, temperature=0, cost_weight=10.0)  # fmt: skip
    assert response.model == MODEL_ALIAS and response.choices[0].message.content.strip()


def test_quality_first_goes_to_the_strong_model(routed: LocalOpenAIServer) -> None:
    response = _ask(cost_weight=0.0)
    assert response.model == "strong"
    assert response.choices[0].message.content.startswith("[strong]")
