"""RouterConfig: validation, YAML loading, os.environ/ references, secrets, building the engine."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from routed_llm.circuit import CircuitBreaker, RedisStore
from routed_llm.config import CircuitSettings, FallbackSettings, RouterConfig, load_configs, resolve_env
from routed_llm.engine import RoutingEngine
from routed_llm.errors import ConfigError
from routed_llm.fallback import FallbackPolicy

SECRET = "sk-config-secret-98765"
DEFAULT_MODELS = ["gpt-4o-2024-05-13", "deepseek/deepseek-chat"]  # profiled by the shipped default router


def _write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ validation
def test_defaults_and_model_id() -> None:
    cfg = RouterConfig(name="smart", candidates=DEFAULT_MODELS)
    assert cfg.model_id == "routed/smart"
    assert cfg.router == "default" and cfg.cost_weight == 0.0 and cfg.unprofiled_prior is None
    assert cfg.fallback.to_policy() == FallbackPolicy()
    assert isinstance(cfg.circuit_breaker.to_breaker(), CircuitBreaker)
    assert cfg.candidates[0] == {"model_name": "gpt-4o-2024-05-13", "litellm_params": {"model": "gpt-4o-2024-05-13"}}


def test_model_list_alias_and_fallback_fields() -> None:
    cfg = RouterConfig.parse(
        {"model_list": DEFAULT_MODELS, "fallback": {"retries_per_model": 0, "max_models": 2, "max_cost_ratio": 5}},
        name="x",
    )
    assert cfg.fallback.to_policy() == FallbackPolicy(retries_per_model=0, max_models=2, max_cost_ratio=5.0)
    assert set(FallbackSettings.model_fields) == set(FallbackPolicy.__dataclass_fields__) - {
        "wait",
        "classify",
    }  # callables stay code-only


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        pytest.param({"candidates": ["routed/other"]}, "recursion", id="recursive-string"),
        pytest.param(
            {"candidates": [{"model_name": "a", "litellm_params": {"model": "routed/a"}}]},
            "recursion",
            id="recursive-dict",
        ),
        pytest.param({"candidates": []}, "candidates", id="no-candidates"),
        pytest.param({"candidates": ["a", "a"]}, "repeated", id="duplicate"),
        pytest.param({"candidates": ["a"], "cost_weight": -1}, "cost_weight", id="negative-weight"),
        pytest.param(
            {"candidates": ["a"], "fallback": {"max_modelz": 2}}, "fallback.max_modelz", id="typo-in-fallback"
        ),
        pytest.param({"candidates": ["a"], "colour": "red"}, "colour", id="unknown-key"),
        pytest.param({"candidates": ["a"], "router": "no/such/dir"}, "no such folder", id="missing-router"),
        pytest.param({"candidates": ["a"], "unprofiled_prior": 1.5}, "unprofiled_prior", id="bad-prior"),
        pytest.param({"candidates": [{"model_name": "a", "litelm_params": {}}]}, "litelm_params", id="typo-in-entry"),
    ],
)
def test_invalid_configs_are_config_errors_naming_the_problem(raw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match="invalid router configuration") as info:
        RouterConfig.parse(raw, name="smart")
    assert needle in str(info.value)
    assert "routers.smart" in str(info.value)


def test_bad_name() -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        RouterConfig.parse({"candidates": ["a"]}, name="has space")


def test_secrets_never_printed() -> None:
    cfg = RouterConfig.parse(
        {
            "candidates": [{"model_name": "a", "litellm_params": {"model": "openai/a", "api_key": SECRET}}],
            "circuit_breaker": {"redis_url": f"redis://:{SECRET}@127.0.0.1:1/0"},
        },
        name="s",
    )
    assert SECRET not in repr(cfg) and SECRET not in str(cfg) and SECRET not in str(cfg.model_dump())
    with pytest.raises(ConfigError) as info:
        RouterConfig.parse(
            {"candidates": [{"model_name": "a", "litellm_params": {"model": "routed/a", "api_key": SECRET}}]}, name="s"
        )
    assert SECRET not in str(info.value)


def test_circuit_breaker_flag_and_redis_store() -> None:
    assert (
        RouterConfig.parse({"candidates": ["a"], "circuit_breaker": False}, name="s").circuit_breaker.to_breaker()
        is None
    )
    settings = CircuitSettings(redis_url="redis://127.0.0.1:1/0", failure_threshold=2, cooldown_s=5)
    breaker = settings.to_breaker()
    assert isinstance(breaker, CircuitBreaker) and isinstance(breaker.store, RedisStore)
    assert breaker.config.failure_threshold == 2


# ------------------------------------------------------------------------------ os.environ/
def test_env_references_resolved_at_load_except_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTED_TEST_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ROUTED_TEST_WEIGHT", "0.25")
    monkeypatch.delenv("ROUTED_TEST_KEY", raising=False)
    cfg = RouterConfig.parse(
        {
            "candidates": [
                {
                    "model_name": "a",
                    "litellm_params": {
                        "model": "openai/a",
                        "api_base": "os.environ/ROUTED_TEST_BASE",
                        "api_key": "os.environ/ROUTED_TEST_KEY",
                    },
                }
            ],
            "cost_weight": "os.environ/ROUTED_TEST_WEIGHT",
        },
        name="e",
    )
    lp = cfg.candidates[0]["litellm_params"]
    assert lp["api_base"] == "http://127.0.0.1:9/v1" and cfg.cost_weight == 0.25
    assert lp["api_key"].get_secret_value() == "os.environ/ROUTED_TEST_KEY"  # read at call time


def test_missing_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTED_TEST_MISSING", raising=False)
    with pytest.raises(ConfigError, match="ROUTED_TEST_MISSING") as info:
        resolve_env(
            {"candidates": [{"litellm_params": {"api_base": "os.environ/ROUTED_TEST_MISSING"}}]}, where="routers.x"
        )
    assert "routers.x.candidates[0].litellm_params.api_base" in str(info.value)


# ------------------------------------------------------------------------------ files
def test_load_yaml_with_several_routers_and_relative_router_path(tmp_path: Path, hash_router: Any) -> None:
    (tmp_path / "routers" / "r1").mkdir(parents=True)
    path = _write(
        tmp_path,
        """
        routers:
          smart:
            candidates: [gpt-4o-2024-05-13, deepseek/deepseek-chat]
            cost_weight: 0.5
          cheap:
            router: routers/r1
            candidates:
              - model_name: gpt-4o-mini
                litellm_params: {model: openai/fake, api_base: "http://127.0.0.1:9/v1"}
            fallback: {retries_per_model: 0}
            circuit_breaker: false
        """,
    )
    configs = load_configs(path)
    assert list(configs) == ["smart", "cheap"]
    assert configs["smart"].cost_weight == 0.5
    assert configs["cheap"].router_path() == tmp_path / "routers" / "r1"
    assert configs["cheap"].circuit_breaker.enabled is False


def test_list_and_single_shapes() -> None:
    listed = load_configs(
        {"routers": [{"name": "a", "candidates": DEFAULT_MODELS}, {"name": "b", "candidates": DEFAULT_MODELS}]}
    )
    assert list(listed) == ["a", "b"]
    single = load_configs({"name": "solo", "candidates": DEFAULT_MODELS})
    assert list(single) == ["solo"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("routers: [\n", "not valid YAML", id="yaml-syntax"),
        pytest.param("something: 1\n", "no 'routers' key", id="no-routers"),
        pytest.param("routers: 3\n", "must be a mapping", id="routers-not-mapping"),
        pytest.param("routers: {}\n", "empty", id="empty"),
        pytest.param(
            "routers:\n  a: {candidates: [x]}\n  b: {candidates: [routed/a]}\n", "routers.b.candidates", id="one-bad"
        ),
        pytest.param(
            "routers:\n  - {name: a, candidates: [x]}\n  - {name: a, candidates: [y]}\n", "defined twice", id="dupe"
        ),
    ],
)
def test_bad_files(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_configs(_write(tmp_path, text))


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ROUTED_LLM_CONFIG"):
        load_configs(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------------ engine
def test_build_engine_with_default_router_and_cache() -> None:
    cfg = RouterConfig.parse(
        {"candidates": DEFAULT_MODELS, "cost_weight": 0.2, "fallback": {"max_models": 2}}, name="d"
    )
    cache: dict[str, Any] = {}
    engine = cfg.build_engine(routers=cache)
    assert isinstance(engine, RoutingEngine)
    assert list(engine.deployments) == DEFAULT_MODELS and engine.cost_weight == 0.2
    assert engine.executor.policy.max_models == 2
    again = cfg.build_engine(routers=cache)
    assert again.router is engine.router  # one router per path, shared


def test_build_engine_with_router_object(hash_router: Any) -> None:
    engine = RouterConfig.parse(
        {"candidates": ["gpt-4o-mini", "gpt-4.1-nano"], "router": hash_router}, name="h"
    ).build_engine()
    assert engine.router is hash_router


def test_unprofiled_candidate_is_named_at_build(hash_router: Any) -> None:
    cfg = RouterConfig.parse({"candidates": ["gpt-4o-mini", "mystery-model"], "router": hash_router}, name="h")
    with pytest.raises(ConfigError, match=r"routers\.h: .*mystery-model"):
        cfg.build_engine()
    ok = RouterConfig.parse(
        {"candidates": ["gpt-4o-mini", "mystery-model"], "router": hash_router, "unprofiled_prior": 0.5}, name="h"
    )
    assert "mystery-model" in ok.build_engine().deployments


def test_router_must_be_fitted_or_a_string() -> None:
    from routed_llm.routers import make_router

    with pytest.raises(ConfigError, match="router"):
        RouterConfig.parse({"candidates": ["a"], "router": 3}, name="x")
    with pytest.raises(Exception, match="fit"):
        RouterConfig.parse({"candidates": ["a"], "router": make_router("knn")}, name="x")
