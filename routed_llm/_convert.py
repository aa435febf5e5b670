"""LangChain <-> OpenAI-format conversion, and history sanitisation (all pure).

* `to_openai` turns LangChain messages into the OpenAI-format dicts LiteLLM takes, and
  returns beside them which model produced each assistant message (its
  ``response_metadata["model_name"]``): the engine needs that for tool-loop stickiness
  and for `sanitize`.
* `to_ai_message` / `to_ai_chunk` turn a LiteLLM ``ModelResponse`` / stream chunk into an
  `AIMessage` / `AIMessageChunk` (content, tool calls, reasoning, finish reason).
* `usage_metadata` maps an OpenAI ``usage`` onto LangChain's `UsageMetadata`.
* `sanitize` drops provider-bound items (reasoning signatures, encrypted reasoning,
  thinking blocks, ``provider_specific_fields``) from assistant turns that another model
  produced, so the next provider accepts the history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk

__all__ = [
    "PROVIDER_BOUND_BLOCKS",
    "PROVIDER_BOUND_KEYS",
    "last_user_text",
    "sanitize",
    "to_ai_chunk",
    "to_ai_message",
    "to_openai",
    "usage_metadata",
]

PROVIDER_BOUND_KEYS = ("reasoning_content", "thinking_blocks", "provider_specific_fields", "reasoning_details")
"""Assistant-message keys only the provider that produced them accepts back."""

PROVIDER_BOUND_BLOCKS = frozenset({"thinking", "redacted_thinking", "reasoning"})
"""Content-block types only the producing provider accepts back (signatures, encrypted reasoning)."""

_KEEP_KWARGS = ("reasoning_content", "thinking_blocks", "provider_specific_fields", "reasoning_details")


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


# --------------------------------------------------------------------------- LangChain -> OpenAI


def to_openai(messages: Sequence[BaseMessage]) -> tuple[list[dict[str, Any]], list[str | None]]:
    """OpenAI-format dicts for `messages`, and the model that produced each (None if not ours)."""
    out: list[dict[str, Any]] = []
    origins: list[str | None] = []
    for message in messages:
        converted = convert_to_openai_messages([message])
        dicts = converted if isinstance(converted, list) else [converted]
        origin = None
        if isinstance(message, AIMessage):
            origin = message.response_metadata.get("model_name") or None
            for d in dicts:
                _restore_reasoning(d, message)
        out.extend(dicts)
        origins.extend([origin] * len(dicts))
    return out, origins


def _restore_reasoning(d: dict[str, Any], message: AIMessage) -> None:
    """Carry the provider's own reasoning items back (dropped later by `sanitize` if needed)."""
    for key in _KEEP_KWARGS:
        value = message.additional_kwargs.get(key)
        if value:
            d[key] = value
    content = d.get("content")
    if isinstance(content, list):
        # LangChain's v1 "reasoning" blocks are not a provider format; reasoning travels as
        # reasoning_content / thinking_blocks above.
        d["content"] = [b for b in content if not (isinstance(b, Mapping) and b.get("type") == "reasoning")]


def sanitize(messages: Sequence[Mapping[str, Any]], origins: Sequence[str | None], target: str) -> list[dict[str, Any]]:
    """`messages` with provider-bound items removed from assistant turns another model produced.

    Args:
        messages: OpenAI-format history.
        origins: The model that produced each message (None: unknown, left as is).
        target: The model about to receive the history.
    """
    out: list[dict[str, Any]] = []
    for message, origin in zip(messages, origins, strict=True):
        if message.get("role") != "assistant" or origin is None or origin == target:
            out.append(dict(message))
            continue
        clean = {k: v for k, v in message.items() if k not in PROVIDER_BOUND_KEYS}
        content = clean.get("content")
        if isinstance(content, list):
            kept = [b for b in content if not (isinstance(b, Mapping) and b.get("type") in PROVIDER_BOUND_BLOCKS)]
            clean["content"] = kept or ""
        out.append(clean)
    return out


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Text of the last user message (the text the router scores); else of the last message with text."""
    for role in ("user", None):
        for message in reversed(messages):
            if role is not None and message.get("role") != role:
                continue
            text = _text_of(message.get("content"))
            if text:
                return text
    return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [str(_get(b, "text") or "") for b in content if isinstance(b, Mapping) and b.get("type") == "text"]
        return "\n".join(p for p in parts if p)
    return ""


# --------------------------------------------------------------------------- OpenAI -> LangChain


def usage_metadata(usage: Any) -> UsageMetadata | None:
    """LangChain usage from an OpenAI/LiteLLM ``usage`` (object or dict), or None."""
    if usage is None:
        return None
    inp = int(_get(usage, "prompt_tokens") or 0)
    out = int(_get(usage, "completion_tokens") or 0)
    total = int(_get(usage, "total_tokens") or inp + out)
    result = UsageMetadata(input_tokens=inp, output_tokens=out, total_tokens=total)
    pdet, cdet = _get(usage, "prompt_tokens_details"), _get(usage, "completion_tokens_details")
    in_details = {
        "cache_read": _get(pdet, "cached_tokens"),
        "cache_creation": _get(usage, "cache_creation_input_tokens"),
        "audio": _get(pdet, "audio_tokens"),
    }
    out_details = {"reasoning": _get(cdet, "reasoning_tokens"), "audio": _get(cdet, "audio_tokens")}
    in_d = {k: int(v) for k, v in in_details.items() if v}
    out_d = {k: int(v) for k, v in out_details.items() if v}
    if in_d:
        result["input_token_details"] = in_d  # type: ignore[typeddict-item]
    if out_d:
        result["output_token_details"] = out_d  # type: ignore[typeddict-item]
    return result


def _reasoning_kwargs(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("reasoning_content", "thinking_blocks", "reasoning_details"):
        value = _get(message, key)
        if value:
            out[key] = value if isinstance(value, str) else _plain(value)
    psf = _get(message, "provider_specific_fields")
    if isinstance(psf, Mapping):
        psf = {k: v for k, v in psf.items() if v is not None}
        if psf:
            out["provider_specific_fields"] = _plain(psf)
    return out


def _plain(value: Any) -> Any:
    """JSON-safe copy of pydantic objects / dicts / lists (LiteLLM returns both kinds)."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_ai_message(response: Any) -> AIMessage:
    """`AIMessage` for a LiteLLM ``ModelResponse`` (content, tool calls, usage, finish reason)."""
    choice = response.choices[0]
    message = choice.message
    calls, invalid = [], []
    for tc in _get(message, "tool_calls") or ():
        fn = _get(tc, "function")
        name, raw, call_id = _get(fn, "name"), _get(fn, "arguments") or "", _get(tc, "id")
        try:
            args = json.loads(raw) if raw else {}
            if not isinstance(args, dict):
                raise TypeError
            calls.append(tool_call(name=name, args=args, id=call_id))
        except (TypeError, ValueError) as exc:
            invalid.append(
                invalid_tool_call(name=name, args=raw, id=call_id, error=f"arguments are not a JSON object: {exc}")
            )
    metadata: dict[str, Any] = {"finish_reason": _get(choice, "finish_reason"), "model_provider": "openai"}
    if _get(response, "system_fingerprint"):
        metadata["system_fingerprint"] = response.system_fingerprint
    refusal = _get(message, "refusal")
    kwargs = _reasoning_kwargs(message)
    if refusal:
        kwargs["refusal"] = refusal
    return AIMessage(
        content=_get(message, "content") or "",
        tool_calls=calls,
        invalid_tool_calls=invalid,
        additional_kwargs=kwargs,
        usage_metadata=usage_metadata(_get(response, "usage")),
        response_metadata=metadata,
        id=_get(response, "id"),
    )


def to_ai_chunk(chunk: Any) -> AIMessageChunk | None:
    """`AIMessageChunk` for one LiteLLM stream chunk, or None when it carries nothing to show.

    Usage and the routing metadata are not put here: the chat model adds them to exactly one
    final chunk (LangChain sums usage and concatenates metadata strings across chunks).
    """
    choices = _get(chunk, "choices") or []
    if not choices:
        return None
    choice = choices[0]
    delta = _get(choice, "delta")
    tool_chunks = [
        tool_call_chunk(
            name=_get(_get(tc, "function"), "name"),
            args=_get(_get(tc, "function"), "arguments"),
            id=_get(tc, "id"),
            index=_get(tc, "index"),
        )
        for tc in _get(delta, "tool_calls") or ()
    ]
    content = _get(delta, "content") or ""
    kwargs = _reasoning_kwargs(delta)
    finish = _get(choice, "finish_reason")
    if not (content or tool_chunks or kwargs or finish):
        return None
    return AIMessageChunk(
        content=content,
        tool_call_chunks=tool_chunks,
        additional_kwargs=kwargs,
        response_metadata={"finish_reason": finish} if finish else {},
        id=_get(chunk, "id"),
    )
