"""`RoutedChatModel`: a LangChain chat model that routes every call to the best candidate.

LangChain conversion only; routing, gating, fallback and provenance live in
`routed_llm.engine.RoutingEngine` (shared with the LiteLLM provider).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from functools import cache
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from ._convert import to_ai_chunk, to_ai_message, to_openai, usage_metadata
from .deployments import parse_model_list
from .engine import EngineStream, Plan, Result, RoutingEngine
from .errors import ConfigError
from .routers import Router

__all__ = ["RoutedChatModel"]


@cache
def _default_router() -> Router:
    from .default import default_router

    return default_router()


def _resolve_router(router: Any) -> Router:
    if router is None:
        return _default_router()
    if isinstance(router, Router):
        return router
    if isinstance(router, str | os.PathLike):
        return Router.load(os.fspath(router))
    msg = (
        "router must be a fitted Router, a path to a saved router, or None (the default router); "
        f"got {type(router).__name__}"
    )
    raise ConfigError(msg)


class RoutedChatModel(BaseChatModel):
    """Chat model that routes each call to the candidate with the best quality/cost trade-off.

    Every call is scored by a fitted router on the text of the **last user message**, the
    candidates that cannot serve the request are gated out first (tools, images, structured
    output, context window), and the best-ranked one is called through LiteLLM; on failure the
    next one of the ranking serves it (`routed_llm.fallback`).

    Setup:
        ``pip install routed-llm``. Keys are LiteLLM's usual provider env vars
        (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...) or ``litellm_params["api_key"]``.

    Key init args — routing:
        model_list: LiteLLM-style candidates: ``{"model_name", "litellm_params", "model_info"}``
            dicts or plain LiteLLM ids. ``model_name`` is the profiled model.
        router: A fitted router, a path to a saved one, or None (the shipped default).
        cost_weight: Quality/cost trade-off (0 = quality only; per call: ``cost_weight=``).
        fallback: `routed_llm.fallback.FallbackPolicy`.
        unprofiled_prior: P(correct) for candidates without a profile.

    Key init args — completion params:
        temperature, max_tokens, timeout, stop, max_retries, streaming, model_kwargs, api_key.

    Instantiate:
        .. code-block:: python

            from routed_llm import RoutedChatModel

            llm = RoutedChatModel(
                model_list=["gpt-4o-mini", "claude-haiku-4-5", "gemini/gemini-2.5-flash"],
                cost_weight=0.5,
            )

    Invoke:
        .. code-block:: python

            msg = llm.invoke("Prove that sqrt(2) is irrational.")
            msg.response_metadata["model_name"]      # the candidate that answered
            msg.response_metadata["routing"]["reason"]

    Stream:
        .. code-block:: python

            for chunk in llm.stream("Hi"):
                print(chunk.content, end="")
            # exactly one chunk carries usage_metadata, model_name and routing

    Async:
        ``await llm.ainvoke(...)``, ``llm.astream(...)``, ``await llm.abatch([...])``.

    Tool calling:
        ``llm.bind_tools([get_weather], tool_choice="any")`` — only candidates that support
        function calling stay eligible; inside a tool loop the model that started it keeps
        serving it.

    Structured output:
        ``llm.with_structured_output(Schema)`` (function calling, default) or
        ``method="json_schema"`` (``response_format``; gated on ``supports_response_schema``).

    Token usage:
        ``msg.usage_metadata`` on invoke and on one chunk of a stream.

    Response metadata:
        .. code-block:: python

            {"model_name": "gpt-4o-mini",          # the candidate that answered
             "litellm_model": "openai/gpt-4o-mini",  # how it was reached
             "finish_reason": "stop", "model_provider": "openai",
             "cost_usd": <float | None>,
             "routing": {"router": "knn", "candidates": [...], "eligible": [...],
                         "excluded": {<name>: <reason>}, "scores": {...},
                         "expected_costs": {...}, "utilities": {...}, "cost_weight": <float>,
                         "reason": "...", "ranking": [...], "model_name": ..., "litellm_model": ...,
                         "attempts": [{"model", "error", "message", "action", "latency_s",
                                       "streamed_chars"}, ...],
                         "cost_usd": <float | None>}}

        A real printed block is in ``docs/chat-model.md``.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model_list: list[Any] = Field(default_factory=list, alias="candidates")
    """Candidates: LiteLLM ``model_list`` entries or plain LiteLLM ids (default: every model the router knows)."""
    router: Any = None
    """A fitted `Router`, a path to a saved one, or None for `routed_llm.default_router()`."""
    cost_weight: float = 0.0
    """Default quality/cost trade-off: utility = P(correct) - cost_weight x cost / max cost."""
    temperature: float | None = None
    """Sampling temperature."""
    max_tokens: int | None = Field(default=None, alias="max_completion_tokens")
    """Maximum number of tokens to generate."""
    timeout: float | None = Field(default=None, alias="request_timeout")
    """Timeout in seconds for one provider call."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Default stop sequences."""
    max_retries: int = 2
    """Extra tries of the same model on transient errors (feeds `FallbackPolicy.retries_per_model`)."""
    streaming: bool = False
    """Stream by default (``invoke`` then streams under the hood)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra LiteLLM/OpenAI parameters sent with every call."""
    api_key: SecretStr | None = None
    """Optional key used for every candidate instead of theirs (normally leave unset)."""
    fallback: Any = None
    """A `FallbackPolicy`; None builds one from `max_retries`."""
    circuit_breaker: Any = True
    """A `CircuitBreaker` (share it across models or processes), True for a private one, False for none."""
    unprofiled_prior: float | None = None
    """P(correct) assumed for candidates the router has no profile for; None makes them an error."""

    _engine: RoutingEngine = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        """Build the model; validates the candidates against the router's profiles (no embedding)."""
        super().__init__(**kwargs)
        from .circuit import CircuitBreaker
        from .fallback import FallbackPolicy

        router = _resolve_router(self.router)
        deployments = parse_model_list(self.model_list or list(router.models_))
        self.model_list = [d.as_entry() for d in deployments]  # keys become SecretStr
        policy = self.fallback if self.fallback is not None else FallbackPolicy(retries_per_model=self.max_retries)
        if not isinstance(policy, FallbackPolicy):
            msg = f"fallback must be a FallbackPolicy or None, got {type(policy).__name__}"
            raise ConfigError(msg)
        breaker = self.circuit_breaker
        if breaker is True:
            breaker = CircuitBreaker()
        elif breaker is False or breaker is None:
            breaker = None
        elif not isinstance(breaker, CircuitBreaker):
            msg = f"circuit_breaker must be a CircuitBreaker, True or False, got {type(breaker).__name__}"
            raise ConfigError(msg)
        self._engine = RoutingEngine(
            deployments,
            router,
            cost_weight=self.cost_weight,
            policy=policy,
            breaker=breaker,
            unprofiled_prior=self.unprofiled_prior,
        )

    # ------------------------------------------------------------------ LangChain hooks
    @property
    def _llm_type(self) -> str:
        return "routed-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Not serialisable: a router object is not a LangChain-serialisable value."""
        return False

    @property
    def engine(self) -> RoutingEngine:
        """The routing engine (router, deployments, fallback) behind this model."""
        return self._engine

    @property
    def _ls_model_name(self) -> str:
        return f"routed:{self._engine.router.name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "router": self._engine.router.name,
            "candidates": list(self._engine.deployments),
            "cost_weight": self.cost_weight,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="routed_llm",
            ls_model_name=kwargs.get("model") or self._ls_model_name,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stops = stop or kwargs.get("stop") or self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    # ------------------------------------------------------------------ request building (pure)
    def _request_params(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            **self.model_kwargs,
            **kwargs,
        }
        stops = stop if stop is not None else kwargs.get("stop", self.stop)
        params["stop"] = list(stops) if stops else None
        return {k: v for k, v in params.items() if v is not None}

    def _plan(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]) -> Plan:
        kw = dict(kwargs)
        cost_weight = kw.pop("cost_weight", self.cost_weight)  # the field, so model_copy(update=...) works
        model = kw.pop("model", None)
        for key in ("stream", "ls_structured_output_format", "stream_options"):
            kw.pop(key, None)
        openai_messages, origins = to_openai(messages)
        params = self._request_params(stop, kw)
        return self._engine.plan(openai_messages, params, origins=origins, cost_weight=cost_weight, model=model)

    @staticmethod
    def _provenance(routing: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "model_name": routing["model_name"],
            "litellm_model": routing["litellm_model"],
            "model_provider": "openai",
            "cost_usd": routing["cost_usd"],
            "routing": dict(routing),
        }

    def _chat_result(self, result: Result) -> ChatResult:
        message = to_ai_message(result.response)
        message.response_metadata.update(self._provenance(result.routing))
        info = {"finish_reason": message.response_metadata.get("finish_reason")}
        llm_output = {"model_name": result.deployment.model_name, "routing": result.routing}
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)], llm_output=llm_output)

    def _final_chunk(self, stream: EngineStream) -> ChatGenerationChunk:
        """The one chunk that carries usage, the served model and the routing block."""
        message = AIMessageChunk(
            content="",
            usage_metadata=usage_metadata(stream.usage),
            response_metadata=self._provenance(stream.result()),
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message)

    # ------------------------------------------------------------------ calls
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = self._plan(messages, stop, kwargs)
        return self._chat_result(self._engine.complete(plan, api_key=self.api_key))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = self._plan(messages, stop, kwargs)
        return self._chat_result(await self._engine.acomplete(plan, api_key=self.api_key))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stream = self._engine.stream(self._plan(messages, stop, kwargs), api_key=self.api_key)
        for _, raw in stream:
            chunk = _generation_chunk(raw)
            if chunk is not None:
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        yield self._final_chunk(stream)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        stream = self._engine.astream(self._plan(messages, stop, kwargs), api_key=self.api_key)
        async for _, raw in stream:
            chunk = _generation_chunk(raw)
            if chunk is not None:
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        yield self._final_chunk(stream)

    # ------------------------------------------------------------------ tools and structured output
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any LangChain tool form); only function-calling candidates stay eligible.

        Args:
            tools: Tools, Pydantic models, functions or OpenAI tool dicts.
            tool_choice: ``"auto"``, ``"none"``, ``"any"``/``"required"``/True (must call a
                tool), a tool name, or an OpenAI ``tool_choice`` dict.
            strict: Ask for strict schema adherence (OpenAI ``strict``).
            **kwargs: Passed on to `bind` (for example ``parallel_tool_calls``).
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _tool_choice(tool_choice, formatted)
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Structured output by function calling (default), ``json_schema`` or ``json_mode``.

        ``json_schema`` sends ``response_format={"type": "json_schema", ...}`` and keeps only
        candidates with ``supports_response_schema``; ``function_calling`` keeps only those
        with ``supports_function_calling``.
        """
        if kwargs:
            msg = f"unsupported arguments {sorted(kwargs)}; valid: method, include_raw, strict"
            raise ConfigError(msg)
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw)
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: Runnable[Any, Any] = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()  # type: ignore[arg-type]
        if method == "json_schema":
            json_schema = convert_to_json_schema(schema)
            spec: dict[str, Any] = {"name": json_schema.get("title", "output"), "schema": json_schema}
            if strict is not None:
                spec["strict"] = strict
            response_format: dict[str, Any] = {"type": "json_schema", "json_schema": spec}
        elif method == "json_mode":
            response_format = {"type": "json_object"}
        else:
            msg = f"unknown method {method!r}; valid methods: ['function_calling', 'json_mode', 'json_schema']"
            raise ConfigError(msg)
        llm = self.bind(
            response_format=response_format,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": convert_to_json_schema(schema),
            },
        )
        return _with_parser(llm, parser, include_raw=include_raw)


def _generation_chunk(raw: Any) -> ChatGenerationChunk | None:
    message = to_ai_chunk(raw)
    return None if message is None else ChatGenerationChunk(message=message)


def _tool_choice(choice: str | bool | dict[str, Any], tools: Sequence[Mapping[str, Any]]) -> str | dict[str, Any]:
    """LangChain's tool_choice spellings -> OpenAI's."""
    if isinstance(choice, dict):
        return choice
    if choice is True or choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return str(choice)
    names = [t["function"]["name"] for t in tools]
    if choice not in names:
        msg = f"tool_choice={choice!r} names no bound tool; bound tools: {names}"
        raise ConfigError(msg)
    return {"type": "function", "function": {"name": choice}}


def _with_parser(llm: Runnable[Any, Any], parser: Runnable[Any, Any], *, include_raw: bool) -> Runnable[Any, Any]:
    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    none = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([none], exception_key="parsing_error")
