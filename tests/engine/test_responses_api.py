"""`POST /v1/responses`, driven by the official `openai` client's `responses.create`.

The same server as tests/engine/test_server.py (in-process, on a free loopback port,
tiny models); the tool flows are LM Studio's tool-use examples, through the Responses
API instead of chat completions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseFunctionToolCall
from openai_tools import WEATHER
from pydantic import BaseModel, Field
from serve_testing import ServerThread, tiny_models
from test_server import Records

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.responses import ResponseStore, input_messages
from engine.serve.run import ServerHandle

TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_current_time",
    "description": "Get the current time, only if asked",
    "parameters": {"type": "object", "properties": {}},
}
WEATHER_TOOL: dict[str, Any] = {"type": "function", **WEATHER["function"]}
TOOLS: list[Any] = [WEATHER_TOOL, TIME_TOOL]
SCHEMAS = {t["name"]: t["parameters"] for t in TOOLS}
THINK_THEN_ANSWER = 'root ::= "<think>" [a-z ]{2,12} "</think>" "\\n\\n" [a-z]{1,6}'
PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
    },
    "required": ["name", "colour"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def models(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LoadedModel]]:
    with tiny_models(tiny_model_path, tmp_path_factory.mktemp("qwen3")) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def server(models: dict[str, LoadedModel]) -> Iterator[ServerHandle]:
    registry = ModelRegistry([ServedModel(key, model) for key, model in models.items()])
    with ServerThread(ServerHandle(registry, port=0)) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.url, api_key="not-needed", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
def records() -> Iterator[Records]:
    collected = Records("prompt", "server")
    unsubscribe = LOG_BUS.subscribe(collected)
    yield collected
    unsubscribe()


def calls_of(response: Response) -> list[ResponseFunctionToolCall]:
    return [item for item in response.output if isinstance(item, ResponseFunctionToolCall)]


def _validate(name: str, arguments: str) -> dict[str, Any]:
    parsed = json.loads(arguments)
    jsonschema.validate(parsed, SCHEMAS[name])
    return parsed  # type: ignore[no-any-return]


# --- text -----------------------------------------------------------------------------------


def test_a_text_response(client: OpenAI, records: Records) -> None:
    response = client.responses.create(
        model="tiny", input="Hello there", instructions="You are a helpful assistant.",
        max_output_tokens=8, temperature=0.7, extra_body={"seed": 3},
    )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.model == "tiny" and response.temperature == 0.7
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 8
    assert response.usage.total_tokens == response.usage.input_tokens + 8
    prompt = records.wait_for("prompt").data["text"]
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert prompt.endswith("<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n")
    logged = records.wait_for("server", path="/v1/responses")
    assert logged.data["status"] == 200 and logged.data["model"] == "tiny"


def test_input_items_become_the_conversation(client: OpenAI, records: Records) -> None:
    response = client.responses.create(
        model="tiny", max_output_tokens=4,
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Bonjour"}]},
            {"role": "user", "content": "Again"},
        ],
    )
    assert response.output_text
    prompt = records.wait_for("prompt").data["text"]
    assert ("<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nBonjour<|im_end|>\n<|im_start|>user\nAgain<|im_end|>") in prompt


def test_streamed_events_add_up_to_the_whole_response(
    client: OpenAI, models: dict[str, LoadedModel]
) -> None:
    request: dict[str, Any] = {"model": "tiny", "input": "Stream it", "max_output_tokens": 20,
                               "extra_body": {"grammar": 'root ::= "Hello" " there"'}}
    whole = client.responses.create(**request)
    events = list(client.responses.create(**request, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == whole.output_text == "Hello there"
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.status == "completed" and done.response.output_text == text
    assert done.response.usage is not None and done.response.usage.output_tokens > 0
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert item_ids == {done.response.output[0].id}


# --- tools: LM Studio's tool-use flows through responses.create -------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_required_tool_call(client: OpenAI, seed: int) -> None:
    response = client.responses.create(
        model="tiny", input="What is the weather in Paris?", tools=TOOLS, tool_choice="required",
        max_output_tokens=400, temperature=1.0, extra_body={"seed": seed},
        parallel_tool_calls=False,
    )
    calls = calls_of(response)
    assert len(calls) == 1 and len(response.output) == 1
    call = calls[0]
    assert call.call_id and call.id and call.id.startswith("fc_") and call.status == "completed"
    _validate(call.name, call.arguments)
    assert response.status == "completed"
    assert [t.name for t in response.tools] == ["get_weather", "get_current_time"]  # type: ignore[union-attr]


def test_required_tool_calls_may_be_several_by_default(client: OpenAI) -> None:
    counts = []
    for seed in (1, 2):
        response = client.responses.create(
            model="tiny", input="What is the weather in Paris?", tools=TOOLS,
            tool_choice="required", max_output_tokens=400, temperature=1.0,
            extra_body={"seed": seed},
        )
        assert response.parallel_tool_calls
        calls = calls_of(response)
        for call in calls:
            _validate(call.name, call.arguments)
        counts.append(len(calls))
    assert min(counts) >= 1 and max(counts) > 1, counts


def test_named_tool_choice_calls_that_tool(client: OpenAI) -> None:
    response = client.responses.create(
        model="tiny", input="What is the weather in Paris?", tools=TOOLS, max_output_tokens=400,
        tool_choice={"type": "function", "name": "get_weather"}, extra_body={"seed": 4},
    )
    assert [c.name for c in calls_of(response)] == ["get_weather"]
    _validate("get_weather", calls_of(response)[0].arguments)


def test_streamed_tool_call(client: OpenAI, models: dict[str, LoadedModel]) -> None:
    request: dict[str, Any] = {"model": "tiny", "input": "What is the weather in Paris?",
                               "tools": TOOLS, "tool_choice": "required", "max_output_tokens": 400,
                               "temperature": 0.2, "extra_body": {"seed": 5}}
    models["tiny"].reset_cache()
    events = list(client.responses.create(**request, stream=True))
    added = [e for e in events if e.type == "response.output_item.added"]
    assert len(added) == 1 and added[0].item.type == "function_call"
    assert added[0].item.name and added[0].item.arguments == ""
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].arguments == deltas
    arguments = _validate(added[0].item.name, deltas)
    assert events[-2].type == "response.output_item.done"
    final = events[-1]
    assert final.type == "response.completed"
    [call] = calls_of(final.response)
    assert call.arguments == deltas and call.call_id == added[0].item.call_id

    models["tiny"].reset_cache()
    whole = client.responses.create(**request)
    [whole_call] = calls_of(whole)
    assert whole_call.name == call.name and json.loads(whole_call.arguments) == arguments


@pytest.mark.parametrize("model", ["tiny-qwen3", "tiny"])
def test_multi_turn_with_a_function_call_output(
    client: OpenAI, records: Records, model: str
) -> None:
    history: list[Any] = [{"role": "user", "content": "What time is it?"}]
    first = client.responses.create(
        model=model, input=history, tools=TOOLS[1:], tool_choice="required",
        max_output_tokens=100, extra_body={"seed": 2},
    )
    [call] = calls_of(first)
    assert call.name == "get_current_time"
    # As OpenAI's function-calling guide builds the next input: the output items go back.
    history += first.output
    history.append({"type": "function_call_output", "call_id": call.call_id,
                    "output": json.dumps({"time": "18:49:31"})})
    final = client.responses.create(
        model=model, input=history, tools=TOOLS[1:], max_output_tokens=20,
        extra_body={"grammar": 'root ::= "It is 18:49."'},
    )
    assert final.output_text == "It is 18:49." and final.status == "completed"
    prompt = records.of("prompt")[-1].data["text"]
    assert "18:49:31" in prompt
    if model == "tiny":
        assert '[TOOL_REQUEST]{"name": "get_current_time"' in prompt
    else:
        assert '<tool_call>\n{"name": "get_current_time"' in prompt
        assert "<tool_response>" in prompt


def test_previous_response_id_continues_the_conversation(
    client: OpenAI, records: Records, models: dict[str, LoadedModel]
) -> None:
    models["tiny"].reset_cache()
    first = client.responses.create(
        model="tiny", input="What time is it?", instructions="Be brief.", tools=TOOLS[1:],
        tool_choice="required", max_output_tokens=100, extra_body={"seed": 2},
    )
    [call] = calls_of(first)
    final = client.responses.create(
        model="tiny", previous_response_id=first.id, tools=TOOLS[1:], max_output_tokens=20,
        instructions="Be brief.",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18:49:31"}],
        extra_body={"grammar": 'root ::= "It is 18:49."'},
    )
    assert final.output_text == "It is 18:49." and final.previous_response_id == first.id
    prompt = records.of("prompt")[-1].data["text"]
    assert "What time is it?" in prompt and "18:49:31" in prompt
    assert '[TOOL_REQUEST]{"name": "get_current_time"' in prompt
    # The earlier turn is still in the KV cache: only the new tokens are evaluated.
    assert final.usage is not None and first.usage is not None
    assert final.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens

    kept = client.responses.retrieve(final.id)
    assert kept.output_text == "It is 18:49." and kept.id == final.id
    client.responses.delete(final.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final.id)


def test_store_false_keeps_nothing(client: OpenAI) -> None:
    response = client.responses.create(model="tiny", input="Hi", max_output_tokens=2, store=False)
    assert response.store is False
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="tiny", input="Again", max_output_tokens=2,
                                previous_response_id=response.id)
    assert caught.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_the_store_keeps_a_bounded_number_per_model() -> None:
    store = ResponseStore(per_model=2)
    for n in range(3):
        store.keep("a", {"id": f"a{n}"}, [])
    store.keep("b", {"id": "b0"}, [])
    assert store.get("a0") is None
    assert store.get("a1") is not None and store.get("a2") is not None and store.get("b0") is not None
    assert store.delete("a1") and not store.delete("a1")


def test_output_items_turn_back_into_messages() -> None:
    messages = input_messages([
        {"role": "user", "content": "Weather and time?"},
        {"type": "reasoning", "id": "rs_1", "summary": [],
         "content": [{"type": "reasoning_text", "text": "two tools"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sure."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_current_time", "arguments": ""},
        {"type": "function_call_output", "call_id": "c2", "output": "18:49"},
    ])
    assert messages[1] == {
        "role": "assistant", "content": "Sure.", "reasoning_content": "two tools",
        "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_current_time", "arguments": "{}"}},
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "c2", "name": "get_current_time",
                           "content": "18:49"}


# --- reasoning and structured output ----------------------------------------------------------


def test_reasoning_items(client: OpenAI, records: Records) -> None:
    request: dict[str, Any] = {"model": "tiny-qwen3", "input": "Why?", "max_output_tokens": 40,
                               "reasoning": {"effort": "medium"},
                               "extra_body": {"grammar": THINK_THEN_ANSWER, "seed": 1}}
    response = client.responses.create(**request)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.content
    assert reasoning.content[0].text.strip()
    assert response.output_text.isalpha() and "<think>" not in response.output_text
    assert response.reasoning is not None and response.reasoning.effort == "medium"

    events = list(client.responses.create(**request, stream=True))
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert thought.strip() and text.isalpha()
    final = events[-1]
    assert final.type == "response.completed"
    assert [item.type for item in final.response.output] == ["reasoning", "message"]


def test_reasoning_effort_none_turns_thinking_off(client: OpenAI, records: Records) -> None:
    response = client.responses.create(
        model="tiny-qwen3", input="Why?", max_output_tokens=10, reasoning={"effort": "none"},
        extra_body={"grammar": "root ::= [a-z]{1,6}"},
    )
    assert [item.type for item in response.output] == ["message"]
    prompt = records.of("prompt")[-1].data["text"]
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_text_format_json_schema(client: OpenAI) -> None:
    response = client.responses.create(
        model="tiny", input="Describe someone", max_output_tokens=120, extra_body={"seed": 6},
        text={"format": {"type": "json_schema", "name": "profile", "schema": PROFILE_SCHEMA,
                         "strict": True}},
    )
    jsonschema.validate(json.loads(response.output_text), PROFILE_SCHEMA)
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"


class Profile(BaseModel):
    name: str = Field(max_length=12)
    happy: bool


def test_openai_parse_helper_gets_a_valid_object(client: OpenAI) -> None:
    response = client.responses.parse(
        model="tiny", input="Describe someone", max_output_tokens=120, text_format=Profile,
        extra_body={"seed": 8},
    )
    assert isinstance(response.output_parsed, Profile) and len(response.output_parsed.name) <= 12


# --- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_tool"),
        ({"input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "https://example.com/cat.png"}]}]},
         "input[0].content[0]", "unsupported_content"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type", "invalid_value"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id", "invalid_value"),
        ({"max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
        ({"input": ""}, "input", "invalid_value"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "name": "nope"}},
         "tool_choice.function.name", None),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type", "invalid_value"),
        ({"background": True}, "background", "invalid_value"),
        ({"previous_response_id": "resp_unknown"}, "previous_response_id",
         "previous_response_not_found"),
    ],
)
def test_malformed_requests_name_the_field(
    client: OpenAI, fields: dict[str, Any], param: str, code: str | None
) -> None:
    body: dict[str, Any] = {"model": "tiny", "input": "Hi", "max_output_tokens": 2, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/responses", body=body, cast_to=dict)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (param, code), error


def test_a_failed_prediction_is_an_error_and_the_server_lives_on(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="invalid grammar"):
        client.responses.create(model="tiny", input="Hi", extra_body={"grammar": "root ::= ("})
    with pytest.raises(openai.APIError, match="invalid grammar"):
        list(client.responses.create(model="tiny", input="Hi", stream=True,
                                     extra_body={"grammar": "root ::= ("}))
    assert client.responses.create(model="tiny", input="Hi", max_output_tokens=2).output_text


def test_a_client_that_goes_away_cancels_the_response(client: OpenAI, records: Records) -> None:
    stream = client.responses.create(model="tiny", input="Talk for a long time", stream=True,
                                     max_output_tokens=1500, extra_body={"seed": 1})
    for n, _ in enumerate(stream):
        if n == 5:
            break
    stream.close()
    logged = records.wait_for("server", path="/v1/responses", status=499)
    assert logged.data["stop_reason"] == "userStopped"
    assert logged.data["completion_tokens"] < 1500


# --- the starter model ---------------------------------------------------------------------------


@pytest.mark.starter
def test_starter_model_answers_and_follows_up_cheaply(starter_model_path: Path) -> None:
    gemma = LoadedModel.load(starter_model_path, LoadConfig(context_length=1024))
    try:
        registry = ModelRegistry([ServedModel("gemma-3-270m", gemma)])
        with ServerThread(ServerHandle(registry, port=0)) as handle, \
                OpenAI(base_url=handle.url, api_key="x", max_retries=0, timeout=120) as client:
            first = client.responses.create(
                model="gemma-3-270m", input="What is the capital of France?",
                instructions="Answer in a few words.", max_output_tokens=16, temperature=0,
            )
            assert first.output_text.strip() and first.status in ("completed", "incomplete")
            again = client.responses.create(
                model="gemma-3-270m", input="And of Italy?", previous_response_id=first.id,
                instructions="Answer in a few words.", max_output_tokens=16, temperature=0,
            )
            assert again.output_text
            assert first.usage is not None and again.usage is not None
            assert again.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens - 2
    finally:
        gemma.unload()
