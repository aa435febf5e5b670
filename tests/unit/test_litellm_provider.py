"""The LiteLLM provider through real LiteLLM calls to the local OpenAI-compatible server.

``litellm.completion(model="routed/smart")`` with the small knn router of tests/conftest.py
(hashing embedder): maths prompts go to claude-haiku-4-5, writing prompts to gpt-4o-mini.
LiteLLM's registration list and callback lists are scoped to each test with monkeypatch.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

import routed_llm.litellm_provider as lp
from routed_llm.errors import ConfigError
from routed_llm.litellm_provider import RoutedProvider, register, split_request, unregister
from routed_llm.testing import LocalOpenAIServer

MATH = "solve the equation for my class"
WRITING = "write a poem about cats"
SECRET = "sk-provider-unit-secret-4321"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "joke",
        "schema": {
            "type": "object",
            "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
            "required": ["setup", "punchline"],
        },
    },
}


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class Recorder(CustomLogger):
    """Counts LiteLLM success events (sync and async) with the cost LiteLLM logged."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str | None, float | None]] = []

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.events.append((str(kwargs.get("custom_llm_provider")), kwargs.get("model"), kwargs.get("response_cost")))

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self.log_success_event(kwargs, response_obj, start_time, end_time)

    def settled(self, *, timeout: float = 30.0, quiet: float = 1.0) -> list[tuple[str, str | None, float | None]]:
        """The events once at least one arrived and none more came for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while not self.events and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = -1
        while seen != len(self.events) and time.monotonic() < deadline:
            seen = len(self.events)
            time.sleep(quiet)
        return list(self.events)


@pytest.fixture
def scoped(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Fresh LiteLLM registration and callback lists for this test, plus a success recorder."""
    recorder = Recorder()
    monkeypatch.setattr(litellm, "custom_provider_map", [])
    for name in ("success_callback", "_async_success_callback", "failure_callback", "_async_failure_callback"):
        monkeypatch.setattr(litellm, name, [])
    monkeypatch.setattr(litellm, "callbacks", [recorder])
    monkeypatch.setattr(lp, "handler", RoutedProvider())
    monkeypatch.delenv(lp.CONFIG_ENV, raising=False)
    return recorder


@pytest.fixture
def server(fresh_openai_server: LocalOpenAIServer) -> LocalOpenAIServer:
    return fresh_openai_server


@pytest.fixture
def smart(scoped: Recorder, hash_router: Any, routed_model_list: list[dict[str, Any]]) -> RoutedProvider:
    config = {
        "candidates": routed_model_list,
        "router": hash_router,
        "fallback": {"retries_per_model": 0},
        "circuit_breaker": False,
    }
    return register(name="smart", config=config)


def _price(model: str, usage: Any) -> float:
    p, c = litellm.cost_per_token(
        model=model, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens
    )
    return p + c


def _check_served(response: Any, model_name: str) -> None:
    assert response.model == model_name
    hidden = response._hidden_params
    routing = hidden["routing"]
    assert routing["model_name"] == model_name and routing["ranking"][0] == model_name
    assert hidden["response_cost"] == pytest.approx(routing["cost_usd"])
    assert hidden["response_cost"] == pytest.approx(_price(model_name, response.usage))
    assert hidden["additional_headers"]["llm_provider-x-routed-llm-model"] == model_name
    summary = response.choices[0].message.provider_specific_fields["routed_llm"]
    assert summary["model_name"] == model_name and summary["config"] == "smart"


# ------------------------------------------------------------------------------ registration
@pytest.mark.slow
def test_import_registers_nothing() -> None:
    code = textwrap.dedent(
        """
        import os
        os.environ["ROUTED_LLM_CONFIG"] = "/nonexistent/routes.yaml"
        import litellm, routed_llm.litellm_provider as lp
        print(len(litellm.custom_provider_map), lp.handler._file_loaded, sorted(lp.handler._configs))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["0", "False", "[]"]


def test_register_is_idempotent_and_explicit(scoped: Recorder) -> None:
    first = register()
    assert register() is first is lp.handler
    assert litellm.custom_provider_map == [{"provider": "routed", "custom_handler": first}]
    with pytest.raises(ConfigError, match="already registered"):
        register(custom_handler=RoutedProvider())
    with pytest.raises(ConfigError, match="built-in"):
        register(custom_handler=RoutedProvider(), provider="openai")
    other = register(custom_handler=RoutedProvider(), provider="routed2")
    assert [e["provider"] for e in litellm.custom_provider_map] == ["routed", "routed2"]
    unregister("routed")
    assert litellm.custom_provider_map == [{"provider": "routed2", "custom_handler": other}]


def test_recursion_is_refused(scoped: Recorder, hash_router: Any, make_model_list: Any) -> None:
    with pytest.raises(ConfigError, match="recursion"):
        register(name="loop", config={"candidates": ["routed/smart"], "router": hash_router})
    custom = RoutedProvider(provider="mine")
    with pytest.raises(ConfigError, match="'mine' provider itself"):
        custom.add_config({"candidates": ["mine/x"], "router": hash_router, "unprofiled_prior": 0.5}, name="loop")
    assert litellm.custom_provider_map == []


def test_bad_config_is_a_clear_config_error(scoped: Recorder, hash_router: Any, make_model_list: Any) -> None:
    with pytest.raises(ConfigError, match=r"routers\.bad\.fallback\.retries: Extra inputs"):
        register(
            name="bad", config={"candidates": make_model_list(), "router": hash_router, "fallback": {"retries": 1}}
        )
    with pytest.raises(ConfigError, match=r"routers\.bad: the router has no profile for \['mystery'\]"):
        register(name="bad", config={"candidates": [*make_model_list(), "mystery"], "router": hash_router})
    with pytest.raises(ConfigError, match="needs config"):
        register(name="bad")


def test_split_request_takes_our_keys_and_forwards_the_rest() -> None:
    call = split_request(
        "smart",
        {
            "temperature": 0.1,
            "tools": TOOLS,
            "cost_weight": "0.5",
            "max_retries": 3,
            "stream": True,
            "extra_body": {"routed_model": "gpt-4o-mini", "top_k": 3},
        },
        {"metadata": {"cost_weight": 9}},
        30.0,
    )
    assert call.cost_weight == 0.5  # the kwarg wins over metadata
    assert call.pin == "gpt-4o-mini"
    assert call.params == {
        "temperature": 0.1,
        "tools": TOOLS,
        "extra_body": {"top_k": 3},
        "timeout": 30.0,
        "no_log": True,
    }
    assert split_request("s", {}, {"metadata": {"cost_weight": 2}}, None).cost_weight == 2.0
    with pytest.raises(ConfigError, match="cost_weight"):
        split_request("s", {"cost_weight": "lots"}, None, None)


# ------------------------------------------------------------------------------ calls
def test_completion_reports_served_model_cost_and_routing(smart: RoutedProvider, server: LocalOpenAIServer) -> None:
    response = litellm.completion(model="routed/smart", messages=_user(MATH))
    _check_served(response, "claude-haiku-4-5")
    assert response.choices[0].message.content.startswith("[fake-claude-haiku-4-5]")
    assert server.count("fake-claude-haiku-4-5") == 1 and server.count() == 1
    writing = litellm.completion(model="routed/smart", messages=_user(WRITING))
    _check_served(writing, "gpt-4o-mini")


def test_completion_logs_exactly_one_success_event_with_the_cost(
    smart: RoutedProvider, scoped: Recorder, server: LocalOpenAIServer
) -> None:
    response = litellm.completion(model="routed/smart", messages=_user(MATH))
    events = scoped.settled()
    assert events == [("routed", "smart", pytest.approx(response._hidden_params["response_cost"]))]
    assert events[0][2] > 0


async def test_acompletion(smart: RoutedProvider, scoped: Recorder, server: LocalOpenAIServer) -> None:
    response = await litellm.acompletion(model="routed/smart", messages=_user(WRITING))
    _check_served(response, "gpt-4o-mini")
    events = await asyncio.to_thread(scoped.settled)
    assert events == [("routed", "smart", pytest.approx(response._hidden_params["response_cost"]))]


def _collect(chunks: list[Any]) -> tuple[str, Any, dict[str, Any]]:
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    summaries = [
        c.choices[0].delta.provider_specific_fields["routed_llm"]
        for c in chunks
        if c.choices and (c.choices[0].delta.provider_specific_fields or {}).get("routed_llm")
    ]
    assert len(usage) == 1 and len(summaries) == 1, "usage and provenance on exactly one chunk each"
    return text, usage[0], summaries[0]


def test_stream_passes_chunks_through_with_usage_and_cost(
    smart: RoutedProvider, scoped: Recorder, server: LocalOpenAIServer
) -> None:
    stream = litellm.completion(
        model="routed/smart", messages=_user(MATH), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text, usage, summary = _collect(chunks)
    direct = litellm.completion(
        model="openai/fake-claude-haiku-4-5", api_base=server.base_url, api_key="k", messages=_user(MATH)
    )
    assert text == direct.choices[0].message.content
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        direct.usage.prompt_tokens,
        direct.usage.completion_tokens,
    )
    assert summary["model_name"] == "claude-haiku-4-5"
    assert summary["cost_usd"] == pytest.approx(_price("claude-haiku-4-5", usage))
    content_models = {c.model for c in chunks if c.choices and c.choices[0].delta.content}
    assert content_models == {"claude-haiku-4-5"}
    events = scoped.settled()
    routed = [e for e in events if e[0] == "routed"]
    assert routed == [("routed", "smart", pytest.approx(summary["cost_usd"]))]


async def test_astream(smart: RoutedProvider, scoped: Recorder, server: LocalOpenAIServer) -> None:
    stream = await litellm.acompletion(
        model="routed/smart", messages=_user(WRITING), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text, _, summary = _collect(chunks)
    assert text.startswith("[fake-gpt-4o-mini]") and summary["model_name"] == "gpt-4o-mini"
    events = await asyncio.to_thread(scoped.settled)
    assert [e for e in events if e[0] == "routed"] == [("routed", "smart", pytest.approx(summary["cost_usd"]))]
    assert server.count() == 1


def test_tools_pass_through(smart: RoutedProvider, server: LocalOpenAIServer) -> None:
    response = litellm.completion(
        model="routed/smart", messages=_user("what is the weather in 'Paris'"), tools=TOOLS, tool_choice="required"
    )
    call = response.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert response.choices[0].finish_reason == "tool_calls"
    body = server.requests[-1]["body"]
    assert body["tools"] == TOOLS and body["tool_choice"] == "required"


def test_streamed_tool_call_deltas_pass_through(smart: RoutedProvider, server: LocalOpenAIServer) -> None:
    chunks = list(
        litellm.completion(model="routed/smart", messages=_user("weather in 'Oslo'"), tools=TOOLS, stream=True)
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_structured_output_passes_through(smart: RoutedProvider, server: LocalOpenAIServer) -> None:
    response = litellm.completion(model="routed/smart", messages=_user(WRITING), response_format=SCHEMA)
    assert set(json.loads(response.choices[0].message.content)) == {"setup", "punchline"}
    assert server.requests[-1]["body"]["response_format"] == SCHEMA


def test_per_call_cost_weight_pin_and_our_keys_not_forwarded(smart: RoutedProvider, server: LocalOpenAIServer) -> None:
    cheap = litellm.completion(model="routed/smart", messages=_user(MATH), cost_weight=100.0)
    assert cheap._hidden_params["routing"]["cost_weight"] == 100.0
    assert cheap.model == "gpt-4.1-nano"  # the cheapest wins when cost dominates
    via_metadata = litellm.completion(model="routed/smart", messages=_user(MATH), metadata={"cost_weight": 100.0})
    assert via_metadata.model == "gpt-4.1-nano"
    pinned = litellm.completion(model="routed/smart", messages=_user(MATH), routed_model="gpt-4o-mini")
    assert pinned.model == "gpt-4o-mini" and "pinned" in pinned._hidden_params["routing"]["reason"]
    for request in server.requests:
        assert not {"cost_weight", "routed_model", "metadata"} & set(request["body"])


def test_fallback_inside_the_routed_model(smart: RoutedProvider, server: LocalOpenAIServer) -> None:
    server.set_down("fake-claude-haiku-4-5")
    response = litellm.completion(model="routed/smart", messages=_user(MATH))
    attempts = response._hidden_params["routing"]["attempts"]
    assert attempts[0]["model"] == "claude-haiku-4-5" and attempts[0]["action"] != "ok"
    assert response.model == attempts[-1]["model"] != "claude-haiku-4-5"


def test_all_candidates_down_is_a_503_that_a_litellm_router_falls_back_from(
    smart: RoutedProvider, server: LocalOpenAIServer
) -> None:
    for name in ("gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-nano"):
        server.set_down(f"fake-{name}")
    with pytest.raises(litellm.ServiceUnavailableError, match="routed-llm"):
        litellm.completion(model="routed/smart", messages=_user(MATH))
    router = litellm.Router(
        model_list=[
            {"model_name": "smart", "litellm_params": {"model": "routed/smart"}},
            {
                "model_name": "backup",
                "litellm_params": {"model": "openai/fake-backup", "api_base": server.base_url, "api_key": "k"},
            },
        ],
        fallbacks=[{"smart": ["backup"]}],
        num_retries=0,
    )
    response = router.completion(model="smart", messages=_user(MATH))
    assert response.choices[0].message.content.startswith("[fake-backup]")
    streamed = router.completion(model="smart", messages=_user(MATH), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices).startswith("[fake-backup]")


def test_unknown_config_name_lists_the_known_ones(smart: RoutedProvider) -> None:
    with pytest.raises(litellm.BadRequestError, match=r"no router configuration named 'nope'.*\['smart'\]"):
        litellm.completion(model="routed/nope", messages=_user(MATH))


def test_key_never_leaks_into_errors(
    scoped: Recorder, hash_router: Any, make_model_list: Any, server: LocalOpenAIServer
) -> None:
    models = make_model_list(key=SECRET)
    register(name="secret", config={"candidates": models, "router": hash_router, "fallback": {"retries_per_model": 0}})
    assert SECRET not in repr(lp.handler.configs())
    for m in models:
        server.set_down(m["litellm_params"]["model"].removeprefix("openai/"))
    with pytest.raises(litellm.ServiceUnavailableError) as info:
        litellm.completion(model="routed/secret", messages=_user(MATH))
    assert SECRET not in str(info.value)


def test_configs_from_the_env_file(scoped: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routers:\n  fromfile:\n    candidates: [gpt-4o-2024-05-13, deepseek/deepseek-chat]\n    cost_weight: 0.3\n"
    )
    monkeypatch.setenv(lp.CONFIG_ENV, str(path))
    assert lp.handler.names() == ["fromfile"]
    assert lp.handler.engine("fromfile").cost_weight == 0.3
    path.write_text("routers:\n  x: {candidates: [routed/fromfile]}\n")
    fresh = RoutedProvider(path=path)
    with pytest.raises(ConfigError, match="recursion"):
        fresh.names()


def test_stream_with_every_candidate_down_raises_a_litellm_error(
    smart: RoutedProvider, server: LocalOpenAIServer
) -> None:
    for name in ("gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-nano"):
        server.set_down(f"fake-{name}")
    with pytest.raises(litellm.ServiceUnavailableError, match="routed-llm"):
        list(litellm.completion(model="routed/smart", messages=_user(MATH), stream=True))


async def test_astream_with_every_candidate_down_raises_a_litellm_error(
    smart: RoutedProvider, server: LocalOpenAIServer
) -> None:
    for name in ("gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-nano"):
        server.set_down(f"fake-{name}")
    with pytest.raises(litellm.ServiceUnavailableError, match="routed-llm"):
        stream = await litellm.acompletion(model="routed/smart", messages=_user(MATH), stream=True)
        _ = [c async for c in stream]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_tool_loop_stays_on_the_model_that_started_it(
    smart: RoutedProvider, server: LocalOpenAIServer, stream: bool
) -> None:
    question = _user(WRITING)
    if stream:
        chunks = list(litellm.completion(model="routed/smart", messages=question, tools=TOOLS, stream=True))
        _, _, summary = _collect_provenance(chunks)
        starter, first = summary["model_name"], litellm.stream_chunk_builder(chunks)
    else:
        first = litellm.completion(model="routed/smart", messages=question, tools=TOOLS)
        starter = first.model
    assert starter == "gpt-4o-mini"
    call = first.choices[0].message.tool_calls[0]
    history = [*question,
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": call.id, "type": "function", "function": {"name": call.function.name,
                                                                    "arguments": call.function.arguments}}]},
               {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]  # fmt: skip
    # cost_weight=100 alone picks the cheapest model (gpt-4.1-nano); the open tool loop keeps its model
    second = litellm.completion(model="routed/smart", messages=history, tools=TOOLS, cost_weight=100.0)
    assert second.model == starter
    assert "tool loop" in second._hidden_params["routing"]["reason"]
    unknown = [*history[:1], {**history[1], "tool_calls": [{**history[1]["tool_calls"][0], "id": "call_unknown"}]},
               {**history[2], "tool_call_id": "call_unknown"}]  # fmt: skip
    assert (
        litellm.completion(model="routed/smart", messages=unknown, tools=TOOLS, cost_weight=100.0).model
        == "gpt-4.1-nano"
    )


def _collect_provenance(chunks: list[Any]) -> tuple[str, Any, dict[str, Any]]:
    summaries = [c.choices[0].delta.provider_specific_fields["routed_llm"] for c in chunks
                 if c.choices and (c.choices[0].delta.provider_specific_fields or {}).get("routed_llm")]  # fmt: skip
    assert len(summaries) == 1
    return "", None, summaries[0]
