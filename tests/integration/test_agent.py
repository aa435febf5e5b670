"""A real LangChain agent (langchain.agents.create_agent) served by RoutedChatModel end to end.

Agent -> RoutedChatModel -> router (real MiniLM embeddings) -> LiteLLM -> the local
OpenAI-compatible server on 127.0.0.1, which calls bound tools with schema-generated arguments.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.tools import tool

from routed_llm.chat_model import RoutedChatModel
from routed_llm.fallback import FallbackPolicy
from routed_llm.testing import LocalOpenAIServer

pytestmark = pytest.mark.slow

QUESTION = {"messages": [{"role": "user", "content": "solve the equation with the magic number for my class"}]}


@tool
def magic_number(n: int) -> int:
    """Return the magic number for n."""
    return n * 7 + 1


@pytest.fixture
def server(fresh_openai_server: LocalOpenAIServer) -> LocalOpenAIServer:
    return fresh_openai_server


@pytest.fixture
def llm(minilm_router: Any, make_model_list: Any, server: LocalOpenAIServer) -> RoutedChatModel:
    model_list = make_model_list()
    model_list[2] = {**model_list[2], "model_info": {"supports_function_calling": False}}  # gpt-4.1-nano: no tools
    return RoutedChatModel(model_list=model_list, router=minilm_router, fallback=FallbackPolicy(retries_per_model=0))


def _turns(messages: list[Any]) -> list[AIMessage]:
    return [m for m in messages if isinstance(m, AIMessage)]


def test_agent_runs_a_tool_loop_end_to_end(llm: RoutedChatModel, server: LocalOpenAIServer) -> None:
    result = create_agent(llm, tools=[magic_number]).invoke(QUESTION)
    messages = result["messages"]
    tool_msgs = [m for m in messages if isinstance(m, ToolMessage)]
    first, final = _turns(messages)
    assert first.tool_calls[0]["name"] == "magic_number" and first.tool_calls[0]["args"] == {"n": 3}
    assert tool_msgs[0].content == "22"
    served = first.response_metadata["model_name"]
    assert final.content == f"[fake-{served}] The tool returned: 22"
    assert final.response_metadata["model_name"] == served
    routing = first.response_metadata["routing"]
    assert "does not support tool calling" in routing["excluded"]["gpt-4.1-nano"]
    assert served == routing["ranking"][0] == "claude-haiku-4-5"  # a maths prompt, quality only
    assert server.count("fake-gpt-4.1-nano") == 0


def test_tool_loop_stays_with_the_model_that_started_it(llm: RoutedChatModel, server: LocalOpenAIServer) -> None:
    server.set_faults("fake-claude-haiku-4-5", [503])  # the router's choice fails once: fallback starts the loop
    result = create_agent(llm, tools=[magic_number]).invoke(QUESTION)
    first, final = _turns(result["messages"])
    assert [a["action"] for a in first.response_metadata["routing"]["attempts"]] == ["fallback", "ok"]
    assert first.response_metadata["model_name"] == "gpt-4o-mini"
    # claude-haiku-4-5 is healthy again and still the router's choice, but the loop keeps its model
    assert final.response_metadata["model_name"] == "gpt-4o-mini"
    assert "tool loop: gpt-4o-mini started it" in final.response_metadata["routing"]["reason"]
    assert server.count("fake-claude-haiku-4-5") == 1


def test_agent_streams_messages(llm: RoutedChatModel) -> None:
    agent = create_agent(llm, tools=[magic_number])
    chunks = [
        chunk for chunk, _meta in agent.stream(QUESTION, stream_mode="messages") if isinstance(chunk, AIMessageChunk)
    ]
    served = [c.response_metadata["model_name"] for c in chunks if "model_name" in c.response_metadata]
    assert served == ["claude-haiku-4-5", "claude-haiku-4-5"]  # one provenance chunk per model turn
    assert "".join(c.content for c in chunks if isinstance(c.content, str)).endswith("The tool returned: 22")


async def test_agent_async(llm: RoutedChatModel) -> None:
    result = await create_agent(llm, tools=[magic_number]).ainvoke(QUESTION)
    assert _turns(result["messages"])[-1].content == "[fake-claude-haiku-4-5] The tool returned: 22"
