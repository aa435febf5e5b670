"""Pure OpenAI chat-completions logic of the local server: plan a reply, render it.

`plan_reply` turns a request body and a `Behavior` into a `Reply`; `render_completion`
and `render_chunks` turn that into the non-streaming JSON or the list of SSE chunk objects.
Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._behavior import Behavior, choose_option, find_options
from ._schema import example_from_schema

_QUOTED_RE = re.compile(r"(?<!\w)'([^'\n]{1,200})'(?!\w)|(?<!\w)\"([^\"\n]{1,200})\"(?!\w)")

__all__ = [
    "Reply",
    "RequestError",
    "error_body",
    "estimate_tokens",
    "message_text",
    "plan_reply",
    "prompt_tokens",
    "render_chunks",
    "render_completion",
]


class RequestError(Exception):
    """The request is invalid; the server answers `status` with an OpenAI error body."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        """Store the status, message and OpenAI error code."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(slots=True, kw_only=True)
class Reply:
    """What the model answers: text or tool calls, plus finish reason and usage."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 1
    completion_tokens: int = 1

    def usage(self) -> dict[str, int]:
        """Return the OpenAI `usage` object."""
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens, "total_tokens": total}


def estimate_tokens(text: str) -> int:
    """Roughly four characters per token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def message_text(message: dict[str, Any]) -> str:
    """Return the text of one chat message (string content or text parts)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Estimate the prompt tokens of a message list (text plus tool-call arguments)."""
    chars = 0
    for message in messages:
        chars += len(message_text(message))
        for call in message.get("tool_calls") or []:
            chars += len(str(call.get("function", {}).get("arguments", "")))
    return max(1, math.ceil(chars / 4))


def error_body(message: str, *, status: int, code: str | None = None) -> dict[str, Any]:
    """Return an OpenAI-style error JSON object."""
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "invalid_request_error",
        408: "timeout",
        429: "rate_limit_exceeded",
    }
    kind = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def plan_reply(body: dict[str, Any], model: str, behavior: Behavior, new_call_id: Callable[[], str]) -> Reply:
    """Decide the reply to a chat-completions request.

    Args:
        body: The parsed request JSON.
        model: The requested model name.
        behavior: How this model answers.
        new_call_id: Returns a fresh unique tool-call id.

    Returns:
        The planned reply (usage filled in).

    Raises:
        RequestError: The request is invalid or exceeds the model's context window.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list")
    n_prompt = prompt_tokens(messages)
    if behavior.context_window is not None and n_prompt > behavior.context_window:
        raise context_window_error(behavior.context_window, n_prompt)
    tool = _forced_tool(body, messages, behavior)
    if tool is not None:
        schema = tool.get("parameters") or {"type": "object", "properties": {}}
        args = example_from_schema(schema, text=_quoted_text(messages))
        arguments = json.dumps(args if isinstance(args, dict) else {}, ensure_ascii=False)
        call = {"id": new_call_id(), "type": "function", "function": {"name": tool["name"], "arguments": arguments}}
        return Reply(
            content=None,
            tool_calls=[call],
            finish_reason="tool_calls",
            prompt_tokens=n_prompt,
            completion_tokens=estimate_tokens(tool["name"] + arguments),
        )
    answer = _answer_text(messages, model, behavior)
    json_text = _json_content(body.get("response_format"), answer, _last_user_text(messages))
    if json_text is not None:
        return Reply(content=json_text, prompt_tokens=n_prompt, completion_tokens=estimate_tokens(json_text))
    text, finish = _truncate(answer, body)
    return Reply(content=text, finish_reason=finish, prompt_tokens=n_prompt, completion_tokens=estimate_tokens(text))


def context_window_error(limit: int, used: int) -> RequestError:
    """Return the OpenAI `context_length_exceeded` error LiteLLM maps to ContextWindowExceededError."""
    message = (
        f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
        f"{used} tokens. Please reduce the length of the messages."
    )
    return RequestError(400, message, code="context_length_exceeded")


def _forced_tool(body: dict[str, Any], messages: list[dict[str, Any]], behavior: Behavior) -> dict[str, Any] | None:
    """Return the function spec to call, or None to answer in text."""
    tools: list[dict[str, Any]] = [t.get("function", t) for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none" or not behavior.use_tools:
        return None
    if messages[-1].get("role") in ("tool", "function"):
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        for tool in tools:
            if tool.get("name") == name:
                return tool
        msg = f"tool_choice names {name!r}, which is not among the tools {[t.get('name') for t in tools]}"
        raise RequestError(400, msg)
    return tools[0]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    """Return the text of the last user message ("" if none)."""
    return next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


def _quoted_text(messages: list[dict[str, Any]]) -> str:
    """Return the first quoted span ('...' or "...") of the last user message, else "a"."""
    match = _QUOTED_RE.search(_last_user_text(messages))
    return match.group(1) or match.group(2) if match else "a"


def _answer_text(messages: list[dict[str, Any]], model: str, behavior: Behavior) -> str:
    """Return the full (untruncated) text answer."""
    last = messages[-1]
    if last.get("role") in ("tool", "function"):
        return f"[{model}] The tool returned: {message_text(last)}"
    prompt = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), message_text(last))
    if isinstance(behavior.reply, str):
        return behavior.reply
    if behavior.reply is not None:
        return behavior.reply(prompt)
    options = find_options(prompt)
    if options:
        return f"The answer is ({choose_option(model, prompt, options, behavior.answer_key)})"
    digest = hashlib.sha256(f"{model}\n{prompt}".encode()).hexdigest()[:8]
    words = " ".join(prompt.split()[:12]) or "(empty prompt)"
    return f"[{model}] Answer {digest} to: {words}"


def _json_content(response_format: Any, text: str, prompt: str) -> str | None:
    """Return the JSON content asked for by `response_format`, or None for plain text.

    JSON mode (`json_object`) answers `{"answer": text}`, or, when the prompt quotes
    identifier-like keys ("... with 'setup' and 'punchline' keys"), one "a" per key.
    """
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        return json.dumps(example_from_schema(schema), ensure_ascii=False)
    if kind == "json_object":
        keys = [a or b for a, b in _QUOTED_RE.findall(prompt) if (a or b).isidentifier()]
        return json.dumps({k: "a" for k in keys} if keys else {"answer": text}, ensure_ascii=False)
    return None


def _truncate(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Apply `stop` sequences and `max_tokens`; return the text and its finish reason."""
    stops = body.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and estimate_tokens(text) > limit:
        cut = text[: limit * 4]
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
        return cut, "length"
    return text, "stop"


def render_completion(reply: Reply, *, model: str, response_id: str, created: int) -> dict[str, Any]:
    """Return the non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": reply.usage(),
    }


def render_chunks(
    reply: Reply, *, model: str, response_id: str, created: int, include_usage: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (body chunks, closing chunks) of a stream; closing = finish_reason (+ usage).

    Body chunks carry the role, the content in several pieces and tool-call deltas (name
    first, then the arguments in two or more fragments).
    """

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [choice],
        }

    body = [chunk({"role": "assistant", "content": ""})]
    body += [chunk({"content": piece}) for piece in _split(reply.content or "", 4)]
    for index, call in enumerate(reply.tool_calls):
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        body.append(chunk({"tool_calls": [head]}))
        for piece in _split(call["function"]["arguments"], 3, by_words=False):
            body.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    closing = [chunk({}, reply.finish_reason)]
    if include_usage:
        usage = chunk({})
        usage["choices"], usage["usage"] = [], reply.usage()
        closing.append(usage)
    return body, closing


def _split(text: str, parts: int, *, by_words: bool = True) -> list[str]:
    """Split `text` into up to `parts` non-empty pieces that concatenate back to it."""
    if not text:
        return []
    if by_words:
        words = text.split(" ")
        size = max(1, math.ceil(len(words) / parts))
        groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [g + (" " if i < len(groups) - 1 else "") for i, g in enumerate(groups)]
    size = max(1, math.ceil(len(text) / parts))
    return [text[i : i + size] for i in range(0, len(text), size)]
