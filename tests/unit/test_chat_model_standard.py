"""LangChain's standard unit suite (`ChatModelUnitTests`) on RoutedChatModel (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from routed_llm.chat_model import RoutedChatModel


class TestRoutedChatModelUnit(ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _routed_router(self, hash_router: Any) -> None:
        type(self)._router = hash_router

    @property
    def chat_model_class(self) -> type[RoutedChatModel]:
        return RoutedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model_list": [
                {
                    "model_name": "gpt-4o-mini",
                    "litellm_params": {
                        "model": "openai/fake-a",
                        "api_base": "http://127.0.0.1:9/v1",
                        "api_key": "sk-unit",
                    },
                },
                "claude-haiku-4-5",
            ],
            "router": self._router,
            "api_key": "test",
        }

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "claude-haiku-4-5"
