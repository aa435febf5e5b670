"""Router configurations from YAML or dicts: `RouterConfig` validates one and builds its engine.

One configuration names a routed model: its candidates (LiteLLM ``model_list`` entries or
plain ids), the router that scores them, the cost trade-off, the fallback policy and the
circuit breaker. The LiteLLM provider serves each one as ``routed/<name>``; a file holds
several::

    routers:
      smart:
        candidates:
          - gpt-4o-mini
          - model_name: claude-haiku-4-5
            litellm_params: {model: anthropic/claude-haiku-4-5, api_key: os.environ/ANTHROPIC_API_KEY}
        router: default                 # or a folder saved with Router.save (relative to this file)
        cost_weight: 0.3
        fallback: {retries_per_model: 1, max_models: 3, max_cost_ratio: 10}
        circuit_breaker: {failure_threshold: 5, cooldown_s: 30, redis_url: os.environ/REDIS_URL}
        unprofiled_prior: null

``os.environ/NAME`` values are read from the environment as LiteLLM's proxy config does:
at load time for every value except ``api_key``, which stays a reference read at call time
(so a file loads without the key set, and the key never sits in the configuration). Keys
and ``redis_url`` are `pydantic.SecretStr`: no repr, log or error message shows them.

This is the only pydantic ``Settings``-style model of the package (STYLE.md §2.5).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .errors import ConfigError

if TYPE_CHECKING:
    from .circuit import CircuitBreaker
    from .engine import RoutingEngine
    from .fallback import FallbackPolicy
    from .routers import Router

__all__ = [
    "CircuitSettings",
    "FallbackSettings",
    "RouterConfig",
    "load_configs",
    "resolve_env",
]

ENV_PREFIX = "os.environ/"
PROVIDER_PREFIX = "routed/"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_LAZY_ENV_KEYS = frozenset({"api_key"})  # read at call time by routed_llm.deployments


def resolve_env(value: Any, *, where: str = "config") -> Any:
    """Replace ``"os.environ/NAME"`` strings by ``$NAME``, recursively (``api_key`` values excepted).

    Raises:
        ConfigError: A referenced variable is not set (the message names it and where it is used).
    """
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        var = value[len(ENV_PREFIX) :]
        if var not in os.environ:
            msg = f"{where}: environment variable {var!r} is not set (referenced as {value!r}); export it or edit the config"  # noqa: E501
            raise ConfigError(msg)
        return os.environ[var]
    if isinstance(value, Mapping):
        return {k: (v if k in _LAZY_ENV_KEYS else resolve_env(v, where=f"{where}.{k}")) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_env(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True)


class FallbackSettings(_Strict):
    """`routed_llm.fallback.FallbackPolicy` fields (same names, same defaults)."""

    retries_per_model: int = Field(default=2, ge=0)
    """Extra tries of the same model on transient errors."""
    max_models: int = Field(default=3, ge=1)
    """How many candidates of the ranking may be called."""
    wait_initial_s: float = Field(default=0.25, ge=0)
    """First backoff wait (doubles per retry, plus jitter)."""
    wait_max_s: float = Field(default=8.0, ge=0)
    """Longest backoff wait."""
    max_retry_after_s: float = Field(default=20.0, ge=0)
    """Honour a provider's Retry-After up to this many seconds."""
    max_cost_ratio: float | None = Field(default=None, ge=1)
    """A fallback may cost at most this many times the routed choice (None: no ceiling)."""

    def to_policy(self) -> FallbackPolicy:
        """The `FallbackPolicy` these settings describe."""
        from .fallback import FallbackPolicy

        return FallbackPolicy(**self.model_dump())


class CircuitSettings(_Strict):
    """`routed_llm.circuit.CircuitBreaker` settings; ``redis_url`` shares the state across processes."""

    enabled: bool = True
    """False: no circuit breaker."""
    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open a model's circuit."""
    window_s: float = Field(default=60.0, gt=0)
    """Failures further apart than this do not add up."""
    cooldown_s: float = Field(default=30.0, ge=0)
    """How long an open circuit skips the model before one probe call."""
    redis_url: SecretStr | None = None
    """``redis://host:port/db``: share circuit state between processes (proxy replicas)."""
    prefix: str = "routed-llm:circuit:"
    """Redis key prefix."""

    def to_breaker(self) -> CircuitBreaker | None:
        """The breaker (None when disabled); Redis-backed when `redis_url` is set."""
        if not self.enabled:
            return None
        from .circuit import CircuitBreaker, RedisStore

        store = RedisStore(url=self.redis_url.get_secret_value(), prefix=self.prefix) if self.redis_url else None
        return CircuitBreaker(
            failure_threshold=self.failure_threshold,
            window_s=self.window_s,
            cooldown_s=self.cooldown_s,
            store=store,
        )


class RouterConfig(_Strict):
    """One routed model: candidates, router, cost trade-off, fallback and circuit breaker.

    Example:
        >>> cfg = RouterConfig(name="smart", candidates=["gpt-4o-mini", "claude-haiku-4-5"], cost_weight=0.3)
        >>> cfg.model_id
        'routed/smart'
    """

    name: str
    """The routed model's name: served as ``routed/<name>``."""
    candidates: list[Any] = Field(alias="model_list", min_length=1)
    """LiteLLM ``model_list`` entries or plain LiteLLM ids; ``model_name`` is the profiled model."""
    router: Any = "default"
    """``"default"`` (the shipped router), the folder of a saved router (relative to the config
    file), or, in code, a fitted `routed_llm.routers.Router`."""
    cost_weight: float = Field(default=0.0, ge=0)
    """Quality/cost trade-off (0 = quality only); per call: ``cost_weight=``."""
    fallback: FallbackSettings = Field(default_factory=FallbackSettings)
    """Retries and fallback across the ranking."""
    circuit_breaker: CircuitSettings = Field(default_factory=CircuitSettings)
    """Cool-down of failing models (``false`` disables it)."""
    unprofiled_prior: float | None = Field(default=None, ge=0, le=1)
    """P(correct) for candidates the router has no profile for (None: such a candidate is an error)."""
    base_dir: Path | None = Field(default=None, exclude=True, repr=False)
    """Folder relative router paths are resolved against (the config file's folder)."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            msg = f"name {value!r} must be letters, digits, '_', '-' or '.' (it becomes routed/<name>)"
            raise ValueError(msg)
        return value

    @field_validator("circuit_breaker", mode="before")
    @classmethod
    def _breaker_flag(cls, value: Any) -> Any:
        return {"enabled": bool(value)} if isinstance(value, bool) or value is None else value

    @field_validator("candidates")
    @classmethod
    def _parse_candidates(cls, value: list[Any]) -> list[Any]:
        from .deployments import parse_model_list

        entries = [d.as_entry() for d in parse_model_list(value)]  # validates; keys become SecretStr
        for i, entry in enumerate(entries):
            target = entry["litellm_params"]["model"]
            if isinstance(target, str) and target.startswith(PROVIDER_PREFIX):
                msg = (
                    f"candidates[{i}] is {target!r}: a routed model cannot be a candidate of a routed "
                    "model (recursion); list the underlying LiteLLM models instead"
                )
                raise ValueError(msg)
        return entries

    @field_validator("router")
    @classmethod
    def _check_router_type(cls, value: Any) -> Any:
        from .routers import Router

        if isinstance(value, Router):
            value.check_is_fitted()
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str) or not value:
            msg = f"router must be 'default', a saved router's folder or a fitted Router, got {type(value).__name__}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_router(self) -> RouterConfig:
        if isinstance(self.router, str) and self.router != "default" and not self.router_path().is_dir():
            msg = (
                f"router {self.router!r}: no such folder ({self.router_path()}); "
                "give 'default' or a folder saved with Router.save"
            )
            raise ValueError(msg)
        return self

    @property
    def model_id(self) -> str:
        """The LiteLLM model id that serves this configuration (``routed/<name>``)."""
        return PROVIDER_PREFIX + self.name

    def router_path(self) -> Path:
        """The router folder, resolved against `base_dir` (meaningless for ``"default"`` or a Router)."""
        path = Path(str(self.router)).expanduser()
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def check_not_recursive(self, provider: str) -> None:
        """Refuse candidates served by `provider` itself (``<provider>/...``).

        Raises:
            ConfigError: A candidate is a model of `provider`.
        """
        for i, entry in enumerate(self.candidates):
            target = entry["litellm_params"]["model"]
            if target.startswith(provider + "/"):
                msg = (
                    f"routers.{self.name}.candidates[{i}] is {target!r}: "
                    f"a model of the {provider!r} provider itself (recursion)"
                )
                raise ConfigError(msg)

    @classmethod
    def parse(
        cls, data: Mapping[str, Any] | RouterConfig, *, name: str | None = None, base_dir: Path | None = None
    ) -> RouterConfig:
        """Validate a mapping (``os.environ/`` resolved) into a `RouterConfig`.

        Raises:
            ConfigError: Any invalid value; the message lists each problem with its location.
        """
        if isinstance(data, RouterConfig):
            return data if name is None or name == data.name else data.model_copy(update={"name": name})
        if not isinstance(data, Mapping):
            msg = f"router config {name or ''!r} must be a mapping, got {type(data).__name__}"
            raise ConfigError(msg)
        raw = dict(data)
        if name is not None:
            if raw.get("name", name) != name:
                msg = f"router config {name!r} has a different name inside: {raw['name']!r}"
                raise ConfigError(msg)
            raw["name"] = name
        label = f"routers.{raw.get('name', '?')}"
        raw = resolve_env(raw, where=label)
        if base_dir is not None:
            raw["base_dir"] = base_dir
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_explain(label, exc)) from None

    def build_engine(self, *, routers: MutableMapping[str, Router] | None = None) -> RoutingEngine:
        """Build the `RoutingEngine` (loads the router; `routers` caches loaded routers by path).

        Raises:
            ConfigError: A candidate has no profile in the router (and no `unprofiled_prior`).
            ArtifactError: The router folder is damaged.
        """
        from .deployments import parse_model_list
        from .engine import RoutingEngine

        if isinstance(self.router, str):
            cache: MutableMapping[str, Router] = {} if routers is None else routers
            key = "default" if self.router == "default" else str(self.router_path().resolve())
            if key not in cache:
                cache[key] = _load_router(self.router, self.router_path())
            router = cache[key]
        else:
            router = self.router
        try:
            return RoutingEngine(
                parse_model_list(self.candidates),
                router,
                cost_weight=self.cost_weight,
                policy=self.fallback.to_policy(),
                breaker=self.circuit_breaker.to_breaker(),
                unprofiled_prior=self.unprofiled_prior,
            )
        except ConfigError as exc:
            msg = f"routers.{self.name}: {exc}"
            raise ConfigError(msg) from exc


def _load_router(spec: str, path: Path) -> Router:
    if spec == "default":
        from .default import default_router

        return default_router()
    from .routers import Router

    return Router.load(path)


def _explain(label: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        text = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{label}.{loc}: {text}" if loc else f"{label}: {text}")
    return "invalid router configuration: " + "; ".join(problems)


def load_configs(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, RouterConfig]:
    """Load every router configuration of a YAML file or mapping, by name.

    Accepted shapes: ``{"routers": {name: {...}, ...}}``, ``{"routers": [{"name": ...}, ...]}``,
    or a single configuration ``{"name": ..., "candidates": [...]}``. Relative router paths
    are resolved against the file's folder.

    Raises:
        ConfigError: The file is missing or not YAML, a name repeats, or any config is invalid.
    """
    base_dir: Path | None = None
    if isinstance(source, Mapping):
        data: Any = source
    else:
        path = Path(source).expanduser()
        data = _read_yaml(path)
        base_dir = path.resolve().parent
    if not isinstance(data, Mapping):
        msg = f"{source}: expected a mapping with a 'routers' key, got {type(data).__name__}"
        raise ConfigError(msg)
    if "routers" not in data:
        if "candidates" in data or "model_list" in data:
            one = RouterConfig.parse(data, base_dir=base_dir)
            return {one.name: one}
        msg = f"{source}: no 'routers' key; expected routers: {{<name>: {{candidates: [...], ...}}}}"
        raise ConfigError(msg)
    routers = data["routers"]
    if isinstance(routers, Mapping):
        items = [(str(k), v) for k, v in routers.items()]
    elif isinstance(routers, list):
        items = [(str(v.get("name")) if isinstance(v, Mapping) else "?", v) for v in routers]
    else:
        msg = f"{source}: 'routers' must be a mapping of name -> config or a list of configs"
        raise ConfigError(msg)
    out: dict[str, RouterConfig] = {}
    for name, raw in items:
        if name in out:
            msg = f"{source}: router name {name!r} is defined twice"
            raise ConfigError(msg)
        out[name] = RouterConfig.parse(raw, name=name if isinstance(routers, Mapping) else None, base_dir=base_dir)
    if not out:
        msg = f"{source}: 'routers' is empty"
        raise ConfigError(msg)
    return out


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = (
            f"cannot read router config {path}: {exc.strerror or exc}; "
            "set ROUTED_LLM_CONFIG or pass path= to an existing YAML file"
        )
        raise ConfigError(msg) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{path} is not valid YAML: {exc}"
        raise ConfigError(msg) from exc
