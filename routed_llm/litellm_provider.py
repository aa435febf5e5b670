"""A LiteLLM custom provider: ``litellm.completion(model="routed/<name>", ...)`` routes the call.

``<name>`` names a router configuration (`routed_llm.config.RouterConfig`): registered in
code, or read from the YAML file that ``$ROUTED_LLM_CONFIG`` (or ``path=``) points at. Each
request is planned and served by that configuration's `routed_llm.engine.RoutingEngine`:
capability gating, the router's choice, fallback along its ranking, circuit breaker.

SDK::

    from routed_llm.litellm_provider import register
    register(name="smart", config={"candidates": ["gpt-4o-mini", "claude-haiku-4-5"]})
    litellm.completion(model="routed/smart", messages=[...])

Proxy (``config.yaml``)::

    litellm_settings:
      custom_provider_map:
        - {provider: routed, custom_handler: routed_llm.litellm_provider.handler}

What the caller gets back (see docs/litellm.md):

- ``response.model`` is the ``model_name`` of the candidate that answered (on every content
  chunk of a stream);
- ``response._hidden_params["response_cost"]`` is that call's cost, so LiteLLM's logging,
  budgets and the proxy's spend tracking price the routed call; the inner call is made with
  ``no-log``, so spend is counted once;
- ``response._hidden_params["routing"]`` is the routing block (candidates, scores, expected
  costs, exclusions with reasons, attempts, served model, cost) and
  ``_hidden_params["additional_headers"]`` carries ``llm_provider-x-routed-llm-model`` /
  ``-cost`` / ``-config``, which the proxy returns as response headers.

Per request: ``cost_weight=`` (a kwarg, ``extra_body`` field or ``metadata`` key) changes the
trade-off, ``routed_model=`` pins one candidate. A tool loop stays on the model that made
its tool calls (remembered by tool-call id, per process). Importing this module registers
nothing.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import transport
from .config import RouterConfig, load_configs
from .errors import AllModelsFailedError, ConfigError, RoutingError

if TYPE_CHECKING:
    from .engine import Plan, Result, RoutingEngine
    from .routers import Router

transport.litellm_module()  # LiteLLM with the local price map, before the import below
from litellm.llms.custom_llm import CustomLLM, CustomLLMError  # noqa: E402

__all__ = ["CONFIG_ENV", "RoutedProvider", "handler", "register", "register_config", "unregister"]

CONFIG_ENV = "ROUTED_LLM_CONFIG"
"""Environment variable naming the YAML file of router configurations."""

OUR_KEYS = ("cost_weight", "routed_model")
"""Request keys the provider consumes (kwargs, ``extra_body`` or ``metadata``); never forwarded."""

_NOT_FORWARDED = ("stream", "stream_options", "max_retries", "num_retries", "metadata")
_HEADER = "llm_provider-x-routed-llm-"


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the engine sees it (pure result of `split_request`)."""

    name: str
    params: dict[str, Any]
    cost_weight: float | None = None
    pin: str | None = None


def split_request(
    model: str, optional_params: Mapping[str, Any], litellm_params: Mapping[str, Any] | None, timeout: Any
) -> Call:
    """Separate our keys from the parameters forwarded to the candidate (pure).

    ``cost_weight`` / ``routed_model`` are taken from the kwargs first, then ``metadata``.
    Everything else of `optional_params` (tools, tool_choice, response_format, temperature,
    max_tokens, stop, ...) is forwarded; the call is made with ``no-log`` (spend counted once).
    """
    params = {k: v for k, v in optional_params.items() if k not in _NOT_FORWARDED and k not in OUR_KEYS}
    extra = params.pop("extra_body", None)
    extra = dict(extra) if isinstance(extra, Mapping) else {}
    metadata = (litellm_params or {}).get("metadata") or {}
    ours: dict[str, Any] = {}
    for key in OUR_KEYS:
        for source in (optional_params, extra, metadata):
            if isinstance(source, Mapping) and source.get(key) is not None:
                ours[key] = source[key]
                break
    extra = {k: v for k, v in extra.items() if k not in OUR_KEYS}
    if extra:
        params["extra_body"] = extra
    if timeout is not None and "timeout" not in params:
        params["timeout"] = timeout
    params["no_log"] = True
    cost_weight = ours.get("cost_weight")
    if cost_weight is not None:
        try:
            cost_weight = float(cost_weight)
        except (TypeError, ValueError):
            msg = f"cost_weight must be a number >= 0, got {cost_weight!r}"
            raise ConfigError(msg) from None
    pin = ours.get("routed_model")
    return Call(name=model, params=params, cost_weight=cost_weight, pin=str(pin) if pin is not None else None)


def _provenance(routing: Mapping[str, Any], config: str) -> dict[str, str]:
    cost = routing.get("cost_usd")
    headers = {_HEADER + "model": str(routing["model_name"]), _HEADER + "config": config}
    if cost is not None:
        headers[_HEADER + "cost"] = f"{float(cost):.10g}"
    return headers


def annotate(response: Any, routing: Mapping[str, Any], config: str) -> Any:
    """Stamp the served model, its cost and the routing block on a response or chunk (in place)."""
    response.model = routing["model_name"]
    hidden = getattr(response, "_hidden_params", None)
    if hidden is None:
        hidden = {}
        response._hidden_params = hidden
    cost = routing.get("cost_usd")
    if cost is not None:
        hidden["response_cost"] = float(cost)
        usage = getattr(response, "usage", None)
        if usage is not None:
            # a usage-reported cost (as OpenRouter sends) is also what LiteLLM's stream
            # logging prices an assembled stream with, and what proxy clients see
            usage.cost = float(cost)
    hidden["routing"] = dict(routing)
    hidden["additional_headers"] = {**(hidden.get("additional_headers") or {}), **_provenance(routing, config)}
    summary = {"model_name": routing["model_name"], "config": config, "cost_usd": cost, "reason": routing.get("reason")}
    for choice in getattr(response, "choices", None) or ():
        item = getattr(choice, "message", None) or getattr(choice, "delta", None)
        if item is not None:
            item.provider_specific_fields = {
                **(getattr(item, "provider_specific_fields", None) or {}),
                "routed_llm": summary,
            }
    return response


@dataclass
class _Relay:
    """Pure per-chunk logic of a relayed stream, shared by `streaming` and `astreaming`.

    LiteLLM's stream wrapper drops a custom provider's chunks after the finish chunk, so the
    inner usage-only chunk would be lost. The relay holds the last content chunk back until
    the inner stream ends and puts the usage and the routing block on it.
    """

    config: str
    held: Any = None
    finish: Any = None
    usage: Any = None
    tool_call_ids: list[str] = field(default_factory=list)

    def feed(self, model_name: str, chunk: Any) -> list[Any]:
        """Chunks to pass on now (the usage chunk and the finish chunk are kept for `close`)."""
        chunk.model = model_name
        self.tool_call_ids.extend(_tool_call_ids(chunk, "delta"))
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
            chunk.usage = None
        choices = getattr(chunk, "choices", None) or []
        if not choices:
            return []
        if choices[0].finish_reason and not _has_content(chunk):
            self.finish = chunk
            return []
        out, self.held = ([self.held] if self.held is not None else []), chunk
        return out

    def close(self, routing: Mapping[str, Any]) -> list[Any]:
        """The held-back chunks, the last content chunk carrying usage, cost and provenance."""
        last = self.held if self.held is not None else self.finish
        if last is None:
            return []
        if self.usage is not None:
            last.usage = self.usage
        annotate(last, routing, self.config)
        return [c for c in (self.held, self.finish) if c is not None]


def _tool_call_ids(response: Any, part: str) -> list[str]:
    """Ids of the tool calls in a response's ``message`` or a chunk's ``delta``."""
    ids: list[str] = []
    for choice in getattr(response, "choices", None) or ():
        for call in getattr(getattr(choice, part, None), "tool_calls", None) or ():
            call_id = call.get("id") if isinstance(call, Mapping) else getattr(call, "id", None)
            if call_id:
                ids.append(str(call_id))
    return ids


class _ToolLoopMemory:
    """Which candidate made which tool call (bounded, per process): keeps a tool loop on its model.

    Through the provider, earlier assistant turns come back as plain OpenAI messages with no
    sign of the model that wrote them; their tool-call ids are remembered instead.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._origins: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def record(self, ids: list[str], model_name: str) -> None:
        with self._lock:
            for call_id in ids:
                self._origins[call_id] = model_name
                self._origins.move_to_end(call_id)
            while len(self._origins) > self._size:
                self._origins.popitem(last=False)

    def origins(self, messages: list[Any]) -> list[str | None]:
        """The model that wrote each message, where a remembered tool call says so."""
        out: list[str | None] = []
        with self._lock:
            for message in messages:
                calls = message.get("tool_calls") if isinstance(message, Mapping) else None
                ids = [c.get("id") if isinstance(c, Mapping) else getattr(c, "id", None) for c in calls or ()]
                out.append(next((self._origins[str(i)] for i in ids if str(i) in self._origins), None))
        return out


def _has_content(chunk: Any) -> bool:
    delta = chunk.choices[0].delta
    return bool(delta is not None and (delta.content or delta.tool_calls or getattr(delta, "reasoning_content", None)))


def _as_litellm_error(exc: Exception) -> Exception:
    """Our routing errors as HTTP-status errors LiteLLM maps (so Router fallbacks work around us)."""
    if isinstance(exc, AllModelsFailedError):
        return CustomLLMError(status_code=503, message=f"routed-llm: {exc}")  # type: ignore[no-untyped-call]
    if isinstance(exc, RoutingError | ConfigError):
        return CustomLLMError(status_code=400, message=f"routed-llm: {exc}")  # type: ignore[no-untyped-call]
    return exc


class RoutedProvider(CustomLLM):
    """LiteLLM ``CustomLLM`` serving ``<provider>/<name>`` from named router configurations.

    Args:
        configs: Configurations by name (`RouterConfig` or dicts).
        path: YAML file of configurations; default ``$ROUTED_LLM_CONFIG``, read on first use.
        provider: The provider name it is registered under (for the recursion check).

    Example:
        >>> p = RoutedProvider({"smart": {"candidates": ["gpt-4o-2024-05-13", "deepseek/deepseek-chat"]}})
        >>> p.names()
        ['smart']
    """

    def __init__(
        self,
        configs: Mapping[str, RouterConfig | Mapping[str, Any]] | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        provider: str = "routed",
    ) -> None:
        super().__init__()
        self.provider = provider
        self.path = Path(path) if path is not None else None
        self._configs: dict[str, RouterConfig] = {}
        self._engines: dict[str, RoutingEngine] = {}
        self._routers: dict[str, Router] = {}
        self._file_loaded = False
        self._tool_loops = _ToolLoopMemory()
        self._lock = threading.RLock()
        for name, cfg in (configs or {}).items():
            self.add_config(cfg, name=name)

    def __repr__(self) -> str:
        return f"RoutedProvider(provider={self.provider!r}, configs={sorted(self._configs)})"

    # ------------------------------------------------------------------ configurations
    def add_config(self, config: RouterConfig | Mapping[str, Any], *, name: str | None = None) -> RouterConfig:
        """Add (or replace) a configuration; validated and its engine built now.

        Raises:
            ConfigError: The configuration is invalid, lists a model of this provider, or
                names a candidate the router has no profile for.
        """
        cfg = RouterConfig.parse(config, name=name)
        cfg.check_not_recursive(self.provider)
        engine = cfg.build_engine(routers=self._routers)
        with self._lock:
            self._configs[cfg.name] = cfg
            self._engines[cfg.name] = engine
        return cfg

    def load(self, path: str | os.PathLike[str]) -> list[str]:
        """Add every configuration of a YAML file; returns their names."""
        loaded = load_configs(path)
        for cfg in loaded.values():
            self.add_config(cfg)
        return list(loaded)

    def _load_file(self) -> None:
        with self._lock:
            if self._file_loaded:
                return
            path = self.path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
            if path is not None:
                for cfg in load_configs(path).values():
                    if cfg.name not in self._configs:  # code-registered configs win
                        cfg.check_not_recursive(self.provider)
                        self._configs[cfg.name] = cfg
            self._file_loaded = True

    def names(self) -> list[str]:
        """Names of the known configurations (reads the config file on first call)."""
        return sorted(self.configs())

    def configs(self) -> dict[str, RouterConfig]:
        """The known configurations by name (reads the config file on first call)."""
        self._load_file()
        with self._lock:
            return dict(self._configs)

    def config(self, name: str) -> RouterConfig:
        """The configuration called `name`.

        Raises:
            ConfigError: No such configuration (the message lists the known ones).
        """
        self._load_file()
        try:
            return self._configs[name]
        except KeyError:
            source = self.path or os.environ.get(CONFIG_ENV) or f"no file (${CONFIG_ENV} is not set)"
            msg = (
                f"no router configuration named {name!r} (model {self.provider}/{name}); "
                f"known: {sorted(self._configs)}; "
                f"config file: {source}. Register it with routed_llm.litellm_provider.register(name=..., config=...)"
            )
            raise ConfigError(msg) from None

    def engine(self, name: str) -> RoutingEngine:
        """The `RoutingEngine` of configuration `name` (built once, then reused)."""
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self.config(name).build_engine(routers=self._routers)
                self._engines[name] = engine
            return engine

    def _plan(self, model: str, messages: list[Any], kw: Mapping[str, Any]) -> tuple[RoutingEngine, Plan]:
        call = split_request(model, kw.get("optional_params") or {}, kw.get("litellm_params"), kw.get("timeout"))
        engine = self.engine(call.name)
        origins = self._tool_loops.origins(messages)
        return engine, engine.plan(messages, call.params, origins=origins, cost_weight=call.cost_weight, model=call.pin)

    def _served(self, result: Result, model: str) -> Any:
        self._tool_loops.record(_tool_call_ids(result.response, "message"), result.deployment.model_name)
        return annotate(result.response, result.routing, model)

    def _closed(self, relay: _Relay, routing: Mapping[str, Any]) -> list[Any]:
        self._tool_loops.record(relay.tool_call_ids, routing["model_name"])
        return relay.close(routing)

    # ------------------------------------------------------------------ CustomLLM interface
    def completion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        """Route and answer one request (LiteLLM calls this for ``litellm.completion``)."""
        with _litellm_errors():
            engine, plan = self._plan(model, messages, kwargs)
            result = engine.complete(plan)
        return self._served(result, model)

    async def acompletion(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        """Async `completion`."""
        with _litellm_errors():
            engine, plan = self._plan(model, messages, kwargs)
            result = await engine.acomplete(plan)
        return self._served(result, model)

    def streaming(self, model: str, messages: list[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Route a streamed request; yields the served model's ``ModelResponseStream`` chunks."""
        with _litellm_errors():
            engine, plan = self._plan(model, messages, kwargs)
            stream, relay = engine.stream(plan), _Relay(config=model)
            for deployment, chunk in stream:
                yield from relay.feed(deployment.model_name, chunk)
            yield from self._closed(relay, stream.result())

    async def astreaming(  # type: ignore[override]  # LiteLLM accepts an async generator (PR #27580)
        self, model: str, messages: list[Any], *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async `streaming`."""
        with _litellm_errors():
            engine, plan = self._plan(model, messages, kwargs)
            stream, relay = engine.astream(plan), _Relay(config=model)
            async for deployment, chunk in stream:
                for out in relay.feed(deployment.model_name, chunk):
                    yield out
            for out in self._closed(relay, stream.result()):
                yield out


@contextmanager
def _litellm_errors() -> Iterator[None]:
    """Re-raise our routing errors as HTTP-status errors LiteLLM maps (see `_as_litellm_error`)."""
    try:
        yield
    except Exception as exc:
        mapped = _as_litellm_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc


handler = RoutedProvider()
"""The module-level handler for the proxy: ``custom_handler: routed_llm.litellm_provider.handler``.

It reads ``$ROUTED_LLM_CONFIG`` on its first request; `register` adds configurations to it.
"""


def register(
    name: str | None = None,
    config: RouterConfig | Mapping[str, Any] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    provider: str | None = None,
    custom_handler: RoutedProvider | None = None,
) -> RoutedProvider:
    """Register the provider with LiteLLM (idempotent) and optionally add configurations.

    Appends ``{"provider": provider, "custom_handler": handler}`` to
    ``litellm.custom_provider_map`` (LiteLLM's documented registration) unless that handler
    is already there. Nothing else of LiteLLM is changed.

    Args:
        name: Name of a configuration to add (served as ``<provider>/<name>``).
        config: That configuration (`RouterConfig` or dict).
        path: A YAML file of configurations to add now.
        provider: The provider prefix (default: the handler's, ``"routed"``); must not be
            one of LiteLLM's built-in providers.
        custom_handler: The handler to register (default: the module-level `handler`).

    Returns:
        The registered handler.

    Raises:
        ConfigError: The provider name is built in or taken by another handler, or a
            configuration is invalid.

    Example:
        >>> cfg = {"candidates": ["gpt-4o-2024-05-13", "deepseek/deepseek-chat"]}
        >>> register(name="smart", config=cfg)  # doctest: +SKIP
        >>> litellm.completion(model="routed/smart", messages=[{"role": "user", "content": "Hi"}])  # doctest: +SKIP
    """
    litellm = transport.litellm_module()
    target = custom_handler if custom_handler is not None else handler
    provider = provider or target.provider
    builtin = {str(getattr(p, "value", p)) for p in litellm.LlmProviders}
    if provider in builtin:
        msg = f"provider {provider!r} is a LiteLLM built-in provider and would shadow it; pick another name"
        raise ConfigError(msg)
    entries = litellm.custom_provider_map
    taken = [e for e in entries if e.get("provider") == provider and e.get("custom_handler") is not target]
    if taken:
        msg = f"provider {provider!r} is already registered with another handler; call unregister({provider!r}) first"
        raise ConfigError(msg)
    if provider != target.provider:
        for cfg in target.configs().values():
            cfg.check_not_recursive(provider)
        target.provider = provider
    if config is not None:
        target.add_config(config, name=name)
    elif name is not None:
        msg = f"register(name={name!r}) needs config=...; or register(path=...) to add a file of configs"
        raise ConfigError(msg)
    if path is not None:
        target.load(path)
    if not any(e.get("provider") == provider for e in entries):
        entries.append({"provider": provider, "custom_handler": target})
    return target


def register_config(name: str, config: RouterConfig | Mapping[str, Any]) -> RouterConfig:
    """Add a configuration to the module-level `handler` (no LiteLLM registration)."""
    return handler.add_config(config, name=name)


def unregister(provider: str = "routed") -> None:
    """Remove `provider` from ``litellm.custom_provider_map`` (the other entries stay)."""
    entries = transport.litellm_module().custom_provider_map
    entries[:] = [e for e in entries if e.get("provider") != provider]
