"""Demonstrates a LangChain chain (prompt | RoutedChatModel | parser) routed per question by the default router.

Runs offline: the candidates are deployments of profiled models served by the package's local
OpenAI-compatible server, reached through LiteLLM exactly as a real provider or gateway would be.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from routed_llm import RoutedChatModel
from routed_llm.testing import LocalOpenAIServer

# Names the default router has profiles for (LiteLLM ids); each is served by the local server here.
CANDIDATES = [
    "gpt-4o-2024-05-13",
    "gemini-3.1-pro-preview",
    "deepseek/deepseek-chat",
    "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct",
]
QUESTIONS = [
    "Prove that the sum of two odd integers is even, step by step.",
    "Which amendment to the US constitution abolished slavery?",
    "Summarise the causes of World War I in two sentences.",
]

with LocalOpenAIServer() as server:
    model_list = [
        {
            "model_name": name,
            "litellm_params": {"model": f"openai/{name}", "api_base": server.base_url, "api_key": "sk-local"},
        }
        for name in CANDIDATES
    ]
    llm = RoutedChatModel(model_list=model_list, cost_weight=1.0)  # router=None: the shipped default router
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{question}")])
    chain = prompt | llm | StrOutputParser()

    for question in QUESTIONS:
        print(f"Q: {question}\nA: {chain.invoke({'question': question})}\n")

    # Without the parser, the message shows who answered, why, and what it cost.
    message = (prompt | llm).invoke({"question": QUESTIONS[1]})
    meta, routing = message.response_metadata, message.response_metadata["routing"]
    print(f"served by {meta['model_name']} (via {meta['litellm_model']}) for ${meta['cost_usd']:.6f}")
    print(f"why: {routing['reason']}")
    for name in routing["ranking"]:
        print(f"  {name:48s} P(correct)={routing['scores'][name]:.3f}  expected ${routing['expected_costs'][name]:.6f}")
