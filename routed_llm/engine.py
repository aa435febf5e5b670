"""`RoutingEngine`: the surface-independent core shared by the chat model and the LiteLLM provider.

It works on OpenAI-format messages and LiteLLM parameters, and does four things:

1. **plan** a request (pure apart from the router's embedding): capability gating
   (`routed_llm.gating`), the router's decision on the **text of the last user message**
   with per-candidate expected costs, tool-loop stickiness or a pinned model, and the
   ranking of `Target` s that fallback walks;
2. **call** LiteLLM through `routed_llm.transport` under `routed_llm.fallback.Executor`
   (retries, fallback, circuit breaker), sync, async, streamed or not;
3. **sanitise** the history for each target (provider-bound reasoning items of another
   model's turns are dropped, `routed_llm._convert.sanitize`);
4. **report** the routing block (decision, exclusions, attempts, served model, cost).

Cost of a call: LiteLLM's own price when the deployment calls the profiled model itself
(``litellm_params.model == model_name``, no price override); otherwise the usage priced with
the ``model_name``'s prices (``model_info`` overrides first), since a gateway or local
deployment of a model costs what the model costs.

Expected cost of a candidate: its prices (``model_info`` overrides) times the profile's mean
tokens when the deployment overrides prices, else the profile's ``expected_cost``. A
candidate without a profile (allowed only with ``unprofiled_prior``) scores the prior and
costs its LiteLLM prices times the profiled models' mean tokens (else their median cost).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import transport
from ._convert import last_user_text, sanitize
from .deployments import Deployment, is_secret_param
from .errors import ConfigError, RoutingError
from .fallback import Executor, FallbackPolicy, Target
from .gating import gate, needs_of, require_eligible
from .routers.base import utilities
from .types import RouteDecision

if TYPE_CHECKING:
    from pydantic import SecretStr

    from .circuit import CircuitBreaker
    from .routers import Router

__all__ = ["EngineStream", "Plan", "Result", "RoutingEngine", "loop_origin"]

_DEFAULT_IN_TOKENS, _DEFAULT_OUT_TOKENS = 500.0, 256.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A planned request: what to send and whom to try, in order.

    Attributes:
        messages: OpenAI-format history.
        origins: The model that produced each message (None: not ours / unknown).
        params: LiteLLM request parameters (no credentials).
        targets: Ranked targets for the fallback executor.
        routing: JSON-safe routing block, without attempts (added after the call).
    """

    messages: tuple[dict[str, Any], ...]
    origins: tuple[str | None, ...]
    params: Mapping[str, Any]
    targets: tuple[Target, ...]
    routing: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A finished (non-streamed) call.

    Attributes:
        response: The LiteLLM ``ModelResponse``.
        deployment: The deployment that answered.
        routing: The routing block including ``attempts``, ``model_name`` and ``cost_usd``.
    """

    response: Any
    deployment: Deployment
    routing: dict[str, Any]


def loop_origin(messages: Sequence[Mapping[str, Any]], origins: Sequence[str | None]) -> str | None:
    """The model that started the running tool loop, or None when no tool loop is open.

    A loop is open when the last message is a tool result or an assistant turn with tool
    calls; the model is the producer of the latest assistant turn that made tool calls.
    """
    if not messages:
        return None
    last = messages[-1]
    if not (last.get("role") == "tool" or (last.get("role") == "assistant" and last.get("tool_calls"))):
        return None
    for message, origin in zip(reversed(messages), reversed(origins), strict=True):
        if message.get("role") == "assistant" and message.get("tool_calls"):
            return origin
    return None


def _chunk_text(chunk: Any) -> str:
    """Text a stream chunk delivers to the caller (content, reasoning, tool-call arguments)."""
    parts: list[str] = []
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        parts.append(getattr(delta, "content", None) or "")
        parts.append(getattr(delta, "reasoning_content", None) or "")
        for tc in getattr(delta, "tool_calls", None) or ():
            fn = getattr(tc, "function", None)
            parts.append((getattr(fn, "name", None) or "") + (getattr(fn, "arguments", None) or ""))
    return "".join(parts)


def _is_final(chunk: Any) -> bool:
    return any(getattr(c, "finish_reason", None) for c in getattr(chunk, "choices", None) or ())


class RoutingEngine:
    """Routes OpenAI-format requests across deployments, with gating, fallback and provenance.

    Args:
        deployments: The candidates.
        router: A fitted router that has a profile for every candidate (see `unprofiled_prior`).
        cost_weight: Default quality/cost trade-off (0 = quality only).
        policy: Fallback policy (default `FallbackPolicy()`).
        breaker: Optional circuit breaker shared across requests.
        unprofiled_prior: P(correct) assumed for candidates the router has no profile for;
            None makes such a candidate a `ConfigError`.

    Raises:
        ConfigError: A candidate has no profile (and no prior is given), or a value is invalid.
    """

    def __init__(
        self,
        deployments: Sequence[Deployment],
        router: Router,
        *,
        cost_weight: float = 0.0,
        policy: FallbackPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        unprofiled_prior: float | None = None,
    ) -> None:
        self.deployments = {d.model_name: d for d in deployments}
        self.router = router
        self.cost_weight = cost_weight
        self.executor = Executor(policy, breaker)
        self.unprofiled_prior = unprofiled_prior
        self._validate()

    def _validate(self) -> None:
        _check_weight(self.cost_weight)
        self.router.check_is_fitted()
        prior = self.unprofiled_prior
        if prior is not None and (not isinstance(prior, int | float) or not 0.0 <= prior <= 1.0):
            msg = f"unprofiled_prior must be a probability in [0, 1] or None, got {prior!r}"
            raise ConfigError(msg)
        missing = [n for n in self.deployments if n not in self.router.profiles_]
        if missing and prior is None:
            msg = (
                f"the router has no profile for {missing}; profiled models: {list(self.router.models_)}. "
                "Name each deployment after a profiled model (model_name), profile the model "
                "(routed-llm profile / add-model), or pass unprofiled_prior=<P(correct)> to route it on a prior."
            )
            raise ConfigError(msg)

    # ------------------------------------------------------------------ planning
    def plan(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        origins: Sequence[str | None] | None = None,
        cost_weight: float | None = None,
        model: str | None = None,
    ) -> Plan:
        """Gate, score and rank the candidates for one request.

        Args:
            messages: OpenAI-format history.
            params: LiteLLM request parameters (tools, response_format, max_tokens, ...).
            origins: Which model produced each message (for stickiness and sanitising).
            cost_weight: Per-request trade-off (default: the engine's).
            model: Pin this candidate (by model_name): no routing, no fallback to others.

        Raises:
            ConfigError: `model` is not a candidate, or `cost_weight` is invalid.
            RoutingError: No candidate passes gating (each one's reason is listed).
        """
        msgs = tuple(dict(m) for m in messages)
        orig = tuple(origins) if origins is not None else (None,) * len(msgs)
        lam = self.cost_weight if cost_weight is None else cost_weight
        _check_weight(lam)
        if model is not None and model not in self.deployments:
            msg = f"model={model!r} is not a candidate; candidates: {list(self.deployments)}"
            raise ConfigError(msg)
        names = [model] if model is not None else list(self.deployments)
        eligible, excluded = gate(needs_of(msgs, params), {n: self.deployments[n].capabilities for n in names})
        require_eligible(eligible, excluded)
        costs = {n: self.expected_cost(n) for n in eligible}
        base: dict[str, Any] = {
            "router": self.router.name,
            "candidates": list(self.deployments),
            "eligible": eligible,
            "excluded": excluded,
            "cost_weight": float(lam),
        }
        if model is not None:
            ranking = [model]
            base |= {"scores": {}, "expected_costs": costs, "utilities": {}, "reason": f"pinned by model={model!r}"}
        else:
            decision = self._decide(last_user_text(msgs), eligible, costs, float(lam))
            ranking, reason = list(decision.ranking), decision.reason
            sticky = loop_origin(msgs, orig)
            if sticky is not None and sticky in eligible:
                ranking = [sticky, *(n for n in ranking if n != sticky)]
                reason = f"tool loop: {sticky} started it and keeps serving it (router's choice: {decision.model})"
            elif sticky is not None:
                reason += f"; the tool loop's model {sticky!r} is not eligible, so the history is re-routed"
            base |= {k: v for k, v in decision.as_dict().items() if k not in ("model", "ranking", "reason", "router")}
            base["reason"] = reason
        base["ranking"] = ranking
        targets = tuple(
            Target(name=n, expected_cost=costs[n], max_input_tokens=self.deployments[n].capabilities.max_input_tokens)
            for n in ranking
        )
        return Plan(messages=msgs, origins=orig, params=dict(params), targets=targets, routing=base)

    def expected_cost(self, name: str) -> float:
        """Expected cost of one call to candidate `name` (see the module docstring)."""
        caps = self.deployments[name].capabilities
        profile = self.router.profiles_.get(name)
        usd = getattr(self.router, "cost_unit_", "usd") == "usd"
        if profile is not None:
            tin, tout = profile.mean_input_tokens, profile.mean_output_tokens
            if usd and caps.prices_overridden and caps.priced and tin is not None and tout is not None:
                return float(caps.price(tin, tout) or 0.0)
            return float(profile.expected_cost)
        tin, tout = self._mean_tokens()
        price = caps.price(tin, tout) if usd else None
        if price is not None:
            return price
        known = [float(c) for c in self.router.expected_costs_]
        return statistics.median(known) if known else 0.0

    def _mean_tokens(self) -> tuple[float, float]:
        ins = [p.mean_input_tokens for p in self.router.profiles_.values() if p.mean_input_tokens is not None]
        outs = [p.mean_output_tokens for p in self.router.profiles_.values() if p.mean_output_tokens is not None]
        return (
            float(np.mean(ins)) if ins else _DEFAULT_IN_TOKENS,
            float(np.mean(outs)) if outs else _DEFAULT_OUT_TOKENS,
        )

    def _decide(self, text: str, names: list[str], costs: Mapping[str, float], lam: float) -> RouteDecision:
        proba = self.router.predict_proba([text])[0]
        unprofiled = [n for n in names if n not in self.router.profiles_]
        if not unprofiled:
            return self.router.decide(proba, candidates=names, cost_weight=lam, expected_costs=costs)
        prior = float(self.unprofiled_prior or 0.0)
        index = {m: i for i, m in enumerate(self.router.models_)}
        p = np.array([proba[index[n]] if n in index else prior for n in names], dtype=np.float64)
        c = np.array([costs[n] for n in names], dtype=np.float64)
        util = utilities(p, c, lam)
        order = np.lexsort((c, -util))
        best = names[order[0]]
        return RouteDecision(
            model=best,
            ranking=tuple(names[i] for i in order),
            scores={n: float(p[i]) for i, n in enumerate(names)},
            expected_costs={n: float(c[i]) for i, n in enumerate(names)},
            utilities={n: float(util[i]) for i, n in enumerate(names)},
            cost_weight=lam,
            reason=f"{best} has the best utility {util[order[0]]:.3f} among {len(names)} candidates "
            f"({', '.join(unprofiled)} scored with unprofiled_prior={prior:g})",
            router=self.router.name,
        )

    # ------------------------------------------------------------------ calling
    def _call_args(
        self, plan: Plan, target: Target, api_key: SecretStr | None, *, stream: bool
    ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        dep = self.deployments[target.name]
        params = {**dep.call_params(api_key), **plan.params}
        if stream:
            params["stream"] = True
            params["stream_options"] = {**(params.get("stream_options") or {}), "include_usage": True}
        else:
            params.pop("stream", None)
            params.pop("stream_options", None)
        return dep.litellm_model, sanitize(plan.messages, plan.origins, target.name), params

    def complete(self, plan: Plan, *, api_key: SecretStr | None = None) -> Result:
        """Call the planned targets until one answers; returns the response and routing block."""

        def call(target: Target) -> Any:
            model, messages, params = self._call_args(plan, target, api_key, stream=False)
            with _scrubbed(params):
                return transport.complete(model, messages, **params)

        out = self.executor.run(plan.targets, call)
        return self._result(plan, out.target, out.value, out.attempts)

    async def acomplete(self, plan: Plan, *, api_key: SecretStr | None = None) -> Result:
        """Async `complete`."""

        async def call(target: Target) -> Any:
            model, messages, params = self._call_args(plan, target, api_key, stream=False)
            with _scrubbed(params):
                return await transport.acomplete(model, messages, **params)

        out = await self.executor.arun(plan.targets, call)
        return self._result(plan, out.target, out.value, out.attempts)

    def _result(self, plan: Plan, target: Target, response: Any, attempts: Sequence[Any]) -> Result:
        dep = self.deployments[target.name]
        direct = dep.litellm_model == dep.model_name and not dep.capabilities.prices_overridden
        cost = transport.cost_of(response) if direct else None
        if cost is None:
            cost = _price_usage(dep, getattr(response, "usage", None))
        return Result(response=response, deployment=dep, routing=self.finish_routing(plan, dep, attempts, cost))

    def finish_routing(
        self, plan: Plan, dep: Deployment, attempts: Sequence[Any], cost: float | None
    ) -> dict[str, Any]:
        """The complete routing block once `dep` has answered."""
        routing = dict(plan.routing)
        routing["model_name"] = dep.model_name
        routing["litellm_model"] = dep.litellm_model
        routing["attempts"] = [a.as_dict() for a in attempts]
        routing["cost_usd"] = cost
        return routing

    def stream(self, plan: Plan, *, api_key: SecretStr | None = None) -> EngineStream:
        """A fallback-protected stream of ``(deployment, chunk)``; read `EngineStream.result` after."""

        def open_stream(target: Target) -> Iterator[Any]:
            model, messages, params = self._call_args(plan, target, api_key, stream=True)
            with _scrubbed(params):
                stream = transport.complete(model, messages, **params)
            return _ScrubbingStream(stream, params)

        run = self.executor.stream(plan.targets, open_stream, chunk_text=_chunk_text, is_final=_is_final)
        return EngineStream(self, plan, run)

    def astream(self, plan: Plan, *, api_key: SecretStr | None = None) -> EngineStream:
        """Async `stream` (iterate with ``async for``)."""

        async def open_stream(target: Target) -> AsyncIterator[Any]:
            model, messages, params = self._call_args(plan, target, api_key, stream=True)
            with _scrubbed(params):
                stream = await transport.acomplete(model, messages, **params)
            return _ScrubbingStream(stream, params)

        run = self.executor.astream(plan.targets, open_stream, chunk_text=_chunk_text, is_final=_is_final)
        return EngineStream(self, plan, run)


@dataclass
class EngineStream:
    """Iterate (sync or async) for ``(deployment, chunk)``; afterwards `result()` gives the routing block."""

    engine: RoutingEngine
    plan: Plan
    run: Any
    usage: Any = None
    deployment: Deployment | None = None

    def _observe(self, target: Target, chunk: Any) -> tuple[Deployment, Any]:
        self.deployment = self.engine.deployments[target.name]
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        return self.deployment, chunk

    def __iter__(self) -> Iterator[tuple[Deployment, Any]]:
        for target, chunk in self.run:
            yield self._observe(target, chunk)

    async def __aiter__(self) -> AsyncIterator[tuple[Deployment, Any]]:
        async for target, chunk in self.run:
            yield self._observe(target, chunk)

    def result(self) -> dict[str, Any]:
        """The routing block (valid once iteration has finished)."""
        target = self.run.target
        if target is None:
            msg = "the stream has not produced anything yet; iterate it to the end first"
            raise RoutingError(msg)
        dep = self.engine.deployments[target.name]
        return self.engine.finish_routing(self.plan, dep, self.run.attempts, _price_usage(dep, self.usage))


def _price_usage(dep: Deployment, usage: Any) -> float | None:
    if usage is None:
        return None

    def get(key: str) -> int:
        value = usage.get(key) if isinstance(usage, Mapping) else getattr(usage, key, None)
        return int(value or 0)

    return dep.capabilities.price(get("prompt_tokens"), get("completion_tokens"))


def scrub(exc: BaseException, secret: str | None) -> None:
    """Remove `secret` from `exc` and its chained causes, in place (messages, args, attributes)."""
    if not secret:
        return
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(a.replace(secret, "**********") if isinstance(a, str) else a for a in current.args)
        for key, value in list(vars(current).items()) if hasattr(current, "__dict__") else ():
            if isinstance(value, str) and secret in value:
                setattr(current, key, value.replace(secret, "**********"))
        current = current.__cause__ or current.__context__


def _scrub_params(exc: BaseException, params: Mapping[str, Any]) -> None:
    for key, value in params.items():
        if is_secret_param(key) and isinstance(value, str):
            scrub(exc, value)


@contextmanager
def _scrubbed(params: Mapping[str, Any]) -> Iterator[None]:
    """Scrub every credential of `params` from an exception raised inside the block."""
    try:
        yield
    except Exception as exc:
        _scrub_params(exc, params)
        raise


class _ScrubbingStream:
    """A LiteLLM stream whose errors are scrubbed of the call's credentials.

    Every other attribute (``received_finish_reason``, ``aclose``, ...) is the wrapped
    stream's, so the fallback executor can still inspect and close it.
    """

    def __init__(self, stream: Any, params: Mapping[str, Any]) -> None:
        self._stream = stream
        self._params = params

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __iter__(self) -> _ScrubbingStream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._stream)
        except StopIteration:
            raise
        except Exception as exc:
            _scrub_params(exc, self._params)
            raise

    def __aiter__(self) -> _ScrubbingStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            _scrub_params(exc, self._params)
            raise


def _check_weight(lam: Any) -> None:
    if not isinstance(lam, int | float) or isinstance(lam, bool) or math.isnan(lam) or lam < 0:
        msg = f"cost_weight must be a number >= 0 (0 = quality only, inf = cheapest), got {lam!r}"
        raise ConfigError(msg)
