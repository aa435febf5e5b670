"""The exception tree of routed-llm.

Every error this package raises on purpose derives from `RoutedLLMError`::

    RoutedLLMError(Exception)
    ├── ConfigError(ValueError)            bad hyperparameter, configuration or argument
    ├── NotFittedError(ValueError, AttributeError)
    │                                      a fitted-only method called before `fit`/`load`
    ├── DataError(ValueError)              a dataset, profile or prompt list is malformed
    │   └── ArtifactError                  a saved router is truncated, tampered or foreign
    ├── RoutingError                       no candidate is eligible for the request
    ├── IncompleteStreamError              a stream ended without a finish reason (dropped)
    └── AllModelsFailedError               fallback exhausted every eligible candidate
        └── StreamInterruptedError         a stream failed after text reached the caller

Provider errors that are the caller's own fault (for example a `litellm.BadRequestError`
for a malformed tool schema) propagate unchanged: LiteLLM already maps every provider onto
one OpenAI-style hierarchy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AllModelsFailedError",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "IncompleteStreamError",
    "NotFittedError",
    "RoutedLLMError",
    "RoutingError",
    "StreamInterruptedError",
]


class RoutedLLMError(Exception):
    """Base class of every error raised by routed-llm."""


class ConfigError(RoutedLLMError, ValueError):
    """A hyperparameter, configuration value or argument is invalid."""


class NotFittedError(RoutedLLMError, ValueError, AttributeError):
    """A method that needs a fitted router was called on an unfitted one."""


class DataError(RoutedLLMError, ValueError):
    """A dataset, model profile or prompt list is malformed or inconsistent."""


class ArtifactError(DataError):
    """A saved router artifact is missing, truncated, tampered with or not ours."""


class RoutingError(RoutedLLMError):
    """No candidate model is eligible for this request.

    `excluded` maps each candidate to the reason it was excluded.
    """

    def __init__(self, message: str, *, excluded: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.excluded: dict[str, str] = dict(excluded or {})


class AllModelsFailedError(RoutedLLMError):
    """Every eligible candidate failed; `attempts` lists what was tried, in order."""

    def __init__(self, message: str, *, attempts: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.attempts: tuple[Any, ...] = tuple(attempts)


class IncompleteStreamError(RoutedLLMError):
    """A stream ended without a final chunk (no finish_reason): the connection was dropped."""


class StreamInterruptedError(AllModelsFailedError):
    """A stream failed after content reached the caller; `attempts` records what was streamed.

    The text already streamed is never spliced with another model's continuation.
    """
