"""The chat part of ``routed-llm demo``: route example prompts through `RoutedChatModel`.

With provider keys in the environment the default router's models that those keys can
reach are called for real; otherwise every default model is deployed on the package's
local OpenAI-compatible server (started here), so the demo runs offline and without keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EXAMPLE_PROMPTS", "ChatDemoRow", "run_chat_demo"]

EXAMPLE_PROMPTS = (
    "What is 17 multiplied by 23? Answer with the number only.",
    "A contract is signed by a 16-year-old. Under common law, is it void, voidable or valid?",
    "Explain in one sentence why the sky is blue.",
    "Write a Python one-liner that reverses a string s.",
    "Which enzyme unwinds the DNA double helix during replication?",
)


@dataclass(frozen=True, slots=True)
class ChatDemoRow:
    """One demo call: what was asked, who answered, why, and what it cost."""

    prompt: str
    model: str
    reason: str
    cost_usd: float | None
    answer: str


def _deployments(real: Sequence[str], models: Sequence[str], base_url: str | None) -> list[dict[str, Any]]:
    if real:
        return [{"model_name": m, "litellm_params": {"model": m}} for m in real]
    return [
        {"model_name": m, "litellm_params": {"model": f"openai/local-{i}", "api_base": base_url, "api_key": "sk-local"}}
        for i, m in enumerate(models)
    ]


def run_chat_demo(
    prompts: Sequence[str] = EXAMPLE_PROMPTS, *, cost_weight: float = 0.3
) -> tuple[str, list[ChatDemoRow]]:
    """Send `prompts` through `RoutedChatModel`; returns ("real" or "local", rows)."""
    from . import transport
    from .chat_model import RoutedChatModel
    from .default import default_router
    from .testing import LocalOpenAIServer

    router = default_router()
    real = [m for m in router.models_ if transport.has_credentials(m)]
    server = None if real else LocalOpenAIServer().start()
    try:
        llm = RoutedChatModel(
            model_list=_deployments(real, router.models_, server.base_url if server else None),
            router=router.restrict(real) if real else router,
            cost_weight=cost_weight,
            max_tokens=200,
        )
        rows = []
        for prompt in prompts:
            reply = llm.invoke(prompt)
            meta = reply.response_metadata
            rows.append(
                ChatDemoRow(
                    prompt=prompt,
                    model=meta["model_name"],
                    reason=meta["routing"]["reason"],
                    cost_usd=meta["routing"].get("cost_usd"),
                    answer=str(reply.content),
                )
            )
        return ("real" if real else "local"), rows
    finally:
        if server is not None:
            server.stop()
