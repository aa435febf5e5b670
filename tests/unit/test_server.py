"""The local OpenAI-compatible server, exercised through real LiteLLM calls over 127.0.0.1."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from typing import Any

import litellm
import pytest
from pydantic import BaseModel

from routed_llm.testing import Behavior, Fault, LocalOpenAIServer, answer_key_for_accuracy, prompt_key
from routed_llm.testing._schema import example_from_schema

MAGIC_TOOL = {
    "type": "function",
    "function": {
        "name": "magic_function",
        "description": "Apply a magic function to an input.",
        "parameters": {"type": "object", "properties": {"input": {"type": "integer"}}, "required": ["input"]},
    },
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
MCQ = "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\nAnswer:"


@pytest.fixture
def server(fresh_openai_server: LocalOpenAIServer) -> LocalOpenAIServer:
    return fresh_openai_server


def _call(server: LocalOpenAIServer, model: str, content: str = "hello there", **kwargs: Any) -> Any:
    messages = kwargs.pop("messages", [{"role": "user", "content": content}])
    return litellm.completion(
        model=f"openai/{model}", messages=messages, api_base=server.base_url, api_key="sk-test", max_retries=0, **kwargs
    )


def _get(server: LocalOpenAIServer, path: str) -> Any:
    url = server.base_url.removesuffix("/v1") + path
    with urllib.request.urlopen(url, timeout=5) as response:  # 127.0.0.1 only
        return json.loads(response.read())


# --- answers -----------------------------------------------------------------------------


def test_plain_reply_is_deterministic_and_prompt_dependent(server):
    first = _call(server, "m1", "What is the capital of France?")
    again = _call(server, "m1", "What is the capital of France?")
    other = _call(server, "m1", "Something else entirely")
    text = first.choices[0].message.content
    assert text.startswith("[m1] ") and "capital of France" in text
    assert text == again.choices[0].message.content != other.choices[0].message.content
    assert first.choices[0].finish_reason == "stop"
    assert first.usage.prompt_tokens == 8  # ceil(30 chars / 4)
    assert first.usage.completion_tokens == -(-len(text) // 4)
    assert _call(server, "m2", "What is the capital of France?").choices[0].message.content.startswith("[m2] ")


def test_stream_with_usage_matches_non_stream(server):
    prompt = "Tell me a fairly long story about a dragon and a castle"
    full = _call(server, "m1", prompt).choices[0].message.content
    chunks = list(_call(server, "m1", prompt, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3
    assert "".join(pieces) == full
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usages = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert usages and usages[-1].completion_tokens == -(-len(full) // 4)


def test_stop_sequence_and_max_tokens(server):
    full = _call(server, "m1", "one two three four five six seven").choices[0].message.content
    stopped = _call(server, "m1", "one two three four five six seven", stop=["four"])
    assert stopped.choices[0].message.content == full[: full.index("four")]
    short = _call(server, "m1", "one two three four five six seven", max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert len(short.choices[0].message.content) <= 12 and full.startswith(short.choices[0].message.content)
    assert short.usage.completion_tokens <= 3


def test_multiple_choice_uses_answer_key(server):
    server.set_behavior("right", Behavior(answer_key={"largest": "B"}))
    server.set_behavior("wrong", Behavior(answer_key={prompt_key(MCQ): "C"}))
    server.set_behavior("func", Behavior(answer_key=lambda prompt, options: options[-1]))
    assert _call(server, "right", MCQ).choices[0].message.content == "The answer is (B)"
    assert _call(server, "wrong", MCQ).choices[0].message.content == "The answer is (C)"
    assert _call(server, "func", MCQ).choices[0].message.content == "The answer is (D)"
    default = _call(server, "other", MCQ).choices[0].message.content
    assert re.fullmatch(r"The answer is \([ABCD]\)", default)
    assert _call(server, "other", MCQ).choices[0].message.content == default


def test_answer_key_for_accuracy_gives_exact_accuracy(server):
    gold = {f"Question {i}?\nA. x\nB. y\nC. z\nD. w": "ABCD"[i % 4] for i in range(10)}
    server.set_behavior("seventy", Behavior(answer_key=answer_key_for_accuracy(gold, 0.7, seed=1)))
    right = 0
    for prompt, letter in gold.items():
        text = _call(server, "seventy", prompt).choices[0].message.content
        right += text == f"The answer is ({letter})"
    assert right == 7


def test_fixed_reply_latency_and_context_window_behaviors(server):
    server.set_behavior("fixed", Behavior(reply="I do not know.", latency=0.01))
    assert _call(server, "fixed", MCQ).choices[0].message.content == "I do not know."
    server.set_behavior("small", Behavior(context_window=5))
    assert _call(server, "small", "short").choices[0].message.content
    with pytest.raises(litellm.ContextWindowExceededError):
        _call(server, "small", "a prompt that is clearly longer than twenty characters")


# --- tools and structured output ---------------------------------------------------------


def test_tool_call_non_stream(server):
    first = _call(server, "m1", "use the tool", tools=[MAGIC_TOOL])
    second = _call(server, "m1", "use the tool", tools=[MAGIC_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "magic_function" and json.loads(call.function.arguments) == {"input": 3}
    assert call.id.startswith("call_") and call.id != second.choices[0].message.tool_calls[0].id


def test_tool_call_stream_rebuilds(server):
    chunks = list(
        _call(
            server,
            "m1",
            "weather?",
            tools=[MAGIC_TOOL, WEATHER_TOOL],
            stream=True,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    )
    arg_fragments = [
        tc.function.arguments
        for c in chunks
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function.arguments
    ]
    assert len(arg_fragments) >= 2
    rebuilt = litellm.stream_chunk_builder(chunks)
    call = rebuilt.choices[0].message.tool_calls[0]
    assert rebuilt.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "a", "unit": "celsius"}


def test_tool_string_args_use_quoted_prompt_text(server):
    tool = {
        "type": "function",
        "function": {
            "name": "unicode_customer",
            "parameters": {
                "type": "object",
                "properties": {"customer_name": {"type": "string"}},
                "required": ["customer_name"],
            },
        },
    }
    reply = _call(server, "m1", "Create a customer named '你好啊集团' (Hello Group)", tools=[tool])
    assert json.loads(reply.choices[0].message.tool_calls[0].function.arguments) == {"customer_name": "你好啊集团"}
    reply = _call(server, "m1", "It's a customer without a name", tools=[tool])
    assert json.loads(reply.choices[0].message.tool_calls[0].function.arguments) == {"customer_name": "a"}


def test_tool_choice_none_required_and_unknown(server):
    none = _call(server, "m1", "hi", tools=[MAGIC_TOOL], tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    required = _call(server, "m1", "hi", tools=[WEATHER_TOOL, MAGIC_TOOL], tool_choice="required")
    assert required.choices[0].message.tool_calls[0].function.name == "get_weather"
    server.set_behavior("no-tools", Behavior(use_tools=False))
    assert _call(server, "no-tools", "hi", tools=[MAGIC_TOOL]).choices[0].message.tool_calls is None
    with pytest.raises(litellm.BadRequestError):
        _call(server, "m1", "hi", tools=[MAGIC_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}})


def test_tool_result_is_answered_in_text(server):
    messages = [
        {"role": "user", "content": "What is magic_function(3)?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "magic_function", "arguments": '{"input": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    reply = _call(server, "m1", messages=messages, tools=[MAGIC_TOOL])
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "[m1] The tool returned: 5"


class _Address(BaseModel):
    street: str
    zip_code: int


class _Person(BaseModel):
    name: str
    age: int
    height: float
    nickname: str | None = None
    addresses: list[_Address]


def test_json_schema_response_format_validates(server):
    schema = _Person.model_json_schema()
    assert "$defs" in schema
    fmt = {"type": "json_schema", "json_schema": {"name": "Person", "schema": schema, "strict": False}}
    reply = _call(server, "m1", "make a person", response_format=fmt)
    person = _Person.model_validate_json(reply.choices[0].message.content)
    assert person == _Person(name="a", age=3, height=3.0, addresses=[_Address(street="a", zip_code=3)])
    obj = _call(server, "m1", "json please", response_format={"type": "json_object"})
    answer = json.loads(obj.choices[0].message.content)["answer"]
    assert answer.startswith("[m1] Answer ") and answer.endswith(" to: json please")
    keyed = _call(
        server, "m1", "Return JSON with 'setup' and 'punchline' keys.", response_format={"type": "json_object"}
    )
    assert json.loads(keyed.choices[0].message.content) == {"setup": "a", "punchline": "a"}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param({"type": "integer", "minimum": 5}, 5, id="int-minimum"),
        pytest.param({"type": "number", "maximum": 1}, 1.0, id="number-maximum"),
        pytest.param({"type": "string", "minLength": 3}, "aaa", id="string-minlength"),
        pytest.param({"type": "string", "format": "date"}, "2024-01-01", id="date"),
        pytest.param({"anyOf": [{"type": "null"}, {"type": "boolean"}]}, True, id="anyof-null-first"),
        pytest.param({"type": ["null", "integer"]}, 3, id="type-list"),
        pytest.param({"type": "array", "items": {"const": "x"}, "minItems": 2}, ["x", "x"], id="array-min"),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["b"]},
            {"b": "a"},
            id="only-required",
        ),
        pytest.param({"type": "object", "properties": {}}, {}, id="no-args"),
        pytest.param(
            {"$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"},
            None,
            id="recursive-terminates",
        ),
    ],
)
def test__example_from_schema(schema, expected):
    result = example_from_schema(schema)
    if expected is None:
        assert isinstance(result, dict)
    else:
        assert result == expected


async def test_acompletion_and_astream(server):
    reply = await litellm.acompletion(
        model="openai/m1",
        messages=[{"role": "user", "content": "async hi"}],
        api_base=server.base_url,
        api_key="sk-test",
        max_retries=0,
    )
    assert reply.choices[0].message.content.startswith("[m1] ")
    stream = await litellm.acompletion(
        model="openai/m1",
        messages=[{"role": "user", "content": "async hi"}],
        api_base=server.base_url,
        api_key="sk-test",
        max_retries=0,
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == reply.choices[0].message.content


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault.http(400), litellm.BadRequestError, id="400"),
        pytest.param(Fault.http(401), litellm.AuthenticationError, id="401"),
        pytest.param(Fault.http(404), litellm.NotFoundError, id="404"),
        pytest.param(Fault.http(408), litellm.Timeout, id="408"),
        pytest.param(Fault.http(429, retry_after=2), litellm.RateLimitError, id="429"),
        pytest.param(Fault.http(500), litellm.InternalServerError, id="500"),
        pytest.param(Fault.http(503), litellm.ServiceUnavailableError, id="503"),
        pytest.param(Fault.context_window(), litellm.ContextWindowExceededError, id="context_window"),
        pytest.param(Fault.content_filter(), litellm.ContentPolicyViolationError, id="content_filter"),
        pytest.param(Fault.close(), litellm.InternalServerError, id="close"),
        pytest.param(Fault.malformed(), litellm.InternalServerError, id="malformed"),
        pytest.param(Fault.stream_break(), litellm.InternalServerError, id="stream_break-non-stream"),
    ],
)
def test_fault_maps_to_litellm_exception(server, fault, expected):
    server.set_faults("flaky", [fault])
    with pytest.raises(Exception) as excinfo:
        _call(server, "flaky")
    assert type(excinfo.value) is expected
    assert _call(server, "flaky").choices[0].message.content  # the queue is consumed: next call works
    assert server.count("flaky") == 2


def test_rate_limit_sends_retry_after(server):
    server.set_faults("limited", ["429:2"])
    with pytest.raises(litellm.RateLimitError) as excinfo:
        _call(server, "limited")
    assert excinfo.value.litellm_response_headers["retry-after"] == "2"


def test_hang_times_out_without_blocking_others(server):
    server.set_faults("slow", [Fault.hang(5)])
    errors: list[BaseException] = []

    def hanging() -> None:
        try:
            _call(server, "slow", timeout=1)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=hanging)
    thread.start()
    assert _call(server, "fast").choices[0].message.content  # served while "slow" hangs
    thread.join(timeout=30)
    assert [type(e) for e in errors] == [litellm.Timeout]


def _handler_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_stop_releases_hanging_requests():
    before = _handler_threads()
    srv = LocalOpenAIServer().start()
    srv.set_faults("slow", [Fault.hang(60)])
    errors: list[BaseException] = []

    def hanging() -> None:
        try:
            _call(srv, "slow", timeout=120)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=hanging)
    thread.start()
    for _ in range(200):  # wait until the request has arrived
        if srv.count("slow"):
            break
        threading.Event().wait(0.01)
    srv.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [litellm.InternalServerError]
    for _ in range(500):  # the server's own handler thread ends too (it does not sleep on)
        if _handler_threads() <= before:
            break
        threading.Event().wait(0.02)
    assert _handler_threads() <= before


def test_stream_break_abort_raises_mid_stream(server):
    server.set_faults("breaks", [Fault.stream_break(2)])
    received: list[str] = []
    with pytest.raises(litellm.ServiceUnavailableError) as excinfo:  # litellm.MidStreamFallbackError
        for chunk in _call(server, "breaks", "a long prompt with many words in it", stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert type(excinfo.value).__name__ == "MidStreamFallbackError"
    assert "".join(received).startswith("[breaks] ")


def test_stream_break_clean_eof_just_ends(server):
    full = _call(server, "ends", "a long prompt with many words in it").choices[0].message.content
    server.set_faults("ends", [Fault.stream_break(2, abort=False)])
    chunks = list(_call(server, "ends", "a long prompt with many words in it", stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and full.startswith(text) and text != full
    # LiteLLM itself appends a synthetic finish_reason="stop" chunk: the break is invisible there.
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


def test_malformed_stream_raises(server):
    server.set_faults("bad", ["malformed"])
    with pytest.raises(litellm.ServiceUnavailableError) as excinfo:
        list(_call(server, "bad", stream=True))
    assert type(excinfo.value).__name__ == "MidStreamFallbackError"


def test_set_down_and_recover(server):
    server.set_down("gone")
    for _ in range(2):
        with pytest.raises(litellm.ServiceUnavailableError):
            _call(server, "gone")
    server.set_down("gone", False)
    assert _call(server, "gone").choices[0].message.content
    assert server.count("gone") == 3


def _fault_pattern(server: LocalOpenAIServer, n: int) -> list[int]:
    statuses = []
    for _ in range(n):
        request = urllib.request.Request(
            server.base_url + "/chat/completions",
            data=json.dumps({"model": "rnd", "messages": [{"role": "user", "content": "x"}]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
    return statuses


def test_fault_rate_is_seeded(server):
    server.set_fault_rate("rnd", 0.5, [500, "503"], seed=7)
    first = _fault_pattern(server, 30)
    server.set_fault_rate("rnd", 0.5, [500, "503"], seed=7)
    assert _fault_pattern(server, 30) == first
    assert {200, 500, 503} == set(first)


def test_requests_are_recorded_with_secrets_redacted(server):
    _call(server, "m1", "record me")
    (entry,) = server.requests
    assert entry["model"] == "m1" and entry["path"] == "/v1/chat/completions"
    assert entry["body"]["messages"][0]["content"] == "record me"
    assert entry["headers"]["Authorization"] == "<redacted>"
    assert "sk-test" not in json.dumps(server.requests)
    server.reset()
    assert server.requests == [] and server.count() == 0


def test_models_and_health_endpoints(server):
    _call(server, "listed")
    assert _get(server, "/health") == {"status": "ok"}
    assert "listed" in [m["id"] for m in _get(server, "/v1/models")["data"]]


def test_fault_spec_parsing():
    assert Fault.parse("429:1.5") == Fault.http(429, retry_after=1.5)
    assert Fault.parse("hang:2") == Fault.hang(2)
    assert Fault.parse(503) == Fault.http(503)
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("explode")
    with pytest.raises(ValueError, match="400-599"):
        Fault.http(200)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_main_serves_and_stops_on_signal(sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "routed_llm.testing.server", "--port", "0", "--models", "a,b"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://\S+/v1)", line).group(1)
        with urllib.request.urlopen(url + "/models", timeout=5) as response:
            assert [m["id"] for m in json.loads(response.read())["data"]] == ["a", "b"]
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_testing_package_imports_no_litellm():
    heavy = "{'litellm', 'openai', 'httpx', 'fastapi', 'torch'}"
    code = f"import sys, routed_llm.testing.server; print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
