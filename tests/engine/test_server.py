"""The OpenAI-compatible server, driven by the official `openai` client on tiny models.

The server runs in-process on a free loopback port (its own event loop on a thread,
as `llamaterm serve` runs it), so these tests use the synchronous client exactly as
LM Studio's and Xinference's example scripts do.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall
from openai_tools import WEATHER
from pydantic import BaseModel, Field
from serve_testing import ServerThread, tiny_models

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.prediction import LogRecord
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerError, ServerHandle

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"
MAX_BODY = 256 * 1024

TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_current_time",
        "description": "Get the current time, only if asked",
        "parameters": {"type": "object", "properties": {}},
    },
}
TOOLS: list[Any] = [WEATHER, TIME_TOOL]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


@pytest.fixture(scope="module")
def models(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LoadedModel]]:
    with tiny_models(tiny_model_path, tmp_path_factory.mktemp("qwen3")) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def server(models: dict[str, LoadedModel]) -> Iterator[ServerHandle]:
    registry = ModelRegistry([ServedModel(key, model) for key, model in models.items()])
    with ServerThread(ServerHandle(registry, port=0, max_body_bytes=MAX_BODY)) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.url, api_key="not-needed", max_retries=0, timeout=60) as client:
        yield client


class Records:
    """Log bus records of some kinds, collected while a test runs."""

    def __init__(self, *kinds: str) -> None:
        self.kinds = kinds
        self.records: list[LogRecord] = []
        self._lock = threading.Lock()

    def __call__(self, record: LogRecord) -> None:
        if record.kind in self.kinds:
            with self._lock:
                self.records.append(record)

    def of(self, kind: str) -> list[LogRecord]:
        with self._lock:
            return [r for r in self.records if r.kind == kind]

    def wait_for(self, kind: str, **data: Any) -> LogRecord:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for record in self.of(kind):
                if all(record.data.get(k) == v for k, v in data.items()):
                    return record
            time.sleep(0.02)
        raise AssertionError(f"no {kind} record with {data}: {[r.message for r in self.of(kind)]}")


@pytest.fixture
def records() -> Iterator[Records]:
    collected = Records("prompt", "server", "raw_output")
    unsubscribe = LOG_BUS.subscribe(collected)
    yield collected
    unsubscribe()


def ask(text: str = "What is the weather in Paris?") -> list[Any]:
    return [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text}]


# --- models and plain chat ------------------------------------------------------------------


def test_models_are_listed(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == ["tiny", "tiny-qwen3"]
    assert client.models.retrieve("tiny").owned_by == "llamaterm"


def test_chat_completion(client: OpenAI, records: Records) -> None:
    response = client.chat.completions.create(
        model="tiny", messages=ask("Hello there"), max_tokens=8, seed=3, temperature=0.7
    )
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == "tiny"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert response.usage is not None
    assert response.usage.completion_tokens == 8
    assert response.usage.prompt_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + 8
    prompt = records.wait_for("prompt").data["text"]
    assert prompt.endswith("<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n")
    logged = records.wait_for("server", path="/v1/chat/completions")
    assert logged.data["status"] == 200 and logged.data["model"] == "tiny"
    assert logged.data["stop_reason"] == "maxPredictedTokensReached"
    assert logged.data["method"] == "POST" and logged.data["duration"] > 0


def test_streaming_chat_matches_the_whole_reply(
    client: OpenAI, models: dict[str, LoadedModel]
) -> None:
    request: dict[str, Any] = {"model": "tiny", "messages": ask("Stream it"), "max_tokens": 12, "seed": 11}
    models["tiny"].reset_cache()
    whole = client.chat.completions.create(**request)
    models["tiny"].reset_cache()
    chunks = list(client.chat.completions.create(
        **request, stream=True, stream_options={"include_usage": True}
    ))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])


# --- tools ----------------------------------------------------------------------------------


def function_calls(response: ChatCompletion) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = response.choices[0].message.tool_calls or []
    functions = [c for c in calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]
    assert len(functions) == len(calls)
    return functions


def _validate(name: str, arguments: str) -> dict[str, Any]:
    parsed = json.loads(arguments)
    jsonschema.validate(parsed, SCHEMAS[name])
    return parsed  # type: ignore[no-any-return]


@pytest.mark.parametrize("seed", [1, 2])
def test_required_tool_call(client: OpenAI, seed: int) -> None:
    response = client.chat.completions.create(
        model="tiny", messages=ask(), tools=TOOLS, tool_choice="required",
        max_tokens=400, seed=seed, temperature=1.0, parallel_tool_calls=False,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = function_calls(response)
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.id
    _validate(call.function.name, call.function.arguments)


def test_required_tool_calls_may_be_several_by_default(client: OpenAI) -> None:
    # parallel_tool_calls is true unless a request says otherwise (OpenAI's default).
    counts = []
    for seed in (1, 2):
        response = client.chat.completions.create(
            model="tiny", messages=ask(), tools=TOOLS, tool_choice="required",
            max_tokens=400, seed=seed, temperature=1.0,
        )
        assert response.choices[0].finish_reason == "tool_calls"
        calls = function_calls(response)
        for call in calls:
            _validate(call.function.name, call.function.arguments)
        counts.append(len(calls))
    assert min(counts) >= 1 and max(counts) > 1, counts


def test_named_tool_choice_calls_that_tool(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model="tiny", messages=ask(), tools=TOOLS, max_tokens=400, seed=4,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    calls = function_calls(response)
    assert [c.function.name for c in calls] == ["get_weather"]
    _validate("get_weather", calls[0].function.arguments)


def process_stream(stream: Any) -> tuple[str, list[dict[str, Any]]]:
    """LM Studio's tool-streaming-chatbot accumulator, as its docs print it."""
    collected_text = ""
    tool_calls: list[dict[str, Any]] = []
    for chunk in stream:
        delta = chunk.choices[0].delta
        if delta.content:
            collected_text += delta.content
        elif delta.tool_calls:
            for tc in delta.tool_calls:
                if len(tool_calls) <= tc.index:
                    tool_calls.append({
                        "id": "", "type": "function",
                        "function": {"name": "", "arguments": ""},
                    })
                tool_calls[tc.index] = {
                    "id": (tool_calls[tc.index]["id"] + (tc.id or "")),
                    "type": "function",
                    "function": {
                        "name": (tool_calls[tc.index]["function"]["name"] + (tc.function.name or "")),
                        "arguments": (
                            tool_calls[tc.index]["function"]["arguments"] + (tc.function.arguments or "")
                        ),
                    },
                }
    return collected_text, tool_calls


def test_streamed_tool_call_accumulates_as_lm_studio_shows(
    client: OpenAI, models: dict[str, LoadedModel]
) -> None:
    request: dict[str, Any] = {"model": "tiny", "messages": ask(), "tools": TOOLS, "tool_choice": "required",
               "max_tokens": 400, "seed": 5, "temperature": 0.2}
    models["tiny"].reset_cache()
    chunks = list(client.chat.completions.create(**request, stream=True))
    deltas = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    first = deltas[0]
    assert first.index == 0 and first.id and first.type == "function"
    assert first.function is not None and first.function.name and first.function.arguments == ""
    assert all(d.id is None and d.function.name is None for d in deltas[1:])  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    text, tool_calls = process_stream(iter(chunks))
    assert text == ""
    assert len(tool_calls) == 1
    call = tool_calls[0]
    assert call["id"] == first.id
    arguments = _validate(call["function"]["name"], call["function"]["arguments"])

    models["tiny"].reset_cache()
    whole = client.chat.completions.create(**request)
    whole_call = function_calls(whole)[0]
    assert whole_call.function.name == call["function"]["name"]
    assert json.loads(whole_call.function.arguments) == arguments


@pytest.mark.parametrize("model", ["tiny-qwen3", "tiny"])
def test_multi_turn_with_a_tool_result(client: OpenAI, records: Records, model: str) -> None:
    messages = ask("What time is it?")
    first = client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS[1:], tool_choice="required",
        max_tokens=100, seed=2,
    )
    tool_calls = function_calls(first)
    assert [c.function.name for c in tool_calls] == ["get_current_time"]
    # As LM Studio's agent example builds the history: the client's own objects go back.
    messages.append({
        "role": "assistant",
        "tool_calls": [{"id": c.id, "type": c.type, "function": c.function} for c in tool_calls],
    })
    messages.append({"role": "tool", "content": json.dumps({"time": "18:49:31"}),
                     "tool_call_id": tool_calls[0].id})
    # Qwen3's template renders tool turns itself, so the follow-up needs no tools (as in
    # LM Studio's example); the tiny model's template has none, so LM Studio's default
    # format writes the call and its result into the prompt while tools are offered.
    offered: dict[str, Any] = {"tools": TOOLS[1:]} if model == "tiny" else {}
    final = client.chat.completions.create(
        model=model, messages=messages, max_tokens=20, seed=2,
        extra_body={"grammar": 'root ::= "It is 18:49."'}, **offered,
    )
    assert final.choices[0].message.content == "It is 18:49."
    assert final.choices[0].finish_reason == "stop"
    prompt = records.of("prompt")[-1].data["text"]
    assert "18:49:31" in prompt
    if model == "tiny":
        assert '[TOOL_REQUEST]{"name": "get_current_time"' in prompt
    else:
        assert '<tool_call>\n{"name": "get_current_time"' in prompt
        assert "<tool_response>" in prompt


# --- completions ----------------------------------------------------------------------------


def test_completion_with_a_stop_string(client: OpenAI, records: Records) -> None:
    grammar = 'root ::= "ls -la\\n" "$ " [a-z]{3}'
    response = client.completions.create(
        model="tiny", prompt="$ ", stop=["$"], max_tokens=20, extra_body={"grammar": grammar}
    )
    choice = response.choices[0]
    assert response.object == "text_completion"
    assert choice.text == "ls -la\n"
    assert choice.finish_reason == "stop"
    assert records.wait_for("raw_output").data["stop_reason"] == "stopStringFound"
    assert response.usage is not None and response.usage.completion_tokens > 0

    chunks = list(client.completions.create(
        model="tiny", prompt="$ ", stop="$", max_tokens=20, stream=True,
        extra_body={"grammar": grammar},
    ))
    assert "".join(c.choices[0].text for c in chunks) == "ls -la\n"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completion_runs_to_max_tokens(client: OpenAI) -> None:
    response = client.completions.create(model="tiny", prompt="Once upon", max_tokens=6, seed=1)
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and response.usage.completion_tokens == 6


def test_logit_bias_reaches_the_sampler(client: OpenAI, models: dict[str, LoadedModel]) -> None:
    model = models["tiny"]
    token = model.tokenize("fox", add_special=False)[0]
    assert model._pieces is not None
    piece = model._pieces(token).decode()
    response = client.completions.create(
        model="tiny", prompt="the", max_tokens=4, seed=2, logit_bias={str(token): 100}
    )
    assert response.choices[0].text == piece * 4
    # -100 bans: the greedy choice, banned, is not chosen.
    greedy = client.completions.create(model="tiny", prompt="the", max_tokens=1, temperature=0)
    first = greedy.choices[0].text
    assert first
    assert model._llama is not None
    same = {str(t): -100 for t in range(model._llama.n_vocab()) if model._pieces(t) == first.encode()}
    banned = client.completions.create(
        model="tiny", prompt="the", max_tokens=1, temperature=0, logit_bias=same
    )
    assert banned.choices[0].text != first


# --- thinking -------------------------------------------------------------------------------

THINK_THEN_ANSWER = 'root ::= "<think>" [a-z ]{2,12} "</think>" "\\n\\n" [a-z]{1,6}'


def test_thinking_on_returns_reasoning_content(client: OpenAI, records: Records) -> None:
    response = client.chat.completions.create(
        model="tiny-qwen3", messages=ask("Why?"), max_tokens=40, seed=1,
        extra_body={"grammar": THINK_THEN_ANSWER, "chat_template_kwargs": {"enable_thinking": True}},
    )
    message = response.choices[0].message
    assert message.content and message.content.isalpha()
    assert message.reasoning_content  # type: ignore[attr-defined]
    assert "<think>" not in message.content
    assert records.of("prompt")[-1].data["text"].endswith("<|im_start|>assistant\n")

    chunks = list(client.chat.completions.create(
        model="tiny-qwen3", messages=ask("Why?"), max_tokens=40, seed=1, stream=True,
        extra_body={"grammar": THINK_THEN_ANSWER},
    ))
    deltas = [c.choices[0].delta for c in chunks]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert reasoning.strip() and content.isalpha()


@pytest.mark.parametrize(
    "extra",
    [{"enable_thinking": False}, {"chat_template_kwargs": {"enable_thinking": False}}],
    ids=["xinference-style", "chat_template_kwargs"],
)
def test_thinking_off_reaches_the_template(
    client: OpenAI, records: Records, extra: dict[str, Any]
) -> None:
    response = client.chat.completions.create(
        model="tiny-qwen3", messages=ask("Why?"), max_tokens=10, seed=1,
        extra_body={"grammar": "root ::= [a-z]{1,6}", **extra},
    )
    message = response.choices[0].message
    assert message.content and message.content.isalpha()
    assert getattr(message, "reasoning_content", None) is None
    prompt = records.of("prompt")[-1].data["text"]
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


# --- structured output ----------------------------------------------------------------------

PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "happy": {"type": "boolean"},
    },
    "required": ["name", "colour", "happy"],
    "additionalProperties": False,
}


def test_response_format_json_schema(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model="tiny", messages=ask("Describe someone"), max_tokens=120, seed=6,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "profile", "schema": PROFILE_SCHEMA, "strict": True}},
    )
    jsonschema.validate(json.loads(response.choices[0].message.content or ""), PROFILE_SCHEMA)
    assert response.choices[0].finish_reason == "stop"


class Profile(BaseModel):
    name: str = Field(max_length=12)
    happy: bool


def test_openai_parse_helper_gets_a_valid_object(client: OpenAI) -> None:
    response = client.chat.completions.parse(
        model="tiny", messages=ask("Describe someone"), max_tokens=120, seed=8,
        response_format=Profile,
    )
    parsed = response.choices[0].message.parsed
    assert isinstance(parsed, Profile) and len(parsed.name) <= 12


# --- cancellation ---------------------------------------------------------------------------


def test_client_disconnect_cancels_the_prediction(client: OpenAI, records: Records) -> None:
    stream = client.chat.completions.create(
        model="tiny", messages=ask("Talk for a long time"), max_tokens=1500, seed=1, stream=True
    )
    for n, _ in enumerate(stream):
        if n == 3:
            break
    stream.close()
    logged = records.wait_for("server", path="/v1/chat/completions", status=499)
    assert logged.data["stop_reason"] == "userStopped"
    assert logged.data["completion_tokens"] < 1500
    # The model is free again at once.
    after = client.chat.completions.create(model="tiny", messages=ask(), max_tokens=2)
    assert after.choices[0].finish_reason == "length"


def _three_requests(client: OpenAI) -> dict[int, str]:
    results: dict[int, str] = {}

    def run(n: int) -> None:
        response = client.completions.create(
            model="tiny", prompt=f"request {n}", max_tokens=30, seed=n
        )
        results[n] = response.choices[0].finish_reason

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_requests_to_one_model_are_all_served(client: OpenAI, records: Records) -> None:
    # (side by side, each in its slot: see test_batching_server)
    assert _three_requests(client) == {0: "length", 1: "length", 2: "length"}
    kinds = [r.kind for r in records.records if r.kind in ("prompt", "raw_output")]
    assert sorted(kinds) == ["prompt"] * 3 + ["raw_output"] * 3


def test_requests_to_a_one_slot_model_are_served_in_order(
    tiny_model_path: Path, records: Records
) -> None:
    serial = LoadedModel.load(tiny_model_path, LoadConfig(threads=1, parallel=1))
    registry = ModelRegistry([ServedModel("tiny", serial)])
    try:
        with ServerThread(ServerHandle(registry, port=0)) as handle, OpenAI(
            base_url=handle.url, api_key="x", max_retries=0, timeout=60
        ) as client:
            assert _three_requests(client) == {0: "length", 1: "length", 2: "length"}
    finally:
        serial.unload()
    # One prediction at a time: no prompt was rendered while another ran to its end.
    kinds = [r.kind for r in records.records if r.kind in ("prompt", "raw_output")]
    assert kinds == ["prompt", "raw_output"] * 3


# --- API key --------------------------------------------------------------------------------


async def test_api_key_is_required(models: dict[str, LoadedModel]) -> None:
    registry = ModelRegistry([ServedModel("tiny", models["tiny"])])
    async with ServerHandle(registry, port=0, api_key="sekrit") as handle:
        async with openai.AsyncOpenAI(base_url=handle.url, api_key="wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError) as caught:
                await wrong.models.list()
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
        async with httpx.AsyncClient() as http:
            bare = await http.post(f"{handle.url}/chat/completions",
                                   json={"model": "tiny", "messages": ask()})
        assert bare.status_code == 401
        assert set(bare.json()["error"]) == {"message", "type", "param", "code"}
        async with openai.AsyncOpenAI(base_url=handle.url, api_key="sekrit", max_retries=0) as right:
            assert [m.id for m in (await right.models.list()).data] == ["tiny"]
            reply = await right.chat.completions.create(model="tiny", messages=ask(), max_tokens=3)
        assert reply.usage is not None and reply.usage.completion_tokens == 3
    assert not handle.running


async def test_a_taken_port_is_reported(models: dict[str, LoadedModel]) -> None:
    registry = ModelRegistry([ServedModel("tiny", models["tiny"])])
    async with ServerHandle(registry, port=0) as first:
        second = ServerHandle(registry, port=first.port)
        with pytest.raises(ServerError, match="cannot listen"):
            await second.start()


# --- malformed requests ---------------------------------------------------------------------


def post(server: ServerHandle, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}{path}", content=content,
                      headers={"content-type": "application/json"}, timeout=30)


def chat_body(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": ask(), "max_tokens": 2, **fields}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b'{"model": "tiny", "messages": [', None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        ({"model": "tiny"}, "messages", "invalid_value"),
        ({"model": "tiny", "messages": "hello"}, "messages", "invalid_value"),
        ({"model": "tiny", "messages": []}, "messages", "invalid_value"),
        (chat_body(messages=[{"role": "user", "content": 5}]), "messages[0].content", "invalid_value"),
        (chat_body(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role", "invalid_value"),
        (chat_body(messages=[{"role": "user"}]), "messages[0].content", "invalid_value"),
        (chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
         "messages[0].content[0].text", "invalid_value"),
        (chat_body(temperature="hot"), "temperature", "invalid_value"),
        (chat_body(max_tokens=0), "max_tokens", "invalid_value"),
        (chat_body(stop=["$", ""]), "stop", "invalid_value"),
        (chat_body(n=17), "n", "invalid_value"),
        (chat_body(n=2, stream=True), "n", "invalid_value"),
        (chat_body(logit_bias={"5": 101}), "logit_bias", "invalid_value"),
        (chat_body(logit_bias={"fox": 1}), "logit_bias.fox", "invalid_value"),
        (chat_body(logit_bias={"-1": 1}), "logit_bias", "invalid_value"),
        (chat_body(tools=[{"type": "function", "function": {}}]), "tools[0].function.name",
         "invalid_value"),
        (chat_body(tools=TOOLS, tool_choice="sometimes"), "tool_choice", "invalid_value"),
        (chat_body(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}),
         "tool_choice.function.name", None),
        (chat_body(tool_choice="required"), "tool_choice", None),
        (chat_body(response_format={"type": "xml"}), "response_format.type", "invalid_value"),
        (chat_body(chat_template_kwargs={"enable_thinking": "maybe"}),
         "chat_template_kwargs.enable_thinking", None),
        (chat_body(chat_template_kwargs={"messages": []}), "chat_template_kwargs.messages", None),
        (chat_body(messages=[{"role": "assistant", "content": "",
                              "tool_calls": [{"id": "1", "type": "function",
                                              "function": {"name": "f", "arguments": "{oops"}}]}]),
         "messages[0].tool_calls[0]", "invalid_value"),
    ],
)
def test_malformed_chat_requests_name_the_field(
    server: ServerHandle, body: Any, param: str | None, code: str | None
) -> None:
    response = post(server, "/chat/completions", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    assert error["message"]


def test_malformed_completion_requests(server: ServerHandle) -> None:
    missing = post(server, "/completions", {"model": "tiny"})
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "prompt")
    echo = post(server, "/completions", {"model": "tiny", "prompt": "x", "echo": True})
    assert (echo.status_code, echo.json()["error"]["param"]) == (400, "echo")
    several = post(server, "/completions", {"model": "tiny", "prompt": ["a", "b"]})
    assert (several.status_code, several.json()["error"]["param"]) == (400, "prompt")


def test_an_oversized_body_is_refused(server: ServerHandle, client: OpenAI) -> None:
    huge = "x" * (MAX_BODY + 1)
    response = post(server, "/chat/completions", chat_body(messages=[{"role": "user", "content": huge}]))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": huge}])
    assert caught.value.status_code == 413
    assert client.models.list().data


def test_engine_failures_are_openai_errors_and_the_server_lives_on(
    server: ServerHandle, client: OpenAI
) -> None:
    bad = post(server, "/chat/completions", chat_body(grammar="root ::= ("))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "grammar"
    with pytest.raises(openai.APIError, match="invalid grammar"):
        list(client.chat.completions.create(
            model="tiny", messages=ask(), max_tokens=3, stream=True,
            extra_body={"grammar": "root ::= ("},
        ))
    unknown = httpx.get(f"{server.url}/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_endpoint"
    wrong_method = httpx.get(f"{server.url}/chat/completions")
    assert wrong_method.status_code == 405
    assert client.chat.completions.create(model="tiny", messages=ask(), max_tokens=2).choices


def test_no_loaded_model_is_a_503(models: dict[str, LoadedModel]) -> None:
    with ServerThread(ServerHandle(ModelRegistry(), port=0)) as handle:
        response = post(handle, "/chat/completions", chat_body())
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "no_model"
        assert httpx.get(f"{handle.url}/models").json() == {"object": "list", "data": []}


# --- `llamaterm serve` ----------------------------------------------------------------------

SERVE = """
import argparse, sys
from engine.settings import load_settings
from tui.cli.serve import add_serve_parser, run_serve
parser = argparse.ArgumentParser(prog="llamaterm")
add_serve_parser(parser.add_subparsers(dest="command"))
sys.exit(run_serve(parser.parse_args(sys.argv[1:]), load_settings()))
"""


def test_serve_command_serves_until_interrupted(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "LLAMATERM_API_KEY": "from-env"}
    env.pop("LLAMATERM_CONFIG", None)
    # The LM Studio SDK's port (41343) is for the tests that mean to bind it.
    config = tmp_path / "config" / "llamaterm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[server]\nsdk_port = 0\n")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--model", str(tiny_model_path), "--port", "0"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stderr is not None
        banner = [process.stderr.readline() for _ in range(2)]
        assert banner[0].startswith("serving tiny-test-model at http://127.0.0.1:"), banner
        assert banner[1].strip() == "API key required"
        url = banner[0].split(" at ")[1].strip()
        with OpenAI(base_url=url, api_key="from-env", max_retries=0) as served:
            reply = served.chat.completions.create(
                model="tiny-test-model", messages=ask(), max_tokens=3
            )
        assert reply.usage is not None and reply.usage.completion_tokens == 3
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "POST /v1/chat/completions 200 tiny-test-model" in err
    assert "stopping" in err


def test_serve_command_reports_a_missing_model(isolated_dirs: Path, tmp_path: Path) -> None:
    import argparse

    from engine.settings import Settings
    from tui.cli.serve import add_serve_parser, run_serve

    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--model", str(tmp_path / "absent.gguf"), "--port", "0"])
    # Unset on the command line: [server] in the config decides (127.0.0.1:1234 by default).
    assert (args.host, args.port, args.api_key) == (None, 0, None)
    assert Settings().server.host == "127.0.0.1"
    assert run_serve(args, Settings()) == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--port", "70000"])


async def test_stopping_the_server_ends_streams_in_flight(models: dict[str, LoadedModel]) -> None:
    registry = ModelRegistry([ServedModel("tiny", models["tiny"])])
    handle = ServerHandle(registry, port=0)
    await handle.start()
    async with openai.AsyncOpenAI(base_url=handle.url, api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="tiny", messages=ask("Go on forever"), max_tokens=1500, stream=True
        )
        chunk_iterator = aiter(stream)
        chunks = [await anext(chunk_iterator) for _ in range(3)]
        started = time.perf_counter()
        stopping = asyncio.create_task(handle.stop())
        rest = [chunk async for chunk in chunk_iterator]
        await stopping
    assert time.perf_counter() - started < 2
    assert chunks[0].choices[0].delta.role == "assistant"
    assert rest[-1].choices[0].finish_reason == "stop"
    assert not handle.running
