"""A call that fails after it was announced gives its index to the next call: the
OpenAI stream, whose clients join the pieces of one index into one call, must give
the next call an index of its own. Through the official `openai` client on the tiny
model, its grammar writing a call that breaks and then one that parses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from serve_testing import ServerThread

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.prediction import ToolCallParseError, ToolCallStarted
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle
from engine.toolcalls import ToolCallParser


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"note": {"type": "string"}}},
        },
    }


TOOLS = [_tool("take_memo"), _tool("take_note")]
BROKEN = '[TOOL_REQUEST]{"name": "take_memo", "arguments": {"note": tru}}[END_TOOL_REQUEST]'
GOOD = '[TOOL_REQUEST]{"name": "take_note", "arguments": {"note": "hi"}}[END_TOOL_REQUEST]'
GRAMMAR = f"root ::= {json.dumps(BROKEN)} {json.dumps(GOOD)}"


def test_the_parser_reuses_the_failed_calls_index() -> None:
    # What the stream below has to cope with: two starts at index 0, an error between.
    parser = ToolCallParser("default", tools=TOOLS)
    events = [e for piece in (BROKEN, GOOD) for e in parser.feed(piece)] + parser.finish()
    starts = [e for e in events if isinstance(e, ToolCallStarted)]
    assert [(s.index, s.name) for s in starts] == [(0, "take_memo"), (0, "take_note")]
    assert any(isinstance(e, ToolCallParseError) for e in events)


@pytest.fixture(scope="module")
def client(tiny_model_path: Path) -> Iterator[OpenAI]:
    model = LoadedModel.load(tiny_model_path, LoadConfig(context_length=2048, threads=1))
    registry = ModelRegistry([ServedModel("tiny", model)])
    try:
        with ServerThread(ServerHandle(registry, port=0)) as handle, OpenAI(
            base_url=handle.url, api_key="not-needed", max_retries=0, timeout=60
        ) as openai_client:
            yield openai_client
    finally:
        model.unload()


def _request() -> dict[str, Any]:
    return {
        "model": "tiny", "messages": [{"role": "user", "content": "Note it."}],
        "tools": TOOLS, "max_tokens": 400, "extra_body": {"grammar": GRAMMAR},
    }


def test_the_next_call_streams_under_an_index_of_its_own(client: OpenAI) -> None:
    whole = client.chat.completions.create(**_request()).choices[0].message
    assert [(c.function.name, json.loads(c.function.arguments)) for c in whole.tool_calls or []] == [
        ("take_note", {"note": "hi"})
    ]
    # Accumulated as OpenAI's docs say: by index, every field's pieces joined.
    joined: dict[int, dict[str, str]] = {}
    for chunk in client.chat.completions.create(**_request(), stream=True):
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = joined.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += piece.id or ""
            if piece.function is not None:
                entry["name"] += piece.function.name or ""
                entry["arguments"] += piece.function.arguments or ""
    names = [entry["name"] for entry in joined.values()]
    assert names == ["take_memo", "take_note"], joined
    good = joined[max(joined)]
    assert json.loads(good["arguments"]) == {"note": "hi"}
    assert len(good["id"]) == 9  # one call's id, not two joined
    # The broken call keeps its own pieces only.
    assert '{"note": tru}}'.startswith(joined[min(joined)]["arguments"])


def test_responses_stream_agrees_with_the_whole_response(client: OpenAI) -> None:
    tools: Any = [
        {"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]}
        for t in TOOLS
    ]
    request: dict[str, Any] = {
        "model": "tiny", "input": "Note it.", "tools": tools, "max_output_tokens": 400,
        "extra_body": {"grammar": GRAMMAR},
    }

    def shape(output: list[Any]) -> list[tuple[Any, ...]]:
        return [(i.type, getattr(i, "name", None), getattr(i, "arguments", None)) for i in output]

    whole = client.responses.create(**request)
    assert [i for i in shape(whole.output) if i[0] == "function_call"] == [
        ("function_call", "take_note", '{"note": "hi"}')
    ]
    done: list[Any] = []
    completed = None
    for event in client.responses.create(**request, stream=True):
        if event.type == "response.output_item.done":
            done.append(event.item)
        elif event.type == "response.completed":
            completed = event.response
    assert completed is not None
    assert shape(completed.output) == shape(whole.output)
    # The failed call's item was announced, so it is done, but incomplete.
    assert [(i.name, i.status) for i in done if i.type == "function_call"] == [
        ("take_memo", "incomplete"), ("take_note", "completed")
    ]
