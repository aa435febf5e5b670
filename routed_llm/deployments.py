"""Candidates as LiteLLM users write them: `Deployment`, parsed from a ``model_list`` entry.

A deployment has two names. ``model_name`` is what the router knows the model by (its
profile, its capabilities and prices); ``litellm_params["model"]`` says how to reach it.
So a deployment of ``gpt-4o-mini`` behind a gateway or a local test server routes exactly
like the original::

    {"model_name": "gpt-4o-mini",
     "litellm_params": {"model": "openai/fake-a", "api_base": "http://127.0.0.1:8099/v1",
                        "api_key": "sk-..."},
     "model_info": {"max_input_tokens": 8192}}

A plain string ``"gpt-4o-mini"`` is the same as ``{"model_name": "gpt-4o-mini",
"litellm_params": {"model": "gpt-4o-mini"}}``.

Capabilities and prices come from ``litellm.get_model_info(model_name)``, else from
``get_model_info(litellm_params["model"])``, then every key of ``model_info`` overrides
them. They are resolved on first use (LiteLLM is imported lazily), never at construction.

The API key and every other credential parameter (`is_secret_param`: ``aws_secret_access_key``,
``vertex_credentials``, ``*_key``, ``*_secret``, ``*_token``, ...) are kept as
`pydantic.SecretStr`: they appear in no repr, log, metadata or error message.
``"os.environ/NAME"`` (the LiteLLM proxy syntax) reads ``$NAME`` at call time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import SecretStr

from .errors import ConfigError

__all__ = ["CAPABILITY_KEYS", "Capabilities", "Deployment", "is_secret_param", "parse_model_list"]

CAPABILITY_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "max_input_tokens",
    "max_output_tokens",
    "supports_function_calling",
    "supports_vision",
    "supports_response_schema",
)
"""The `model_info` keys that gating and pricing read (each may be overridden per deployment)."""

_ENV_PREFIX = "os.environ/"
_SECRET_NAMES = frozenset(
    {
        "api_key",
        "vertex_credentials",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "azure_ad_token",
        "client_secret",
        "password",
    }
)
_SECRET_SUFFIXES = ("_key", "_secret", "_token", "_credentials", "_password")


def is_secret_param(name: str) -> bool:
    """Is the LiteLLM parameter `name` a credential (kept as a `SecretStr`, scrubbed from errors)?"""
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES)


def _reveal(value: Any) -> Any:
    """The raw value of a secret (``os.environ/NAME`` resolved), or `value` unchanged."""
    if not isinstance(value, SecretStr):
        return value
    raw = value.get_secret_value()
    return os.environ.get(raw[len(_ENV_PREFIX) :], "") if raw.startswith(_ENV_PREFIX) else raw


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What gating and pricing know about one deployment (None = unknown).

    Attributes:
        known: LiteLLM has an entry for the model, or `model_info` sets some key. When
            a model is known, a missing ``supports_*`` flag means "not supported" (LiteLLM's
            own reading); for a wholly unknown model every capability is left unknown.
        function_calling: Supports ``tools``.
        vision: Accepts image inputs.
        response_schema: Supports ``response_format={"type": "json_schema", ...}``.
        max_input_tokens: Context window for the prompt.
        max_output_tokens: Largest ``max_tokens`` it accepts.
        input_cost_per_token: USD per prompt token.
        output_cost_per_token: USD per completion token.
        prices_overridden: The prices come from the deployment's `model_info`.
    """

    known: bool = False
    function_calling: bool | None = None
    vision: bool | None = None
    response_schema: bool | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    prices_overridden: bool = False

    @classmethod
    def from_info(cls, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> Capabilities:
        """Merge LiteLLM's entry `base` with the deployment's `overrides` (pure)."""
        merged = {k: base.get(k) for k in CAPABILITY_KEYS}
        merged.update({k: overrides[k] for k in CAPABILITY_KEYS if k in overrides})
        known = bool(base) or any(k in overrides for k in CAPABILITY_KEYS)

        def flag(key: str) -> bool | None:
            value = merged.get(key)
            if value is None:
                return False if known else None
            return bool(value)

        return cls(
            known=known,
            function_calling=flag("supports_function_calling"),
            vision=flag("supports_vision"),
            response_schema=flag("supports_response_schema"),
            max_input_tokens=_opt_int(merged.get("max_input_tokens")),
            max_output_tokens=_opt_int(merged.get("max_output_tokens")),
            input_cost_per_token=_opt_price(merged.get("input_cost_per_token")),
            output_cost_per_token=_opt_price(merged.get("output_cost_per_token")),
            prices_overridden=any(k in overrides for k in ("input_cost_per_token", "output_cost_per_token")),
        )

    @property
    def priced(self) -> bool:
        """Both token prices are known."""
        return self.input_cost_per_token is not None and self.output_cost_per_token is not None

    def price(self, input_tokens: float, output_tokens: float) -> float | None:
        """USD for a call of that many tokens, or None without prices."""
        if not self.priced:
            return None
        return float(
            input_tokens * (self.input_cost_per_token or 0.0) + output_tokens * (self.output_cost_per_token or 0.0)
        )


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """One candidate: the profiled model name, how to reach it, and its overrides.

    Attributes:
        model_name: The name the router knows the model by (its profile).
        litellm_model: The LiteLLM model id to call (``litellm_params["model"]``).
        params: The other ``litellm_params`` (``api_base``, ``api_version``, ...), without the key.
        api_key: The key for this deployment, or None (LiteLLM then reads the provider's env var).
        model_info: Per-deployment overrides of capabilities and prices.
    """

    model_name: str
    litellm_model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    api_key: SecretStr | None = field(default=None, repr=False)
    model_info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, entry: str | Mapping[str, Any] | Deployment, *, index: int = 0) -> Deployment:
        """Parse one ``model_list`` entry (a dict or a plain LiteLLM id).

        Raises:
            ConfigError: The entry is malformed (the message never includes the key).
        """
        if isinstance(entry, Deployment):
            return entry
        if isinstance(entry, str):
            if not entry.strip():
                msg = f"model_list[{index}] is an empty string; give a LiteLLM model id such as 'gpt-4o-mini'"
                raise ConfigError(msg)
            return cls(model_name=entry, litellm_model=entry)
        if not isinstance(entry, Mapping):
            msg = (
                f"model_list[{index}] must be a LiteLLM id string or a dict with 'model_name' and "
                f"'litellm_params', got {type(entry).__name__}"
            )
            raise ConfigError(msg)
        unknown = sorted(set(entry) - {"model_name", "litellm_params", "model_info"})
        if unknown:
            valid = ["litellm_params", "model_info", "model_name"]
            msg = f"model_list[{index}] has unknown keys {unknown}; valid keys: {valid}"
            raise ConfigError(msg)
        lp = entry.get("litellm_params") or {}
        if not isinstance(lp, Mapping):
            msg = f"model_list[{index}]['litellm_params'] must be a dict"
            raise ConfigError(msg)
        name = entry.get("model_name") or lp.get("model")
        model = lp.get("model") or name
        if not isinstance(name, str) or not name or not isinstance(model, str):
            msg = f"model_list[{index}] needs 'model_name' (the profiled model) or litellm_params['model']"
            raise ConfigError(msg)
        info = entry.get("model_info") or {}
        if not isinstance(info, Mapping):
            msg = f"model_list[{index}]['model_info'] must be a dict"
            raise ConfigError(msg)
        key = lp.get("api_key")
        if key is not None and not isinstance(key, str | SecretStr):
            msg = f"model_list[{index}]: litellm_params['api_key'] must be a string"
            raise ConfigError(msg)
        params = {
            k: SecretStr(v) if is_secret_param(k) and isinstance(v, str) else v
            for k, v in lp.items()
            if k not in ("model", "api_key")
        }
        secret = key if isinstance(key, SecretStr) or key is None else SecretStr(key)
        return cls(model_name=name, litellm_model=model, params=params, api_key=secret, model_info=dict(info))

    @cached_property
    def capabilities(self) -> Capabilities:
        """Capabilities and prices (LiteLLM's entry for `model_name`, else `litellm_model`, then overrides)."""
        from . import transport

        base = transport.model_info(self.model_name) or transport.model_info(self.litellm_model)
        return Capabilities.from_info(base, self.model_info)

    def call_params(self, api_key: SecretStr | None = None) -> dict[str, Any]:
        """The LiteLLM parameters of this deployment, with the real key (only for the call itself)."""
        out = {k: _reveal(v) for k, v in self.params.items()}
        raw = _reveal(api_key or self.api_key)
        if raw:
            out["api_key"] = raw
        return out

    def as_entry(self) -> dict[str, Any]:
        """The ``model_list`` entry back, with the key kept as a `SecretStr` (safe to print)."""
        lp: dict[str, Any] = {"model": self.litellm_model, **self.params}
        if self.api_key is not None:
            lp["api_key"] = self.api_key
        entry: dict[str, Any] = {"model_name": self.model_name, "litellm_params": lp}
        if self.model_info:
            entry["model_info"] = dict(self.model_info)
        return entry

    def __repr__(self) -> str:
        key = ", api_key=SecretStr('**********')" if self.api_key is not None else ""
        return f"Deployment(model_name={self.model_name!r}, litellm_model={self.litellm_model!r}{key})"


def parse_model_list(entries: Sequence[str | Mapping[str, Any] | Deployment]) -> list[Deployment]:
    """Parse a whole ``model_list``; model names must be unique.

    Raises:
        ConfigError: An entry is malformed, the list is empty, or a name repeats.
    """
    if isinstance(entries, str | Mapping) or not isinstance(entries, Sequence) or not entries:
        msg = "model_list must be a non-empty list of LiteLLM ids or {'model_name', 'litellm_params'} dicts"
        raise ConfigError(msg)
    out = [Deployment.parse(e, index=i) for i, e in enumerate(entries)]
    names = [d.model_name for d in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        msg = f"model_list names must be unique (one deployment per profiled model); repeated: {dupes}"
        raise ConfigError(msg)
    return out


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _opt_price(value: Any) -> float | None:
    try:
        out = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    return out if out is not None and math.isfinite(out) and out >= 0 else None
