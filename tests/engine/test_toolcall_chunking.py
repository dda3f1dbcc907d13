"""Tool calls: one answer however the text arrives.

For every format, text fed in any chunking gives the same events, joined, as the same
text parsed in one piece: the same content, the same calls with the same arguments,
the same errors. Inputs are calls as each format writes them, mutated (characters
dropped, inserted, spans doubled), among marker noise: where a parser has to decide
on a prefix of the text, it must decide as it would on the whole.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toolcall_cases import CALLS, CASES, NAMES, TOOLS

from engine.prediction import (
    ContentDelta,
    Event,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)
from engine.toolcalls import FORMATS, TOOL_FORMATS, ToolCallParser

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_property_settings_keep_the_profiles_derandomize() -> None:
    # CI's profile (tests/conftest.py) derandomizes; PROPERTY must not set it back.
    assert PROPERTY.derandomize == settings.default.derandomize

Joined = list[tuple[Any, ...]]


def joined(events: list[Event]) -> Joined:
    """The events with their pieces joined: content runs as one text, each call's
    argument pieces as one text. A call that an error cancels streamed pieces only a
    stream can show (they came before the error was known), so they are left out."""
    out: Joined = []
    for event in events:
        if isinstance(event, ContentDelta):
            out.append(("content", event.text))
        elif isinstance(event, ToolCallStarted):
            out.append(("started", event.index, event.name))
        elif isinstance(event, ToolCallArgumentsDelta):
            out.append(("arguments", event.index, event.text))
        elif isinstance(event, ToolCallFinished):
            out.append(("finished", event.index, event.call.name, event.call.arguments))
        elif isinstance(event, ToolCallParseError):
            finished = {e[1] for e in out if e[0] == "finished"}
            out = [e for e in out if e[0] not in ("started", "arguments") or e[1] in finished]
            out.append(("error", event.raw_text, event.reason))
    merged: Joined = []
    for item in out:
        last = merged[-1] if merged else None
        if last is not None and item[0] == last[0] == "content":
            merged[-1] = ("content", last[1] + item[1])
        elif last is not None and item[0] == last[0] == "arguments" and item[1] == last[1]:
            merged[-1] = ("arguments", item[1], last[2] + item[2])
        else:
            merged.append(item)
    return merged


def parse(fmt: str, pieces: list[str], **kw: Any) -> tuple[Joined, list[str]]:
    parser = ToolCallParser(fmt, **kw)
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.finish()
    return joined(events), parser.raw_calls


def writers_of(fmt: str) -> list[str]:
    """Whole calls as `fmt` (and each variant of it) writes them: one call, then two."""
    return [w(calls) for f, w in CASES.values() if f == fmt for calls in (CALLS[:1], CALLS)]


MARKERS = sorted({m for record in FORMATS.values() for m in record.openers}) + [
    "</tool_call>", "[END_TOOL_REQUEST]", "[ARGS]", "</function>", "</parameter>",
    "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>", "<|tool_call_end|>", "<|call|>",
    "<|message|>", "<tool_call|>", "```", "{", "}", "[", "]", '"', ",", ":", "\n", " ",
]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """The text with a few characters dropped, inserted or spans doubled."""
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["drop", "insert", "double"]))
        if kind == "drop":
            text = text[:at] + text[at + draw(st.integers(1, 4)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(MARKERS) | st.text(max_size=2)) + text[at:]
        else:
            end = draw(st.integers(at, min(len(text), at + 40)))
            text = text[:end] + text[at:end] + text[end:]
    return text


@st.composite
def inputs(draw: st.DrawFn, fmt: str) -> str:
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(writers_of(fmt)).flatmap(mutated),
                st.sampled_from(MARKERS),
                st.sampled_from(["Sure. ", "Done.", "  ", "é"]),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return "".join(parts)


@st.composite
def chunked(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=16))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("fmt", TOOL_FORMATS)
@PROPERTY
@given(data=st.data())
def test_any_chunking_gives_the_events_of_one_piece(fmt: str, data: st.DataObject) -> None:
    text = data.draw(inputs(fmt))
    kw = data.draw(st.sampled_from([{}, {"tools": TOOLS}, {"tool_names": NAMES}]))
    whole = parse(fmt, [text], **kw)
    assert parse(fmt, data.draw(chunked(text)), **kw) == whole


@pytest.mark.parametrize("fmt", TOOL_FORMATS)
def test_one_character_at_a_time_gives_the_events_of_one_piece(fmt: str) -> None:
    for text in writers_of(fmt):
        text = f"Sure. {text}\n" if fmt != "llama3" else text
        assert parse(fmt, list(text), tools=TOOLS) == parse(fmt, [text], tools=TOOLS)


# Found by mutating inputs: each gave a different answer streamed than in one piece.
DISAGREED: list[tuple[str, str, int]] = [
    # A repeated "name" key: a stream announces the first, json.loads keeps the last.
    (
        "mistral",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {}}, '
        '{"name": "search", "arguments": {"query": "x"}, "name": "get_weather", "arguments": {}}]',
        70,
    ),
    (
        "command_r7b",
        '<|START_ACTION|>[{"tool_call_id": "1", "tool_name": "se", "tool_name": "get_weather", '
        '"parameters": {}}]<|END_ACTION|>',
        60,
    ),
    # A header within its length limit, cut while its end marker was arriving.
    (
        "gpt_oss",
        "<|start|>assistant to=functions.search<|channel|>commentary json<>commentary "
        'to=funcions.get_weather <|constrain|>json<|message|>{"a": 1}<|call|>',
        132,
    ),
    (
        "deepseek_r1",
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<tool▁sep｜>get_weather\n```json\n"
        '{"location": "Paris, France", "days": 3}\n```<｜tool▁call▁end｜><｜tool▁call▁begin｜>'
        'function<｜tool▁sep｜>search\n```json\n{"query": "x"}\n```<｜tool▁call▁end｜>',
        150,
    ),
    # Whitespace after a call with no section end: the cut fell inside it.
    (
        "deepseek_v3",
        '<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"location": "Paris"}<｜tool▁call▁end｜>  <TOOLCALL>',
        81,
    ),
]


@pytest.mark.parametrize(("fmt", "text", "cut"), DISAGREED)
def test_inputs_that_once_disagreed(fmt: str, text: str, cut: int) -> None:
    whole = parse(fmt, [text])
    for at in {cut, *range(0, len(text) + 1, 7)}:
        assert parse(fmt, [text[:at], text[at:]]) == whole, at
