"""Demonstrates a LangChain agent (langchain.agents.create_agent) with tools, served by RoutedChatModel.

Runs offline against the package's local OpenAI-compatible server, which calls the bound tools
with arguments generated from their schemas. Models without tool support are gated out, and the
model that starts a tool loop keeps serving it.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from langchain.agents import create_agent
from langchain_core.tools import tool

from routed_llm import RoutedChatModel
from routed_llm.testing import LocalOpenAIServer

CANDIDATES = [
    "gpt-4o-2024-05-13",
    "gemini-3.1-pro-preview",
    "deepseek/deepseek-chat",
    "fireworks_ai/accounts/fireworks/models/qwen1p5-72b-chat",
]  # the last one has no tool calling


@tool
def magic_number(n: int) -> int:
    """Return the magic number for n."""
    return n * 7 + 1


with LocalOpenAIServer() as server:
    model_list = [
        {
            "model_name": name,
            "litellm_params": {"model": f"openai/{name}", "api_base": server.base_url, "api_key": "sk-local"},
        }
        for name in CANDIDATES
    ]
    llm = RoutedChatModel(model_list=model_list, cost_weight=1.0)
    agent = create_agent(llm, tools=[magic_number], system_prompt="Use the tools when they help.")
    result = agent.invoke({"messages": [{"role": "user", "content": "What is the magic number for 3?"}]})

    for message in result["messages"]:
        line = f"{message.type:>5}: {message.content or message.tool_calls}"
        if message.type == "ai":
            routing = message.response_metadata["routing"]
            line += f"\n       served by {message.response_metadata['model_name']}: {routing['reason']}"
            line += f"\n       excluded: {routing['excluded']}"
        print(line)
