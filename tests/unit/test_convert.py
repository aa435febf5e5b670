"""LangChain <-> OpenAI conversion on real LiteLLM response objects, and history sanitising."""

from __future__ import annotations

import litellm
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

from routed_llm._convert import last_user_text, sanitize, to_ai_chunk, to_ai_message, to_openai, usage_metadata


def _response(message: dict, finish: str = "stop", usage: dict | None = None) -> litellm.ModelResponse:
    return litellm.ModelResponse(
        id="chatcmpl-1",
        choices=[{"index": 0, "message": message, "finish_reason": finish}],
        usage=usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    )


def test__to_ai_message_text_usage_and_reasoning() -> None:
    resp = _response(
        {
            "role": "assistant",
            "content": "hi",
            "reasoning_content": "thought",
            "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "sig"}],
        },
        usage={
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    )
    msg = to_ai_message(resp)
    assert msg.content == "hi" and msg.id == "chatcmpl-1"
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.usage_metadata == {
        "input_tokens": 7,
        "output_tokens": 3,
        "total_tokens": 10,
        "input_token_details": {"cache_read": 4},
        "output_token_details": {"reasoning": 2},
    }
    assert msg.additional_kwargs["reasoning_content"] == "thought"
    assert msg.additional_kwargs["thinking_blocks"][0]["signature"] == "sig"


def test__to_ai_message_tool_calls_valid_and_invalid() -> None:
    resp = _response(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{not json"}},
            ],
        },
        finish="tool_calls",
    )
    msg = to_ai_message(resp)
    assert msg.content == ""
    assert msg.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]
    assert msg.invalid_tool_calls[0]["name"] == "g" and msg.invalid_tool_calls[0]["args"] == "{not json"


def test__to_ai_chunk_content_tools_finish() -> None:
    text = ModelResponseStream(id="s1", choices=[StreamingChoices(delta=Delta(content="he"))])
    tool = ModelResponseStream(
        id="s1",
        choices=[
            StreamingChoices(
                delta=Delta(
                    tool_calls=[
                        {"id": "c1", "index": 0, "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
                    ]
                )
            )
        ],
    )
    final = ModelResponseStream(id="s1", choices=[StreamingChoices(delta=Delta(), finish_reason="tool_calls")])
    empty = ModelResponseStream(id="s1", choices=[StreamingChoices(delta=Delta(role="assistant", content=""))])
    assert to_ai_chunk(text).content == "he"
    tc = to_ai_chunk(tool).tool_call_chunks[0]
    assert (tc["name"], tc["args"], tc["id"], tc["index"]) == ("f", '{"a"', "c1", 0)
    assert to_ai_chunk(final).response_metadata == {"finish_reason": "tool_calls"}
    assert to_ai_chunk(empty) is None
    assert to_ai_chunk(ModelResponseStream(id="s1", choices=[])) is None
    merged = to_ai_chunk(text) + to_ai_chunk(final)
    assert "usage_metadata" not in merged.model_dump() or merged.usage_metadata is None


def test__usage_metadata_none_and_dict() -> None:
    assert usage_metadata(None) is None
    assert usage_metadata({"prompt_tokens": 2, "completion_tokens": 5}) == {
        "input_tokens": 2,
        "output_tokens": 5,
        "total_tokens": 7,
    }


def test__to_openai_keeps_origin_and_reasoning() -> None:
    messages = [
        SystemMessage("sys"),
        HumanMessage("q", name="bob"),
        AIMessage(
            content=[
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "text", "text": "a"},
                {"type": "reasoning", "reasoning": "r"},
            ],
            tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1", "type": "tool_call"}],
            additional_kwargs={"reasoning_content": "rc"},
            response_metadata={"model_name": "m1"},
        ),
        ToolMessage("3", tool_call_id="c1"),
    ]
    out, origins = to_openai(messages)
    assert origins == [None, None, "m1", None]
    assert [m["role"] for m in out] == ["system", "user", "assistant", "tool"]
    assert out[1]["name"] == "bob"
    ai = out[2]
    assert ai["reasoning_content"] == "rc"
    assert [b["type"] for b in ai["content"]] == ["thinking", "text"]  # LangChain v1 reasoning blocks dropped
    assert ai["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert out[3] == {"role": "tool", "tool_call_id": "c1", "content": "3"}


def test__sanitize_drops_provider_bound_items_of_other_models_only() -> None:
    ai = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "t", "signature": "s"},
            {"type": "redacted_thinking", "data": "x"},
            {"type": "text", "text": "a"},
        ],
        "reasoning_content": "rc",
        "thinking_blocks": [{"type": "thinking"}],
        "provider_specific_fields": {"k": 1},
    }
    only_thinking = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "t"}],
        "tool_calls": [{"id": "c"}],
    }
    messages = [{"role": "user", "content": "q"}, ai, only_thinking]
    same = sanitize(messages, [None, "m1", "m1"], "m1")
    assert same == messages
    other = sanitize(messages, [None, "m1", "m1"], "m2")
    assert other[1] == {"role": "assistant", "content": [{"type": "text", "text": "a"}]}
    assert other[2] == {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}
    assert sanitize(messages, [None, None, None], "m2") == messages  # unknown origin: left as is
    assert messages[1]["reasoning_content"] == "rc"  # input untouched


def test__last_user_text() -> None:
    msgs = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "x"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}],
        },
        {"role": "tool", "content": "3"},
    ]
    assert last_user_text(msgs) == "a\nb"
    assert last_user_text([{"role": "system", "content": "only system"}]) == "only system"
    assert last_user_text([]) == ""
