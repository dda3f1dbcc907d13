"""Prompt-aware parsing and the raw-reasoning switch, end to end on the tiny model.

A template whose generation prompt opens `<think>` (QwQ) makes the output start in
reasoning: the engine tells the parser so from the rendered prompt. LM Studio's
`reasoningParsing: {"enabled": false}` (and llama-server's `reasoning_format: "none"`
on the server, chat completions and Responses alike) keeps the reasoning markup in the
content as written, while tool calls still parse. `parallel_tool_calls` decides whether
a forced call may be several.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from serve_testing import ServerThread

from engine.formatting.conversation import constrain_tool_call, respond_sync
from engine.llama import LoadedModel, SyncEventStream
from engine.load_config import LoadConfig
from engine.prediction import (
    ContentDelta,
    Log,
    PredictionConfig,
    PredictionResult,
    ReasoningDelta,
    ToolCallFinished,
)
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle
from engine.toolcalls import tool_call_grammar

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}},
            "required": ["city"],
        },
    },
}
CALL = '<tool_call>\\n{\\"name\\": \\"get_weather\\", \\"arguments\\": {\\"city\\": \\"Paris\\"}}\\n</tool_call>'
# The prompt opened <think>: the model writes the rest of the block, then calls.
THINK_THEN_CALL = f'root ::= "hmm" "</think>" "\\n\\n" "{CALL}"'


@pytest.fixture(scope="module")
def qwq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    from gguf_factory import write_tiny_gguf

    path = write_tiny_gguf(
        tmp_path_factory.mktemp("qwq") / "qwq.gguf",
        chat_template=(TEMPLATES / "Qwen-QwQ-32B.jinja").read_text(encoding="utf-8"),
    )
    model = LoadedModel.load(path, LoadConfig(context_length=1024, batch_size=32))
    yield model
    model.unload()


def finish(stream: SyncEventStream) -> tuple[list[object], PredictionResult]:
    events = [e for e in stream if not isinstance(e, Log)]
    if stream.error is not None:
        raise stream.error
    assert stream.result is not None
    return events, stream.result


def texts(events: list[object]) -> tuple[str, str]:
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    return content, reasoning


def calls(events: list[object]) -> list[tuple[str, dict[str, Any]]]:
    return [(e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallFinished)]


def test_the_prompt_opens_the_block_and_the_call_after_it_parses(qwq: LoadedModel) -> None:
    config = {"maxTokens": 200, "grammar": THINK_THEN_CALL}
    events, result = finish(respond_sync(qwq, "Weather?", config, tools=[WEATHER]))
    assert result.prompt.endswith("<think>\n")
    assert texts(events) == ("", "hmm")
    assert calls(events) == [("get_weather", {"city": "Paris"})]
    assert (result.content, result.reasoning) == ("", "hmm")


def test_reasoning_parsing_off_keeps_the_markup_and_still_parses_calls(qwq: LoadedModel) -> None:
    config = {"maxTokens": 200, "grammar": THINK_THEN_CALL, "reasoningParsing": {"enabled": False}}
    events, result = finish(respond_sync(qwq, "Weather?", config, tools=[WEATHER]))
    assert texts(events) == ("hmm</think>", "")
    assert calls(events) == [("get_weather", {"city": "Paris"})]
    assert result.reasoning == "" and result.content == "hmm</think>"
    # Off is a setting like any other: merged over defaults, and back on by asking.
    on = PredictionConfig.parse({"reasoning_parsing": {"enabled": True}})
    assert on.merged_over(PredictionConfig.parse(config)).reasoning_parsing.enabled


def test_a_forced_call_is_one_call_unless_parallel_calls_are_asked(qwq: LoadedModel) -> None:
    # The act loop runs one call at a time: one unless asked (the server asks, as OpenAI).
    config = PredictionConfig.parse({"maxTokens": 120})
    one = constrain_tool_call(qwq, config, [WEATHER], "required")
    several = constrain_tool_call(qwq, config, [WEATHER], "required", parallel=True)
    assert one.grammar == tool_call_grammar([WEATHER], "required", "hermes")
    assert several.grammar == tool_call_grammar([WEATHER], "required", "hermes", parallel=True)
    for seed, parallel in ((1, None), (2, None), (3, False)):
        options: dict[str, Any] = {} if parallel is None else {"parallel_tool_calls": parallel}
        events, _ = finish(
            respond_sync(
                qwq, "Weather?", {"maxTokens": 120, "seed": seed, "enableThinking": False},
                tools=[WEATHER], tool_choice="required", **options,
            )
        )
        assert len(calls(events)) == 1, seed


# --- the server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(qwq: LoadedModel) -> Iterator[OpenAI]:
    registry = ModelRegistry([ServedModel("qwq", qwq)])
    with ServerThread(ServerHandle(registry, port=0)) as handle, OpenAI(
        base_url=handle.url, api_key="not-needed", max_retries=0, timeout=60
    ) as openai_client:
        yield openai_client


def _chat(client: OpenAI, stream: bool, **extra: Any) -> tuple[str, str, list[tuple[str, Any]]]:
    request: dict[str, Any] = {
        "model": "qwq", "messages": [{"role": "user", "content": "Weather?"}],
        "max_tokens": 200, "tools": [WEATHER],
        "extra_body": {"grammar": THINK_THEN_CALL, **extra},
    }
    if not stream:
        message = client.chat.completions.create(**request).choices[0].message
        found = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]
        return message.content or "", getattr(message, "reasoning_content", None) or "", found
    content = reasoning = ""
    arguments: dict[int, list[str]] = {}
    for chunk in client.chat.completions.create(**request, stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += getattr(delta, "reasoning_content", None) or ""
        for piece in delta.tool_calls or []:
            entry = arguments.setdefault(piece.index, ["", ""])
            if piece.function and piece.function.name:
                entry[0] = piece.function.name
            if piece.function and piece.function.arguments:
                entry[1] += piece.function.arguments
    return content, reasoning, [(n, json.loads(a)) for n, a in arguments.values()]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_reasoning_format_none_on_chat_completions(client: OpenAI, stream: bool) -> None:
    weather = [("get_weather", {"city": "Paris"})]
    assert _chat(client, stream) == ("", "hmm", weather)
    assert _chat(client, stream, reasoning_format="none") == ("hmm</think>", "", weather)
    assert _chat(client, stream, reasoning_format="auto") == ("", "hmm", weather)


def test_reasoning_format_none_on_responses(client: OpenAI) -> None:
    def output(**extra: Any) -> list[tuple[str, Any]]:
        response = client.responses.create(
            model="qwq", input="Weather?", max_output_tokens=200, tools=[{
                "type": "function", "name": "get_weather",
                "parameters": WEATHER["function"]["parameters"],  # type: ignore[index]
            }],
            extra_body={"grammar": THINK_THEN_CALL, **extra},
        )
        items: list[tuple[str, Any]] = []
        for item in response.output:
            if item.type == "reasoning":
                items.append(("reasoning", "".join(c.text for c in item.content or [])))
            elif item.type == "message":
                items.append(("message", "".join(getattr(c, "text", "") for c in item.content)))
            elif item.type == "function_call":
                items.append((item.name, json.loads(item.arguments)))
        return items

    assert output() == [("reasoning", "hmm"), ("get_weather", {"city": "Paris"})]
    assert output(reasoning_format="none") == [
        ("message", "hmm</think>"),
        ("get_weather", {"city": "Paris"}),
    ]


def test_reasoning_format_is_checked(client: OpenAI) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="qwq", messages=[{"role": "user", "content": "x"}], max_tokens=2,
            extra_body={"reasoning_format": "sometimes"},
        )
    assert "reasoning_format" in str(caught.value)
