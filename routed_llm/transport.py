"""The one place that talks to LiteLLM.

Every provider call made by routed-llm goes through `complete` / `acomplete` (and their
``stream=True`` forms). They import LiteLLM lazily, make sure the local price map is used
(no network at import), and turn LiteLLM's own retries off: exactly one layer retries, and
it is ours (`routed_llm.fallback`). Nothing here sets attributes on the `litellm` module.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping
from functools import cache
from types import ModuleType
from typing import Any

__all__ = ["acomplete", "complete", "cost_of", "has_credentials", "litellm_module", "model_info"]


@cache
def litellm_module() -> ModuleType:
    """Import LiteLLM with the bundled price map (no network fetch at import)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


def _params(model: str, messages: list[dict[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
    call: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    call["model"] = model
    call["messages"] = messages
    call["num_retries"] = 0  # exactly one layer retries: ours
    call["max_retries"] = 0  # and not the OpenAI SDK underneath either
    if call.pop("no_log", False):
        call["no-log"] = True  # the outer (provider) call logs; the inner one must not double-count
    return call


def complete(model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
    """``litellm.completion`` with our defaults; returns a ModelResponse or a stream wrapper.

    Args:
        model: LiteLLM model id (``"openai/gpt-4o-mini"``, ``"gemini/..."``).
        messages: OpenAI-format messages.
        **params: Any LiteLLM/OpenAI parameter (``api_base``, ``api_key``, ``timeout``,
            ``stream``, ``tools``, ``response_format``, ...); ``no_log=True`` suppresses
            LiteLLM's logging callbacks for this call.
    """
    return litellm_module().completion(**_params(model, messages, params))


async def acomplete(model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
    """Async `complete`."""
    return await litellm_module().acompletion(**_params(model, messages, params))


def model_info(model: str) -> dict[str, Any]:
    """LiteLLM's capability and price entry for `model`, or ``{}`` when it has none."""
    return dict(_model_info(model))


@cache
def _model_info(model: str) -> Mapping[str, Any]:
    # looked up once per model and process: get_model_info prints "Provider List ..." to
    # stdout for unknown ids, so stdout is redirected for that one call only
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            info = litellm_module().get_model_info(model)
    except Exception:
        return {}
    return dict(info) if info else {}


def cost_of(response: Any) -> float | None:
    """USD cost LiteLLM computed for a response, or None when it cannot price it."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is not None:
        return float(cost)
    try:
        return float(litellm_module().completion_cost(completion_response=response))
    except Exception:
        return None


_ENV_PREFIX = {"bedrock": "AWS_", "vertex_ai": "VERTEXAI_", "vertex_ai_beta": "VERTEXAI_", "fireworks_ai": "FIREWORKS"}


def has_credentials(model: str) -> bool:
    """Whether the environment holds the credentials LiteLLM needs to call `model`.

    LiteLLM's `validate_environment` says yes for providers whose keys it does not list, so
    a variable named after the provider (``OPENAI_*``, ``AWS_*`` for Bedrock, ...) must exist too.
    """
    litellm = litellm_module()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            provider = litellm.get_llm_provider(model)[1]
            check = litellm.validate_environment(model=model)
    except Exception:
        return False
    prefix = _ENV_PREFIX.get(provider, provider.upper() + "_")
    named = any(k.startswith(prefix) and v for k, v in os.environ.items())
    return bool(check.get("keys_in_environment")) and not check.get("missing_keys") and named
