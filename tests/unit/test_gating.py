"""Capability gating and deployment parsing (pure)."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import SecretStr

from routed_llm.deployments import Capabilities, Deployment, parse_model_list
from routed_llm.errors import ConfigError, RoutingError
from routed_llm.gating import IMAGE_TOKENS, RequestNeeds, gate, needs_of, require_eligible

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
FULL = Capabilities.from_info(
    {
        "supports_function_calling": True,
        "supports_vision": True,
        "supports_response_schema": True,
        "max_input_tokens": 1000,
        "max_output_tokens": 100,
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 2e-6,
    },
    {},
)


def test_needs_of_reads_tools_images_schema_and_tokens() -> None:
    messages = [
        {"role": "system", "content": "x" * 40},
        {
            "role": "user",
            "content": [{"type": "text", "text": "y" * 40}, {"type": "image_url", "image_url": {"url": "data:"}}],
        },
    ]
    params = {"tools": [TOOL], "response_format": {"type": "json_schema", "json_schema": {}}, "max_tokens": 50}
    needs = needs_of(messages, params)
    assert needs.tools and needs.images and needs.structured
    assert needs.max_tokens == 50
    assert needs.prompt_tokens == math.ceil((80 + len(json.dumps(TOOL))) / 4) + IMAGE_TOKENS


def test_needs_of_plain_text_and_tool_choice_none() -> None:
    needs = needs_of([{"role": "user", "content": "abcd" * 10}], {"tools": [TOOL], "tool_choice": "none"})
    assert not needs.tools and not needs.images and not needs.structured
    assert needs_of([{"role": "user", "content": "abcd" * 10}], {}).prompt_tokens == 10
    assert not needs_of([], {"response_format": {"type": "json_object"}}).structured


@pytest.mark.parametrize(
    ("needs", "caps", "fragment"),
    [
        (RequestNeeds(tools=True), Capabilities.from_info({"max_input_tokens": 10}, {}), "tool calling"),
        (RequestNeeds(images=True), Capabilities.from_info({"supports_vision": False}, {}), "images"),
        (
            RequestNeeds(structured=True),
            Capabilities.from_info({"supports_response_schema": None, "max_input_tokens": 5}, {}),
            "json_schema",
        ),
        (RequestNeeds(prompt_tokens=2000), FULL, "context window"),
        (RequestNeeds(max_tokens=500), FULL, "max_output_tokens"),
    ],
)
def test_gate_excludes_with_reason(needs: RequestNeeds, caps: Capabilities, fragment: str) -> None:
    eligible, excluded = gate(
        needs, {"a": caps, "b": FULL} if fragment not in ("context window", "max_output_tokens") else {"a": caps}
    )
    assert "a" not in eligible
    assert fragment in excluded["a"]


def test_gate_keeps_capable_and_unknown_models() -> None:
    unknown = Capabilities.from_info({}, {})
    assert not unknown.known and unknown.function_calling is None
    needs = RequestNeeds(tools=True, images=True, structured=True, prompt_tokens=900, max_tokens=100)
    assert gate(needs, {"full": FULL, "unknown": unknown}) == (["full", "unknown"], {})


def test_model_info_overrides_litellm() -> None:
    caps = Capabilities.from_info(
        dict(FULL_INFO := {"supports_function_calling": True, "input_cost_per_token": 1e-6}),
        {"supports_function_calling": False, "input_cost_per_token": 0, "output_cost_per_token": 0},
    )
    assert caps.function_calling is False
    assert caps.prices_overridden and caps.price(1000, 1000) == 0.0
    assert FULL_INFO["supports_function_calling"] is True
    only_override = Capabilities.from_info({}, {"max_input_tokens": 10})
    assert only_override.known and only_override.vision is False and only_override.max_input_tokens == 10


def test_require_eligible_lists_every_candidate() -> None:
    with pytest.raises(RoutingError) as info:
        require_eligible([], {"a": "does not support tool calling", "b": "prompt too long"})
    text = str(info.value)
    assert "a: does not support tool calling" in text and "b: prompt too long" in text
    assert info.value.excluded == {"a": "does not support tool calling", "b": "prompt too long"}
    assert require_eligible(["x"], {}) == ["x"]


def test_deployment_parse_forms_and_secret() -> None:
    plain = Deployment.parse("gpt-4o-mini")
    assert (plain.model_name, plain.litellm_model, plain.api_key) == ("gpt-4o-mini", "gpt-4o-mini", None)
    dep = Deployment.parse(
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "openai/x", "api_base": "http://h/v1", "api_key": "sk-very-secret"},
            "model_info": {"max_input_tokens": 5},
        }
    )
    assert dep.litellm_model == "openai/x" and dep.params == {"api_base": "http://h/v1"}
    assert isinstance(dep.api_key, SecretStr)
    assert "sk-very-secret" not in repr(dep) and "sk-very-secret" not in str(dep.as_entry())
    assert dep.call_params()["api_key"] == "sk-very-secret"
    assert dep.call_params(SecretStr("override"))["api_key"] == "override"
    assert dep.model_info == {"max_input_tokens": 5}


def test_deployment_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTED_TEST_KEY", "from-env")
    dep = Deployment.parse(
        {"model_name": "m", "litellm_params": {"model": "openai/m", "api_key": "os.environ/ROUTED_TEST_KEY"}}
    )
    assert dep.call_params()["api_key"] == "from-env"


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ([], "non-empty"),
        (["a", "a"], "unique"),
        ([{"model_name": "a", "litellm_params": {"model": "x"}, "oops": 1}], "unknown keys"),
        ([{"litellm_params": "x"}], "litellm_params"),
        ([3], "LiteLLM id string"),
        ([{"model_name": "a", "litellm_params": {"model": "x", "api_key": 5}}], "api_key"),
    ],
)
def test_parse_model_list_errors(entries: list, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_model_list(entries)


def test_other_credentials_are_secret_too() -> None:
    dep = Deployment.parse(
        {
            "model_name": "m",
            "litellm_params": {
                "model": "bedrock/m",
                "aws_secret_access_key": "AWS-SECRET",
                "vertex_credentials": "{json}",
                "max_tokens": 5,
            },
        }
    )
    assert isinstance(dep.params["aws_secret_access_key"], SecretStr) and dep.params["max_tokens"] == 5
    assert "AWS-SECRET" not in repr(dep.as_entry()) and "{json}" not in str(dep.as_entry())
    assert dep.call_params()["aws_secret_access_key"] == "AWS-SECRET"
    assert Deployment.parse(dep.as_entry()).call_params() == dep.call_params()  # round-trips
