"""Shared pytest fixtures for routed-llm."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before anything imports litellm

from collections.abc import Iterator

import pytest

from routed_llm.testing.server import LocalOpenAIServer


@pytest.fixture(scope="session")
def openai_server() -> Iterator[LocalOpenAIServer]:
    """One local OpenAI-compatible server for the whole session (call `.reset()` or use unique model names)."""
    with LocalOpenAIServer() as server:
        yield server


@pytest.fixture
def fresh_openai_server(openai_server: LocalOpenAIServer) -> Iterator[LocalOpenAIServer]:
    """The session server, reset before and after the test."""
    openai_server.reset()
    yield openai_server
    openai_server.reset()


# --------------------------------------------------------------------------- chat model fixtures
# A small routing problem with two profiled models whose prices LiteLLM knows: gpt-4o-mini is
# good at writing and bad at maths, claude-haiku-4-5 the other way round; gpt-4.1-nano is
# mediocre at both and the cheapest.

ROUTED_MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-nano")
_TOPICS = {
    "math": [
        "solve the equation",
        "integrate the function",
        "prove the theorem",
        "compute the derivative",
        "factor the polynomial",
        "find the prime factors",
        "sum the series",
        "calculate the probability",
    ],
    "writing": [
        "write a poem",
        "draft an email",
        "compose a short story",
        "write a haiku",
        "summarise the essay",
        "rewrite the paragraph",
        "write a limerick",
        "draft a cover letter",
    ],
}
_SKILL = {
    "gpt-4o-mini": {"math": 0.2, "writing": 0.9},
    "claude-haiku-4-5": {"math": 0.9, "writing": 0.3},
    "gpt-4.1-nano": {"math": 0.5, "writing": 0.5},
}


class HashEmbedder:
    """Deterministic bag-of-words hashing embedder (unit tests only; no model download)."""

    id = "test:hash-bow-64"

    def embed(self, texts):  # type: ignore[no-untyped-def]
        import hashlib

        import numpy as np

        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


def routing_dataset():  # type: ignore[no-untyped-def]
    """48 prompts x 3 models with deterministic 0/1 outcomes."""
    from routed_llm import RoutingDataset

    prompts, outcomes = [], []
    for task, stems in _TOPICS.items():
        for j, stem in enumerate(stems):
            for k, obj in enumerate(("about cats", "for my class", "in detail")):
                pid = f"{task}-{j}-{k}"
                prompts.append({"prompt_id": pid, "task": task, "prompt": f"{stem} {obj}"})
                for model, skill in _SKILL.items():
                    score = 1.0 if ((j * 3 + k) % 10) / 10 < skill[task] else 0.0
                    outcomes.append({"prompt_id": pid, "model": model, "score": score, "output_chars": 400})
    models = [
        {"model": "gpt-4o-mini", "price_in_per_1m": 0.15, "price_out_per_1m": 0.6},
        {"model": "claude-haiku-4-5", "price_in_per_1m": 1.0, "price_out_per_1m": 5.0},
        {"model": "gpt-4.1-nano", "price_in_per_1m": 0.1, "price_out_per_1m": 0.4},
    ]
    return RoutingDataset.from_records(name="routed-test", prompts=prompts, outcomes=outcomes, models=models)


@pytest.fixture(scope="session")
def hash_router():  # type: ignore[no-untyped-def]
    """A fitted knn router over `routing_dataset` with the hashing embedder (fast, offline)."""
    from routed_llm.routers import make_router

    data = routing_dataset()
    probes = [p for p in data.prompt_ids if not p.endswith("-2")]
    return make_router("knn", k=3, embedder=HashEmbedder()).fit(data, probe_ids=probes)


@pytest.fixture(scope="session")
def minilm_router():  # type: ignore[no-untyped-def]
    """The same router with the real MiniLM embedder (integration tests)."""
    from routed_llm.embeddings import get_embedder
    from routed_llm.routers import make_router

    data = routing_dataset()
    probes = [p for p in data.prompt_ids if not p.endswith("-2")]
    return make_router("knn", k=3, embedder=get_embedder("minilm")).fit(data, probe_ids=probes)


def local_model_list(base_url: str, names=ROUTED_MODELS, key: str = "sk-test"):  # type: ignore[no-untyped-def]
    """Deployments of the profiled `names` served by the local server as openai/fake-<name>."""
    return [
        {"model_name": n, "litellm_params": {"model": f"openai/fake-{n}", "api_base": base_url, "api_key": key}}
        for n in names
    ]


@pytest.fixture
def routed_model_list(fresh_openai_server: LocalOpenAIServer):  # type: ignore[no-untyped-def]
    """`local_model_list` on the (reset) session server."""
    return local_model_list(fresh_openai_server.base_url)


@pytest.fixture(scope="session")
def make_model_list(openai_server: LocalOpenAIServer):  # type: ignore[no-untyped-def]
    """Factory: ``make_model_list(names=..., key=...)`` -> `local_model_list` on the session server."""

    def make(names=ROUTED_MODELS, key: str = "sk-test"):  # type: ignore[no-untyped-def]
        return local_model_list(openai_server.base_url, names, key)

    return make
