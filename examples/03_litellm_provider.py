"""Demonstrates the LiteLLM custom provider: litellm.completion(model="routed/smart") picks the model per request.

Runs offline: the candidates are deployments of profiled models on the package's local
OpenAI-compatible server, reached through LiteLLM exactly as real providers would be.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from routed_llm.litellm_provider import register
from routed_llm.testing import LocalOpenAIServer

# Names the default router has profiles for (LiteLLM ids); each is served by the local server here.
CANDIDATES = ["gpt-4o-2024-05-13", "deepseek/deepseek-chat", "gemini-3.1-pro-preview"]
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def ask(text: str, **kwargs: Any) -> Any:
    """Send one user message to routed/smart."""
    return litellm.completion(model="routed/smart", messages=[{"role": "user", "content": text}], **kwargs)


with LocalOpenAIServer() as server:
    local = {"api_base": server.base_url, "api_key": "sk-local"}
    register(
        name="smart",
        config={  # explicit: importing routed_llm.litellm_provider registers nothing
            "candidates": [{"model_name": n, "litellm_params": {"model": f"openai/{n}", **local}} for n in CANDIDATES],
            "cost_weight": 1.0,
        },
    )

    for question in ["Prove that the sum of two odd integers is even.", "Which amendment abolished slavery in the US?"]:
        response = ask(question)
        cost, routing = response._hidden_params["response_cost"], response._hidden_params["routing"]
        print(f"Q: {question}\n   served by {response.model} for ${cost:.6f}: {routing['reason']}")

    # Streaming passes the served model's chunks through; the last content chunk carries the provenance.
    stream = ask("Write a haiku.", stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        fields = (chunk.choices[0].delta.provider_specific_fields or {}) if chunk.choices else {}
        if "routed_llm" in fields:
            print(f"stream served by {fields['routed_llm']['model_name']}")
        if getattr(chunk, "usage", None):
            print(f"stream usage: {chunk.usage.total_tokens} tokens, ${chunk.usage.cost:.6f}")

    # Tools and a per-request cost_weight pass through; only function-calling candidates stay eligible.
    response = ask("Weather in 'Paris'?", tools=[{"type": "function", "function": WEATHER}], cost_weight=100.0)
    call = response.choices[0].message.tool_calls[0]
    print(f"tool call by {response.model} (cost_weight=100): {call.function.name}({call.function.arguments})")
