"""Capability gating: which candidates can serve this request at all (pure).

Gating runs before the router scores anything, so a model that cannot take the request is
never chosen and never tried by fallback:

========================  ==================================================
the request has           a candidate is excluded when
========================  ==================================================
``tools``                 ``supports_function_calling`` is false
an image part             ``supports_vision`` is false
``response_format``       ``supports_response_schema`` is false
json_schema
~N prompt tokens          N > ``max_input_tokens``
``max_tokens=M``          M > ``max_output_tokens``
========================  ==================================================

Capabilities are LiteLLM's (``litellm.get_model_info``) overridden per deployment by its
``model_info``. A capability that is unknown (a model LiteLLM has no entry for and no
override) does not exclude the model. Prompt tokens are estimated as ``ceil(chars / 4)``
over all message text and tool schemas, plus 85 per image.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .deployments import Capabilities
from .errors import RoutingError

__all__ = ["IMAGE_TOKENS", "RequestNeeds", "exclusion_reason", "gate", "needs_of", "require_eligible"]

IMAGE_TOKENS = 85
"""Tokens counted per image part in the prompt estimate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestNeeds:
    """What a request demands of the model that serves it.

    Attributes:
        tools: Tools are bound.
        images: A message holds an image part.
        structured: ``response_format`` asks for a JSON schema.
        prompt_tokens: Estimated prompt tokens.
        max_tokens: The requested completion limit, if any.
    """

    tools: bool = False
    images: bool = False
    structured: bool = False
    prompt_tokens: int = 0
    max_tokens: int | None = None


def needs_of(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> RequestNeeds:
    """The `RequestNeeds` of OpenAI-format `messages` sent with LiteLLM `params`."""
    chars = 0
    images = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") in ("image_url", "image", "input_image"):
                    images += 1
                elif isinstance(part, Mapping):
                    chars += len(str(part.get("text") or ""))
        for call in message.get("tool_calls") or ():
            chars += len(json.dumps(call, default=str))
    tools = params.get("tools") or ()
    chars += sum(len(json.dumps(t, default=str)) for t in tools)
    fmt = params.get("response_format")
    structured = isinstance(fmt, Mapping) and fmt.get("type") == "json_schema"
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    return RequestNeeds(
        tools=bool(tools) and params.get("tool_choice") != "none",
        images=images > 0,
        structured=structured,
        prompt_tokens=math.ceil(chars / 4) + IMAGE_TOKENS * images,
        max_tokens=int(max_tokens) if isinstance(max_tokens, int | float) else None,
    )


def exclusion_reason(needs: RequestNeeds, caps: Capabilities) -> str | None:
    """Why `caps` cannot serve `needs`, or None when it can."""
    if needs.tools and caps.function_calling is False:
        return "does not support tool calling (supports_function_calling is false)"
    if needs.images and caps.vision is False:
        return "does not accept images (supports_vision is false)"
    if needs.structured and caps.response_schema is False:
        return "does not support json_schema structured output (supports_response_schema is false)"
    if caps.max_input_tokens is not None and needs.prompt_tokens > caps.max_input_tokens:
        window = caps.max_input_tokens
        return f"prompt of ~{needs.prompt_tokens} tokens exceeds its context window (max_input_tokens={window})"
    if (
        needs.max_tokens is not None
        and caps.max_output_tokens is not None
        and needs.max_tokens > caps.max_output_tokens
    ):
        return f"max_tokens={needs.max_tokens} exceeds its max_output_tokens={caps.max_output_tokens}"
    return None


def gate(needs: RequestNeeds, candidates: Mapping[str, Capabilities]) -> tuple[list[str], dict[str, str]]:
    """Split `candidates` (name -> capabilities) into eligible names and excluded ``{name: reason}``."""
    eligible: list[str] = []
    excluded: dict[str, str] = {}
    for name, caps in candidates.items():
        reason = exclusion_reason(needs, caps)
        if reason is None:
            eligible.append(name)
        else:
            excluded[name] = reason
    return eligible, excluded


def require_eligible(eligible: Iterable[str], excluded: Mapping[str, str]) -> list[str]:
    """`eligible` as a list, or a `RoutingError` listing every candidate and why it was excluded."""
    names = list(eligible)
    if names:
        return names
    lines = "; ".join(f"{name}: {reason}" for name, reason in excluded.items())
    msg = (
        f"no candidate can serve this request ({lines}). "
        "Add a capable model to model_list, or override the capability in its model_info if it is wrong."
    )
    raise RoutingError(msg, excluded=excluded)
