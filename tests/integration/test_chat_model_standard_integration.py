"""LangChain's standard integration suite on RoutedChatModel, over real HTTP on 127.0.0.1.

Every call goes RoutedChatModel -> router (real MiniLM embeddings) -> LiteLLM
(``openai/...`` with ``api_base``) -> the package's local OpenAI-compatible server, which
answers text, streams with usage, and emits tool calls generated from the bound schemas.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from routed_llm.chat_model import RoutedChatModel

pytestmark = pytest.mark.slow


class TestRoutedChatModelIntegration(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _routed_setup(self, minilm_router: Any, make_model_list: Any) -> None:
        type(self)._params = {
            "model_list": make_model_list(names=("gpt-4o-mini", "claude-haiku-4-5")),
            "router": minilm_router,
        }

    @property
    def chat_model_class(self) -> type[RoutedChatModel]:
        return RoutedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "claude-haiku-4-5"

    @pytest.mark.xfail(
        reason="the suite downloads its test image from raw.githubusercontent.com and this CI is offline; "
        "image inputs are tested against the local server in tests/unit/test_chat_model.py"
    )
    def test_image_inputs(self, model: Any) -> None:
        super().test_image_inputs(model)

    @pytest.mark.xfail(
        reason="the suite downloads its test image from raw.githubusercontent.com and this CI is offline"
    )
    def test_image_tool_message(self, model: Any) -> None:
        super().test_image_tool_message(model)
