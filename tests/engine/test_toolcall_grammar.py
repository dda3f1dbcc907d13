"""Forced tool calls: parallel grammars (OpenAI's parallel_tool_calls) give one or more
calls in each format, and every one of them parses and validates; without `parallel`,
the grammar is the one-call grammar it always was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from toolcall_cases import TOOLS

import engine as lms
from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.toolcalls import MAX_PARALLEL, tool_call_grammar
from engine.toolcalls.formats import GRAMMARS


@pytest.fixture(scope="module")
def tiny(tiny_model_path: Path):  # type: ignore[no-untyped-def]
    model = LoadedModel.load(tiny_model_path, LoadConfig(context_length=2048))
    yield model
    model.unload()


def schema_of(name: str) -> dict[str, Any]:
    return next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == name)


@pytest.mark.parametrize("fmt", sorted(GRAMMARS))
def test_parallel_grammar_yields_calls_the_parser_reads(tiny: LoadedModel, fmt: str) -> None:
    grammar = tool_call_grammar(TOOLS, "required", fmt, parallel=True)
    counts = []
    for seed in range(1, 7):
        stream = tiny.complete_sync("call", {"grammar": grammar, "maxTokens": 600, "seed": seed})
        list(stream)
        assert stream.result is not None
        text = stream.result.content
        parsed = lms.parse_output(text, format="mistral" if fmt == "mistral_v11" else fmt, tools=TOOLS)
        if stream.result.stats.stop_reason != "eosFound":
            continue  # cut off by maxTokens: the last call may be unfinished
        assert 1 <= len(parsed.tool_calls) <= MAX_PARALLEL, (text, parsed.errors)
        assert parsed.errors == [], text
        for call in parsed.tool_calls:
            jsonschema.validate(call.arguments, schema_of(call.name))
        counts.append(len(parsed.tool_calls))
    assert counts, "every reply ran out of tokens"


@pytest.mark.parametrize("fmt", sorted(GRAMMARS))
def test_one_call_grammar_is_unchanged_by_the_parallel_option(fmt: str) -> None:
    single = tool_call_grammar(TOOLS, "required", fmt)
    assert tool_call_grammar(TOOLS, "required", fmt, parallel=False) == single
    assert tool_call_grammar(TOOLS, "required", fmt, parallel=True) != single
