"""Every exception class LiteLLM exports is classified (httpx's test_httpcore_all_exceptions_mapped)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import httpx
import pytest

from routed_llm.errors import AllModelsFailedError, DataError, RoutingError
from routed_llm.fallback import IncompleteStreamError, classify, retry_after_seconds
from routed_llm.transport import litellm_module

# The reviewed decision for every exception class LiteLLM 1.106 exports. A new LiteLLM
# release that adds a class makes test_every_exported_class_is_in_the_table fail: decide
# what it means, add it here and to the table in docs/fallback.md.
EXPECTED: dict[str, str] = {
    "RateLimitError": "retry",
    "Timeout": "retry",
    "APIConnectionError": "retry",
    "InternalServerError": "retry",
    "ServiceUnavailableError": "retry",
    "ContextWindowExceededError": "fallback",
    "ContentPolicyViolationError": "fallback",
    "NotFoundError": "fallback",
    "AuthenticationError": "fallback",
    "PermissionDeniedError": "fallback",
    "PaymentRequiredError": "fallback",
    "BadGatewayError": "fallback",
    "MidStreamFallbackError": "fallback",
    "APIResponseValidationError": "fallback",
    "JSONSchemaValidationError": "fallback",
    "LiteLLMUnknownProvider": "fallback",
    "ModelNotMappedError": "fallback",
    "OpenAIError": "fallback",
    "RouterRateLimitError": "fallback",
    "RouterRateLimitErrorBasic": "fallback",
    "APIError": "fallback",  # status 500 instance below; by status otherwise
    "MockException": "fallback",  # status 500 instance below
    "BadRequestError": "raise",
    "InvalidRequestError": "raise",
    "UnsupportedParamsError": "raise",
    "UnprocessableEntityError": "raise",
    "ImageFetchError": "raise",
    "RejectedRequestError": "raise",
    "VectorStoreSearchError": "raise",
    "BudgetExceededError": "raise",
    "GuardrailRaisedException": "raise",
    "BlockedPiiEntityError": "raise",
    "SensitiveDataRouteException": "raise",
    "ModifyResponseException": "raise",
    "ToolLoopMaxRoundsExceeded": "raise",
}

_REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
_ARGS: dict[str, Any] = {
    "message": "boom",
    "llm_provider": "openai",
    "model": "m",
    "status_code": 500,
    "response": httpx.Response(500, request=_REQUEST),
    "request": _REQUEST,
    "raw_response": "{}",
    "schema": "{}",
    "current_cost": 2.0,
    "max_budget": 1.0,
    "cooldown_time": 5.0,
    "enable_pre_call_checks": False,
    "cooldown_list": [],
    "max_rounds": 3,
    "failures": [],
    "entity_type": "EMAIL",
    "request_data": {},
    "route_to_model": "m2",
    "session_id": "s",
}


def exported_exception_classes() -> list[type[BaseException]]:
    """Every BaseException subclass defined by LiteLLM and reachable from `litellm` or `litellm.exceptions`."""
    litellm = litellm_module()
    found: dict[str, type[BaseException]] = {}
    for module in (litellm, litellm.exceptions):
        for name in dir(module):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("litellm"):
                found[obj.__qualname__] = obj
    return sorted(found.values(), key=lambda c: c.__qualname__)


def make(cls: type[BaseException]) -> BaseException:
    """An instance of `cls` built from its constructor's required parameters."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    kwargs = {p.name: _ARGS[p.name] for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD}
    return cls(**kwargs)


def test_litellm_exports_exceptions() -> None:
    assert len(exported_exception_classes()) >= 30


def test_every_exported_class_is_in_the_table() -> None:
    names = {c.__qualname__ for c in exported_exception_classes()}
    missing = sorted(names - EXPECTED.keys())
    assert not missing, f"LiteLLM exports exception classes with no reviewed classification: {missing}"
    gone = sorted(EXPECTED.keys() - names)
    assert not gone, f"classes in the table that LiteLLM no longer exports: {gone}"


@pytest.mark.parametrize("cls", exported_exception_classes(), ids=lambda c: c.__qualname__)
def test_every_exported_class_is_classified(cls: type[BaseException]) -> None:
    action = classify(make(cls))
    assert action in ("retry", "fallback", "raise")
    assert action == EXPECTED[cls.__qualname__]


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (400, "raise"),
        (422, "raise"),
        (401, "fallback"),
        (404, "fallback"),
        (408, "retry"),
        (429, "retry"),
        (500, "fallback"),
        (502, "fallback"),
        (599, "fallback"),
        (None, "fallback"),
    ],
)
def test_generic_api_error_by_status(status: int | None, action: str) -> None:
    exc = litellm_module().APIError(status_code=status, message="x", llm_provider="openai", model="m")  # type: ignore[arg-type]
    assert classify(exc) == action


def test_unknown_litellm_subclass_inherits_nearest_known_base() -> None:
    class NewOverloadError(litellm_module().ServiceUnavailableError):  # type: ignore[misc, name-defined]
        pass

    assert classify(NewOverloadError(message="x", llm_provider="openai", model="m")) == "retry"


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("x"),
        DataError("x"),
        RoutingError("x"),
        AllModelsFailedError("x"),
        KeyError("k"),
        KeyboardInterrupt(),
        asyncio.CancelledError(),
        SystemExit(1),
        RuntimeError("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_non_provider_errors_raise(exc: BaseException) -> None:
    assert classify(exc) == "raise"


def test_internal_and_transport_errors() -> None:
    assert classify(IncompleteStreamError("cut")) == "retry"
    assert classify(httpx.ReadTimeout("slow", request=_REQUEST)) == "retry"
    assert classify(httpx.RemoteProtocolError("eof", request=_REQUEST)) == "retry"
    assert classify(httpx.HTTPStatusError("x", request=_REQUEST, response=httpx.Response(500))) == "raise"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_retry_after_from_response_headers(headers: dict[str, str], expected: float | None) -> None:
    litellm = litellm_module()
    exc = litellm.RateLimitError(
        message="slow down",
        llm_provider="openai",
        model="m",
        response=httpx.Response(429, headers=headers, request=_REQUEST),
    )
    assert retry_after_seconds(exc) == expected


def test_retry_after_prefers_litellm_response_headers() -> None:
    exc = litellm_module().InternalServerError(message="x", llm_provider="openai", model="m")
    exc.litellm_response_headers = httpx.Headers({"retry-after": "7"})  # type: ignore[attr-defined]
    assert retry_after_seconds(exc) == 7.0
    assert retry_after_seconds(ValueError("x")) is None
