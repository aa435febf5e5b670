"""RoutedChatModel against the local OpenAI-compatible server (real LiteLLM calls over 127.0.0.1).

The router is the small knn router of tests/conftest.py (hashing embedder): maths prompts go
to claude-haiku-4-5, writing prompts to gpt-4o-mini, and gpt-4.1-nano is the cheapest.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from pydantic import BaseModel

from routed_llm.chat_model import RoutedChatModel
from routed_llm.errors import AllModelsFailedError, ConfigError, RoutingError
from routed_llm.fallback import FallbackPolicy
from routed_llm.testing import Fault, LocalOpenAIServer

MATH = "solve the equation for my class"
WRITING = "write a poem about cats"
SECRET = "sk-routed-unit-secret-1234"


def magic_function(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


@pytest.fixture
def server(fresh_openai_server: LocalOpenAIServer) -> LocalOpenAIServer:
    return fresh_openai_server


@pytest.fixture
def llm(hash_router: Any, routed_model_list: list[dict[str, Any]]) -> RoutedChatModel:
    return RoutedChatModel(
        model_list=routed_model_list, router=hash_router, fallback=FallbackPolicy(retries_per_model=0)
    )


def _with(model_list: list[dict[str, Any]], name: str, **info: Any) -> list[dict[str, Any]]:
    return [{**d, "model_info": info} if d["model_name"] == name else d for d in model_list]


# ------------------------------------------------------------------------------ construction
def test_unprofiled_candidate_is_a_config_error(hash_router: Any) -> None:
    with pytest.raises(ConfigError) as info:
        RoutedChatModel(model_list=["gpt-4o-mini", "mystery-model"], router=hash_router)
    assert "mystery-model" in str(info.value) and "claude-haiku-4-5" in str(info.value)  # lists the profiled models


def test_unprofiled_prior_routes_on_the_prior(
    hash_router: Any, routed_model_list: list[dict[str, Any]], server: LocalOpenAIServer
) -> None:
    extra = {
        "model_name": "mystery",
        "litellm_params": {"model": "openai/mystery", "api_base": server.base_url, "api_key": "k"},
        "model_info": {"input_cost_per_token": 0, "output_cost_per_token": 0},
    }
    llm = RoutedChatModel(model_list=[*routed_model_list, extra], router=hash_router, unprofiled_prior=0.99)
    msg = llm.invoke(WRITING)
    routing = msg.response_metadata["routing"]
    assert routing["scores"]["mystery"] == pytest.approx(0.99)
    assert msg.response_metadata["model_name"] == "mystery"
    assert "unprofiled_prior" in routing["reason"]
    with pytest.raises(ConfigError, match="unprofiled_prior"):
        RoutedChatModel(model_list=[extra], router=hash_router, unprofiled_prior=2.0)


def test_standard_fields_and_hooks(llm: RoutedChatModel) -> None:
    assert llm._llm_type == "routed-chat"
    assert not RoutedChatModel.is_lc_serializable()
    assert llm._get_ls_params(model="gpt-4o-mini")["ls_model_name"] == "gpt-4o-mini"
    assert llm._identifying_params["candidates"] == ["gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-nano"]


# ------------------------------------------------------------------------------ routing + provenance
def test_invoke_routes_by_the_last_user_message(llm: RoutedChatModel) -> None:
    math_msg = llm.invoke(MATH)
    writing_msg = llm.invoke([HumanMessage(MATH), AIMessage("ok"), HumanMessage(WRITING)])
    assert math_msg.response_metadata["model_name"] == "claude-haiku-4-5"
    assert math_msg.content.startswith("[fake-claude-haiku-4-5]")
    assert writing_msg.response_metadata["model_name"] == "gpt-4o-mini"
    meta = writing_msg.response_metadata
    assert meta["litellm_model"] == "openai/fake-gpt-4o-mini"
    routing = meta["routing"]
    assert set(routing) >= {
        "candidates",
        "eligible",
        "excluded",
        "scores",
        "expected_costs",
        "utilities",
        "cost_weight",
        "reason",
        "ranking",
        "attempts",
        "model_name",
        "cost_usd",
    }
    assert routing["ranking"][0] == "gpt-4o-mini"
    assert routing["attempts"] == [{**routing["attempts"][0], "model": "gpt-4o-mini", "action": "ok", "error": None}]
    usage = writing_msg.usage_metadata
    # the local deployment is priced with gpt-4o-mini's LiteLLM prices
    assert meta["cost_usd"] == pytest.approx(usage["input_tokens"] * 1.5e-7 + usage["output_tokens"] * 6e-7)
    json.dumps(meta)  # JSON-safe


def test_cost_weight_per_call_and_pinned_model(llm: RoutedChatModel) -> None:
    cheap = llm.invoke(MATH, cost_weight=math.inf)
    assert cheap.response_metadata["model_name"] == "gpt-4.1-nano"
    assert cheap.response_metadata["routing"]["cost_weight"] == math.inf
    pinned = llm.invoke(MATH, model="gpt-4o-mini")
    assert pinned.response_metadata["model_name"] == "gpt-4o-mini"
    assert pinned.response_metadata["routing"]["reason"] == "pinned by model='gpt-4o-mini'"
    with pytest.raises(ConfigError, match="not a candidate"):
        llm.invoke(MATH, model="gpt-5")
    with pytest.raises(ConfigError, match="cost_weight"):
        llm.invoke(MATH, cost_weight=-1)


def test_price_override_changes_expected_cost_and_cost(
    hash_router: Any, routed_model_list: list[dict[str, Any]]
) -> None:
    free = _with(routed_model_list, "claude-haiku-4-5", input_cost_per_token=0.0, output_cost_per_token=0.0)
    llm = RoutedChatModel(model_list=free, router=hash_router)
    msg = llm.invoke(WRITING, cost_weight=math.inf)
    assert msg.response_metadata["model_name"] == "claude-haiku-4-5"
    assert msg.response_metadata["routing"]["expected_costs"]["claude-haiku-4-5"] == 0.0
    assert msg.response_metadata["cost_usd"] == 0.0


async def test_ainvoke_batch_abatch(llm: RoutedChatModel) -> None:
    out = await llm.ainvoke(MATH)
    assert out.response_metadata["model_name"] == "claude-haiku-4-5"
    names = [m.response_metadata["model_name"] for m in await llm.abatch([MATH, WRITING])]
    assert names == ["claude-haiku-4-5", "gpt-4o-mini"]
    assert [m.response_metadata["model_name"] for m in llm.batch([WRITING, MATH])] == [
        "gpt-4o-mini",
        "claude-haiku-4-5",
    ]


# ------------------------------------------------------------------------------ streaming
def _one_chunk_has(chunks: list[AIMessageChunk]) -> None:
    for key in ("model_name", "routing", "cost_usd"):
        assert sum(1 for c in chunks if key in c.response_metadata) == 1, key
    assert sum(1 for c in chunks if c.usage_metadata) == 1


def test_stream_puts_provenance_on_exactly_one_chunk(llm: RoutedChatModel) -> None:
    chunks = list(llm.stream(WRITING))
    assert len(chunks) > 2
    _one_chunk_has(chunks)
    total = chunks[0]
    for c in chunks[1:]:
        total += c
    assert total.response_metadata["model_name"] == "gpt-4o-mini"
    assert total.content == llm.invoke(WRITING).content
    assert total.usage_metadata["input_tokens"] > 0
    assert total.response_metadata["routing"]["attempts"][0]["action"] == "ok"
    assert total.response_metadata["cost_usd"] > 0


async def test_astream_and_streaming_field(hash_router: Any, routed_model_list: list[dict[str, Any]]) -> None:
    llm = RoutedChatModel(model_list=routed_model_list, router=hash_router, streaming=True)
    chunks = [c async for c in llm.astream(MATH)]
    _one_chunk_has(chunks)
    invoked = llm.invoke(MATH)  # streams under the hood
    assert invoked.response_metadata["model_name"] == "claude-haiku-4-5"
    assert invoked.usage_metadata["output_tokens"] > 0


# ------------------------------------------------------------------------------ gating
def test_tools_gate_out_models_without_function_calling(
    hash_router: Any, routed_model_list: list[dict[str, Any]]
) -> None:
    model_list = _with(routed_model_list, "claude-haiku-4-5", supports_function_calling=False)
    llm = RoutedChatModel(model_list=model_list, router=hash_router).bind_tools([magic_function], tool_choice="any")
    msg = llm.invoke(MATH)
    routing = msg.response_metadata["routing"]
    assert "claude-haiku-4-5" not in routing["eligible"]
    assert "tool calling" in routing["excluded"]["claude-haiku-4-5"]
    assert msg.response_metadata["model_name"] != "claude-haiku-4-5"
    assert msg.tool_calls[0]["name"] == "magic_function" and msg.tool_calls[0]["args"] == {"input": 3}


def test_no_eligible_model_lists_every_reason(hash_router: Any, routed_model_list: list[dict[str, Any]]) -> None:
    model_list = [{**d, "model_info": {"max_input_tokens": 10}} for d in routed_model_list]
    llm = RoutedChatModel(model_list=model_list, router=hash_router)
    with pytest.raises(RoutingError) as info:
        llm.invoke("word " * 200)
    assert set(info.value.excluded) == {"gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-nano"}
    for name in info.value.excluded:
        assert f"{name}: prompt of ~" in str(info.value)


def test_images_need_vision(
    hash_router: Any, routed_model_list: list[dict[str, Any]], server: LocalOpenAIServer
) -> None:
    model_list = _with(routed_model_list, "gpt-4o-mini", supports_vision=False)
    llm = RoutedChatModel(model_list=model_list, router=hash_router)
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    msg = llm.invoke(
        [
            HumanMessage(
                content=[{"type": "text", "text": WRITING}, {"type": "image", "base64": png, "mime_type": "image/png"}]
            )
        ]
    )
    assert "gpt-4o-mini" in msg.response_metadata["routing"]["excluded"]
    body = server.requests[-1]["body"]
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_json_schema_structured_output_gated_on_response_schema(
    hash_router: Any, routed_model_list: list[dict[str, Any]]
) -> None:
    model_list = _with(routed_model_list, "gpt-4o-mini", supports_response_schema=False)
    llm = RoutedChatModel(model_list=model_list, router=hash_router)
    out = llm.with_structured_output(Joke, method="json_schema", include_raw=True).invoke(WRITING)
    assert isinstance(out["parsed"], Joke) and out["parsing_error"] is None
    assert "gpt-4o-mini" in out["raw"].response_metadata["routing"]["excluded"]
    fc = llm.with_structured_output(Joke).invoke(WRITING)  # function calling: gpt-4o-mini is eligible again
    assert isinstance(fc, Joke)
    as_dict = llm.with_structured_output(Joke.model_json_schema(), method="json_schema").invoke(MATH)
    assert set(as_dict) == {"setup", "punchline"}


def test_bind_tools_tool_choice_forms(llm: RoutedChatModel, server: LocalOpenAIServer) -> None:
    def other(city: str) -> str:
        """Other tool."""
        return city

    llm.bind_tools([magic_function, other], tool_choice="other").invoke(MATH)
    assert server.requests[-1]["body"]["tool_choice"] == {"type": "function", "function": {"name": "other"}}
    llm.bind_tools([magic_function], tool_choice="any").invoke(MATH)
    assert server.requests[-1]["body"]["tool_choice"] == "required"
    with pytest.raises(ConfigError, match="names no bound tool"):
        llm.bind_tools([magic_function], tool_choice="nope")


# ------------------------------------------------------------------------------ conversations
def test_tool_loop_sticks_to_the_model_that_started_it(llm: RoutedChatModel) -> None:
    bound = llm.bind_tools([magic_function])
    first = bound.invoke(WRITING)
    assert first.response_metadata["model_name"] == "gpt-4o-mini"
    call = first.tool_calls[0]
    # a maths follow-up inside the loop would route to claude-haiku-4-5 on its own
    history = [HumanMessage(MATH), first, ToolMessage("5", tool_call_id=call["id"])]
    second = bound.invoke(history)
    assert second.response_metadata["model_name"] == "gpt-4o-mini"
    assert "tool loop" in second.response_metadata["routing"]["reason"]
    assert second.content == "[fake-gpt-4o-mini] The tool returned: 5"
    # once the loop is closed, routing is free again
    third = bound.invoke([*history, second, HumanMessage(MATH)])
    assert third.response_metadata["model_name"] == "claude-haiku-4-5"


def test_provider_bound_history_is_dropped_when_the_model_changes(
    llm: RoutedChatModel, server: LocalOpenAIServer
) -> None:
    claude_turn = AIMessage(
        content=[{"type": "thinking", "thinking": "hmm", "signature": "SIG-abc"}, {"type": "text", "text": "Hello"}],
        additional_kwargs={
            "reasoning_content": "hmm",
            "thinking_blocks": [{"type": "thinking", "signature": "SIG-abc"}],
        },
        response_metadata={"model_name": "claude-haiku-4-5"},
    )
    msg = llm.invoke([HumanMessage(MATH), claude_turn, HumanMessage(WRITING)])
    assert msg.response_metadata["model_name"] == "gpt-4o-mini"
    sent = json.dumps(server.requests[-1]["body"]["messages"])
    assert "SIG-abc" not in sent and "thinking" not in sent and "Hello" in sent
    # the same model gets its own reasoning back
    llm.invoke([HumanMessage(WRITING), claude_turn, HumanMessage(MATH)])
    assert "SIG-abc" in json.dumps(server.requests[-1]["body"]["messages"])


# ------------------------------------------------------------------------------ fallback
def test_fallback_to_the_next_ranked_model(llm: RoutedChatModel, server: LocalOpenAIServer) -> None:
    server.set_down("fake-claude-haiku-4-5")
    msg = llm.invoke(MATH)
    routing = msg.response_metadata["routing"]
    assert routing["ranking"][0] == "claude-haiku-4-5"
    assert msg.response_metadata["model_name"] == routing["ranking"][1]
    assert [a["action"] for a in routing["attempts"]] == ["fallback", "ok"]
    assert routing["attempts"][0]["error"] == "ServiceUnavailableError"
    chunks = list(llm.stream(MATH))
    assert sum(1 for c in chunks if "routing" in c.response_metadata) == 1
    assert (
        next(c for c in chunks if "routing" in c.response_metadata).response_metadata["model_name"]
        == routing["ranking"][1]
    )


# ------------------------------------------------------------------------------ secrets
def test_api_key_never_leaks(
    hash_router: Any, server: LocalOpenAIServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    model_list = [
        {
            "model_name": n,
            "litellm_params": {"model": f"openai/fake-{n}", "api_base": server.base_url, "api_key": SECRET},
        }
        for n in ("gpt-4o-mini", "claude-haiku-4-5")
    ]
    llm = RoutedChatModel(
        model_list=model_list, router=hash_router, api_key=None, fallback=FallbackPolicy(retries_per_model=0)
    )
    texts = [str(llm), repr(llm), str(llm.model_dump()), str(llm.model_list), str(llm.engine.deployments)]
    msg = llm.invoke(WRITING)
    assert server.requests[-1]["headers"].get("Authorization") == "<redacted>"  # a key was sent
    texts.append(json.dumps(msg.response_metadata))
    texts.append(json.dumps([c.response_metadata for c in llm.stream(WRITING)]))
    for name in ("fake-gpt-4o-mini", "fake-claude-haiku-4-5"):
        server.set_faults(name, [Fault.http(401, message=f"Incorrect API key provided: {SECRET}")] * 2)
    with pytest.raises(AllModelsFailedError) as info:
        llm.invoke(WRITING)
    texts += [str(info.value), repr(info.value.attempts), str(info.value.__cause__), repr(info.value.__cause__.args)]
    assert "Incorrect API key" in str(info.value)  # the provider's message is kept, minus the key
    override = RoutedChatModel(model_list=["gpt-4o-mini"], router=hash_router, api_key=SECRET)
    texts += [str(override), str(override.model_dump())]
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    for text in texts:
        assert SECRET not in text


def test__loop_origin() -> None:
    from routed_llm.engine import loop_origin

    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}
    tool = {"role": "tool", "tool_call_id": "c", "content": "1"}
    user = {"role": "user", "content": "q"}
    assert loop_origin([user, call, tool], [None, "m1", None]) == "m1"
    assert loop_origin([user, call], [None, "m1"]) == "m1"
    assert loop_origin([user, call, tool, {"role": "assistant", "content": "done"}], [None, "m1", None, "m1"]) is None
    assert loop_origin([user, call, tool, {**call}, tool], [None, "m1", None, "m2", None]) == "m2"
    assert loop_origin([], []) is None


def test_model_copy_keeps_working_with_new_cost_weight(llm: RoutedChatModel) -> None:
    cheap = llm.model_copy(update={"cost_weight": math.inf})
    assert cheap.invoke(MATH).response_metadata["model_name"] == "gpt-4.1-nano"
    assert llm.invoke(MATH).response_metadata["model_name"] == "claude-haiku-4-5"


async def test_stream_breaks_fall_back_before_content_and_raise_after(
    llm: RoutedChatModel, server: LocalOpenAIServer
) -> None:
    from routed_llm.fallback import StreamInterruptedError

    # cut after the role chunk (nothing shown yet): an error, or a clean EOF that LiteLLM closes with a
    # synthetic finish_reason "stop" (an empty answer must not pass for a real one)
    for fault in (Fault.stream_break(1), Fault.stream_break(1, abort=False)):
        server.set_faults("fake-gpt-4o-mini", [fault])
        chunks = [c async for c in llm.astream(WRITING)]
        final = next(c for c in chunks if "routing" in c.response_metadata)
        assert final.response_metadata["model_name"] == "claude-haiku-4-5"
        assert [a["action"] for a in final.response_metadata["routing"]["attempts"]] == ["fallback", "ok"]
        assert "".join(str(c.content) for c in chunks).startswith("[fake-claude-haiku-4-5]")  # nothing spliced

    server.set_faults("fake-gpt-4o-mini", [Fault.stream_break(3)])  # cut after text reached the caller
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in llm.stream(WRITING):
            seen.append(str(chunk.content))
    assert "".join(seen).startswith("[fake-gpt-4o-mini]")
    assert info.value.attempts[-1].streamed_chars == len("".join(seen)) > 0


def test_default_router_validates_candidates_without_embedding() -> None:
    import routed_llm

    known = routed_llm.default_router().models_
    llm = RoutedChatModel(model_list=[known[0], known[-1]])  # router=None: the shipped default router
    assert list(llm.engine.deployments) == [known[0], known[-1]]
    from_path = RoutedChatModel(model_list=[known[0]], router=str(resources.files("routed_llm") / "default_router"))
    assert getattr(from_path.engine.router, "_embedder", None) is None  # construction embedded nothing
    with pytest.raises(ConfigError) as info:
        RoutedChatModel(model_list=["gpt-4o-mini"])
    assert "gpt-4o-mini" in str(info.value) and known[0] in str(info.value)


def test__expected_costs(hash_router: Any) -> None:
    import statistics

    from routed_llm.deployments import parse_model_list
    from routed_llm.engine import RoutingEngine

    deployments = parse_model_list(
        [
            "gpt-4o-mini",  # profile's expected cost
            {
                "model_name": "claude-haiku-4-5",
                "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 0.0},
            },
            {"model_name": "mystery", "litellm_params": {"model": "openai/mystery"}},  # unprofiled, unpriced
            {
                "model_name": "priced",
                "litellm_params": {"model": "openai/priced"},
                "model_info": {"input_cost_per_token": 2e-6, "output_cost_per_token": 0.0},
            },
        ]
    )
    engine = RoutingEngine(deployments, hash_router, unprofiled_prior=0.5)
    profiles = hash_router.profiles_
    assert engine.expected_cost("gpt-4o-mini") == profiles["gpt-4o-mini"].expected_cost
    assert engine.expected_cost("claude-haiku-4-5") == pytest.approx(
        1e-6 * profiles["claude-haiku-4-5"].mean_input_tokens
    )
    assert engine.expected_cost("mystery") == pytest.approx(statistics.median(hash_router.expected_costs_))
    mean_in = sum(p.mean_input_tokens for p in profiles.values()) / len(profiles)
    assert engine.expected_cost("priced") == pytest.approx(2e-6 * mean_in)
