"""routed-llm: capability-based LLM routing for LangChain and LiteLLM.

Importing this package is cheap: it loads neither torch, sentence-transformers nor
LiteLLM. Heavy pieces (the chat model, the embedder, the LiteLLM provider) are imported on
first attribute access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AllModelsFailedError,
    ArtifactError,
    ConfigError,
    DataError,
    NotFittedError,
    RoutedLLMError,
    RoutingError,
)

if TYPE_CHECKING:
    from .calibration import calibrate
    from .chat_model import RoutedChatModel
    from .data import RoutingDataset, load_dataset
    from .default import default_router
    from .routers import Router, make_router
    from .types import Attempt, ModelProfile, RouteDecision

_LAZY = {
    "RoutedChatModel": "routed_llm.chat_model",
    "Router": "routed_llm.routers",
    "make_router": "routed_llm.routers",
    "default_router": "routed_llm.default",
    "calibrate": "routed_llm.calibration",
    "RoutingDataset": "routed_llm.data",
    "load_dataset": "routed_llm.data",
    "Attempt": "routed_llm.types",
    "ModelProfile": "routed_llm.types",
    "RouteDecision": "routed_llm.types",
}

__all__ = [
    "AllModelsFailedError",
    "ArtifactError",
    "Attempt",
    "ConfigError",
    "DataError",
    "ModelProfile",
    "NotFittedError",
    "RouteDecision",
    "RoutedChatModel",
    "RoutedLLMError",
    "Router",
    "RoutingDataset",
    "RoutingError",
    "__version__",
    "calibrate",
    "default_router",
    "load_dataset",
    "make_router",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("routed-llm")
        except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
            version = "0.0.0"
        globals()["__version__"] = version
        return version
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'routed_llm' has no attribute {name!r}"
    raise AttributeError(msg)
