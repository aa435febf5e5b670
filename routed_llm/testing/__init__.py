"""Test helpers shipped with routed-llm: a deterministic local OpenAI-compatible server.

Light to import (stdlib only; no LiteLLM). See `routed_llm.testing.server` for the API.
"""

from __future__ import annotations

from ._behavior import Behavior as Behavior
from ._behavior import Fault as Fault
from ._behavior import answer_key_for_accuracy as answer_key_for_accuracy
from ._behavior import prompt_key as prompt_key
from ._server import LocalOpenAIServer as LocalOpenAIServer

__all__ = ["Behavior", "Fault", "LocalOpenAIServer", "answer_key_for_accuracy", "prompt_key"]
