"""Tool calls: format detection, the default format, and the streaming parser."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toolcall_cases import CALLS, CASES, NAMES, TOOLS, WEATHER, WRITERS

from engine.formatting.reasoning import HARMONY, THINK, ReasoningParser
from engine.formatting.templates import CHATML_TEMPLATE, GEMMA_TEMPLATE, ChatTemplate, render
from engine.prediction import (
    ContentDelta,
    Event,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)
from engine.toolcalls import (
    DEFAULT_TOOL_SYSTEM_PROMPT,
    TOOL_FORMATS,
    OutputPipeline,
    ToolCallParser,
    default_tool_system_prompt,
    detect_tool_format,
    parse_output,
    to_default_format,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"


def test_every_format_has_a_writer() -> None:
    assert set(WRITERS) == set(TOOL_FORMATS)


# --- running the parser ---------------------------------------------------------------


@dataclass
class Outcome:
    events: list[Event]
    raw_calls: list[str]
    content: str = ""
    calls: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    errors: list[ToolCallParseError] = field(default_factory=list)
    arguments_text: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for event in self.events:
            if isinstance(event, ContentDelta):
                self.content += event.text
            elif isinstance(event, ToolCallFinished):
                self.calls.append((event.index, event.call.name, event.call.arguments))
                self.ids.append(event.call.id)
            elif isinstance(event, ToolCallParseError):
                self.errors.append(event)
            elif isinstance(event, ToolCallStarted):
                # A failed call gives its index to the next: its pieces go with it.
                self.arguments_text[event.index] = ""
            elif isinstance(event, ToolCallArgumentsDelta):
                self.arguments_text[event.index] = self.arguments_text.get(event.index, "") + event.text

    def summary(self) -> tuple[Any, ...]:
        """What must not depend on how the text was cut into pieces."""
        return (self.content, self.calls, [(e.reason, e.raw_text) for e in self.errors])

    def reassembled(self) -> str:
        """Content and the raw text of each call, in the order the events came."""
        parts = []
        for event in self.events:
            if isinstance(event, ContentDelta):
                parts.append(event.text)
            elif isinstance(event, ToolCallFinished):
                parts.append(self.raw_calls[event.index])
        return "".join(parts)


def parse(
    fmt: str, text: str, cuts: Sequence[int] = (), *, names: Sequence[str] | None = None, **kw: Any
) -> Outcome:
    parser = ToolCallParser(fmt, tool_names=names, **kw)
    events: list[Event] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += parser.feed(text[start:cut])
        start = cut
    events += parser.feed(text[start:])
    events += parser.finish()
    return Outcome(events, parser.raw_calls)


def check_protocol(outcome: Outcome) -> None:
    """Events of each call come in order: started, argument pieces, finished; indexes
    count from 0; the argument pieces of a call are its arguments' JSON. A parse error
    cancels a started call, pieces and all, and the next call reuses its index."""
    open_call: ToolCallStarted | None = None
    pieces = ""  # the open call's argument pieces so far
    finished = 0
    for event in outcome.events:
        if isinstance(event, ToolCallStarted):
            assert open_call is None
            assert event.index == finished
            assert re.fullmatch(r"[A-Za-z0-9]{9}", event.id)
            open_call, pieces = event, ""
        elif isinstance(event, ToolCallArgumentsDelta):
            assert open_call is not None and event.index == open_call.index
            pieces += event.text
        elif isinstance(event, ToolCallFinished):
            assert open_call is not None and event.index == open_call.index
            assert event.call.id == open_call.id and event.call.name == open_call.name
            assert json.loads(pieces) == event.call.arguments
            assert outcome.arguments_text[event.index] == pieces
            open_call = None
            finished += 1
        elif isinstance(event, ToolCallParseError):
            open_call = None  # an error cancels a started call
            assert not event.reason.startswith("internal error"), event.reason
    assert open_call is None
    assert len(outcome.raw_calls) == finished


# --- every format: complete and streamed ----------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_parses_complete_output(case: str) -> None:
    fmt, write = CASES[case]
    text = write(CALLS)
    outcome = parse(fmt, text, names=NAMES, tools=TOOLS)
    assert outcome.calls == [(0, *CALLS[0]), (1, *CALLS[1])]
    assert outcome.content == ""
    assert outcome.errors == []
    assert len(set(outcome.ids)) == 2
    assert outcome.reassembled() == text
    check_protocol(outcome)


# A bare Llama 3 JSON call is recognised only at the start of a reply (as llama.cpp
# does), so Llama 3 has no "text before the call" case; nor has a Functionary v3.2 call
# without its `>>>` (the prompt wrote it).
@pytest.mark.parametrize(
    "case",
    sorted(c for c in CASES if CASES[c][0] != "llama3" and c != "functionary_v3_2_after_prompt"),
)
def test_text_around_calls_passes_through(case: str) -> None:
    fmt, write = CASES[case]
    text = f"Let me look that up.\n\n{write(CALLS)}\nDone."
    outcome = parse(fmt, text, tools=TOOLS)
    assert outcome.content == "Let me look that up.\nDone."
    assert [c[1:] for c in outcome.calls] == CALLS
    assert outcome.reassembled() == text
    check_protocol(outcome)


@pytest.mark.parametrize("case", sorted(CASES))
def test_streamed_at_every_split_point_gives_the_same_calls(case: str) -> None:
    fmt, write = CASES[case]
    text = "Checking. " + write(CALLS) if fmt != "llama3" else write(CALLS)
    whole = parse(fmt, text, tools=TOOLS)
    for cut in range(len(text) + 1):
        split = parse(fmt, text, [cut], tools=TOOLS)
        assert split.summary() == whole.summary(), cut
        check_protocol(split)
    one_by_one = parse(fmt, text, range(len(text)), tools=TOOLS)
    assert one_by_one.summary() == whole.summary()
    rng = random.Random(case)
    for _ in range(20):
        cuts = sorted(rng.sample(range(len(text)), k=rng.randint(1, 12)))
        assert parse(fmt, text, cuts, tools=TOOLS).summary() == whole.summary()


@pytest.mark.parametrize("case", sorted(CASES))
def test_arguments_stream_before_the_call_finishes(case: str) -> None:
    fmt, write = CASES[case]
    text = write(CALLS[:1])
    outcome = parse(fmt, text, range(len(text)), tools=TOOLS)
    kinds = [type(e).__name__ for e in outcome.events if not isinstance(e, ContentDelta)]
    assert kinds[0] == "ToolCallStarted" and kinds[-1] == "ToolCallFinished"
    assert "ToolCallArgumentsDelta" in kinds
    check_protocol(outcome)


def test_started_comes_as_soon_as_the_name_is_known() -> None:
    parser = ToolCallParser("hermes")
    events = parser.feed('<tool_call>\n{"name": "get_weather", "arguments": {"loc')
    assert [type(e) for e in events] == [ToolCallStarted, ToolCallArgumentsDelta]
    assert events[1] == ToolCallArgumentsDelta(0, '{"loc')
    events = parser.feed('ation": "Paris"}}\n</tool_call>')
    assert isinstance(events[0], ToolCallArgumentsDelta) and events[0].text == 'ation": "Paris"}'
    assert isinstance(events[-1], ToolCallFinished)


def test_plain_text_is_emitted_at_once() -> None:
    parser = ToolCallParser("hermes")
    assert parser.feed("Hello there") == [ContentDelta("Hello there")]
    # Only what may be the start of a marker waits.
    assert parser.feed(", see <tool") == [ContentDelta(", see")]
    assert parser.feed("kit>") == [ContentDelta(" <toolkit>")]


def test_whitespace_after_the_last_call_belongs_to_it() -> None:
    text = '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n\n'
    outcome = parse("hermes", text)
    assert outcome.content == ""
    assert outcome.raw_calls == [text]


def test_reply_with_only_text_is_untouched() -> None:
    text = "No tools needed.\n\n  Bye.  \n"
    for fmt in TOOL_FORMATS:
        outcome = parse(fmt, text)
        assert outcome.content == text
        assert outcome.calls == [] and outcome.errors == []


def test_ids_are_nine_alphanumerics_and_unique() -> None:
    text = WRITERS["hermes"]([("a", {})] * 50)
    outcome = parse("hermes", text)
    assert len(set(outcome.ids)) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in outcome.ids)


# --- format specifics -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "search", "arguments": "{\\"query\\": \\"q\\"}"}',  # arguments as a JSON string
        '{"type": "function", "function": {"name": "search", "arguments": {"query": "q"}}}',
        '{"arguments": {"query": "q"}, "name": "search"}',  # the name after the arguments
    ],
)
def test_json_call_shapes(body: str) -> None:
    text = f"<tool_call>{body}</tool_call>"
    for cuts in ([], range(len(text))):
        outcome = parse("hermes", text, cuts)
        assert outcome.calls == [(0, "search", {"query": "q"})]
        check_protocol(outcome)


def test_xml_values_are_typed_by_the_schema() -> None:
    text = (
        "<tool_call>\n<function=get_weather>\n<parameter=location>\n42\n</parameter>\n"
        "<parameter=days>\n7\n</parameter>\n<parameter=metric>\nTrue\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    typed = parse("qwen3_coder", text, tools=TOOLS)
    assert typed.calls == [(0, "get_weather", {"location": "42", "days": 7, "metric": True})]
    guessed = parse("qwen3_coder", text)  # no schema: JSON when it parses, else text
    assert guessed.calls == [(0, "get_weather", {"location": 42, "days": 7, "metric": "True"})]
    check_protocol(typed)


def test_xml_multiline_values_keep_their_inner_newlines() -> None:
    code = "def f():\n    return 1\n"
    text = f"<tool_call>\n<function=write>\n<parameter=code>\n{code}\n</parameter>\n</function>\n</tool_call>"
    outcome = parse("qwen3_coder", text)
    assert outcome.calls == [(0, "write", {"code": code})]


def test_bare_tool_shape_is_accepted() -> None:
    bare = [WEATHER["function"]]
    text = "<tool_call>\n<function=get_weather>\n<parameter=location>\n42\n</parameter>\n</function>\n</tool_call>"
    outcome = parse("qwen3_coder", text, tools=bare)
    assert outcome.calls == [(0, "get_weather", {"location": "42"})]
    assert parse("qwen3_coder", text.replace("get_weather", "other"), tools=bare).errors


def test_llama3_builtin_tools_and_code() -> None:
    builtin = parse("llama3", '<|python_tag|>brave_search.call(query="weather in Paris")')
    assert builtin.calls == [(0, "brave_search", {"query": "weather in Paris"})]
    code = "import math\nprint(math.pi)\n"
    ran = parse("llama3", "<|python_tag|>" + code, range(0, 40, 3))
    assert ran.calls == [(0, "code_interpreter", {"code": code})]
    check_protocol(ran)
    ended = parse("llama3", "<|python_tag|>print(1)<|eom_id|>")
    assert ended.calls == [(0, "code_interpreter", {"code": "print(1)"})]


def test_llama3_json_is_a_call_only_at_the_start() -> None:
    text = 'Here is JSON: {"name": "get_weather", "parameters": {}}'
    assert parse("llama3", text).content == text
    assert parse("llama3", '{"x": 1}').content == '{"x": 1}'
    assert parse("llama3", '{"x": 1}').errors == []


def test_functionary_python_code() -> None:
    outcome = parse("functionary_v3_1", "<|python_tag|>print('hi')")
    assert outcome.calls == [(0, "python", {"code": "print('hi')"})]


def test_gpt_oss_after_the_reasoning_parser() -> None:
    text = (
        "<|channel|>analysis<|message|>The user wants weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"location": "Paris"}<|call|>'
    )
    for cuts in ([], range(len(text))):
        pipeline = OutputPipeline(ReasoningParser(HARMONY), ToolCallParser("gpt_oss"))
        events = _feed_all(pipeline, text, cuts)
        reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
        assert reasoning == "The user wants weather."
        calls = [e.call for e in events if isinstance(e, ToolCallFinished)]
        assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"location": "Paris"})]
        assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == ""


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("command_r_plus", "Action: none needed, here is the answer."),
        ("firefunction", "Use functools.partial; functools is a module."),
        ("llama3", "{} is an empty object"),
    ],
)
def test_markers_that_are_plain_words_in_prose(fmt: str, text: str) -> None:
    for cuts in ([], range(len(text))):
        outcome = parse(fmt, text, cuts)
        assert outcome.content == text and outcome.errors == []


# --- malformed calls ------------------------------------------------------------------

MALFORMED: dict[str, list[tuple[str, str]]] = {
    "hermes": [
        ('<tool_call>\n{"name": "get_weather", "arguments": {location: 1}}\n</tool_call>', "JSON"),
        ('<tool_call>\n["name": "get_weather", function: "date"]\n</tool_call>', "JSON object"),
        ('<tool_call>\n{"nam": "get_weather", "arguments": {}}\n</tool_call>', "name"),
        ('<tool_call>\n{"name": "get_weather", "arguments": [1]}\n</tool_call>', "object"),
        ('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Par', "not closed"),
        ('<tool_call>\n{"name": "get_weather", "arguments": {}} oops</tool_call>', "unexpected"),
    ],
    "default": [
        ('[TOOL_REQUEST]{"name": "get_weather", "arguments": {"a": }}[END_TOOL_REQUEST]', "JSON"),
        ('[TOOL_REQUEST]{"name": 5, "arguments": {}}[END_TOOL_REQUEST]', "name"),
        ("[TOOL_REQUEST]get_weather[END_TOOL_REQUEST]", "JSON object"),
    ],
    "llama3": [
        ('{"name": "get_weather", "parameters": {"a": 1,, }}', "JSON"),
        ('{"name": "get_weather", "parameters": "nope"}', "not JSON"),
        ("<|python_tag|>brave_search.call(1, 2)", "positional"),
    ],
    "mistral": [
        ('[TOOL_CALLS]get_weather[ARGS]{"location": Paris}', "JSON"),
        ("[TOOL_CALLS]get weather[ARGS]{}", "[ARGS]"),
        ("[TOOL_CALLS]get_weather[ARGS][1, 2]", "JSON object"),
        ('[TOOL_CALLS][{"name": "get_weather", "arguments": {}', "not closed"),
    ],
    "qwen3_coder": [
        ("<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</function>", "not closed"),
        ("<tool_call>\n<function=get weather!>\n</function>\n</tool_call>", "name"),
        ("<tool_call>\nhello\n</tool_call>", "expected"),
    ],
    "seed_oss": [("<seed:tool_call>\n<function=get_weather>\n<oops>\n</seed:tool_call>", "expected")],
    "minimax": [('<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="x">1', "not closed")],
    "glm": [("<tool_call>get_weather\n<arg_key>a</arg_key>\nnope</tool_call>", "arg_value")],
    "deepseek_r1": [
        (
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
            "{bad}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
            "JSON",
        )
    ],
    "deepseek_v3": [("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>[1]", "JSON object")],
    "kimi_k2": [
        (
            "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
            "<|tool_call_argument_begin|>{'a': 1}<|tool_call_end|><|tool_calls_section_end|>",
            "JSON",
        )
    ],
    "granite": [
        ('<|tool_call|>[{"name": "get_weather" "arguments": {}}]', "JSON"),
    ],
    "nemotron": [('<TOOLCALL>[{"arguments": {}}]</TOOLCALL>', "name")],
    "firefunction": [("functools[get_weather()]", "JSON object"), ('functools[{"name": "a"]', "JSON")],
    "functionary_v3_1": [('<function=get_weather>{"a": tru}</function>', "JSON")],
    "functionary_v3_2": [
        ('>>>get_weather\n{"a": tru}', "JSON"),
        ('get_weather\n{"a": [1}', "JSON"),
        ("get_weather\n{", "not closed"),
    ],
    "command_r7b": [('<|START_ACTION|>[{"tool_name": "get_weather", "parameters": 3}]<|END_ACTION|>', "object")],
    "command_r_plus": [('Action:\n```json\n[{"tool_name": "get_weather", "parameters": {}\n```', "JSON")],
    "gpt_oss": [('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"a"}<|call|>', "JSON")],
    "lfm2": [
        ("<|tool_call_start|>[get_weather(location=)]<|tool_call_end|>", "Python"),
        ("<|tool_call_start|>[get_weather(location=open('x'))]<|tool_call_end|>", "unsupported"),
        ("<|tool_call_start|>[get_weather]<|tool_call_end|>", "expected a call"),
    ],
    "gemma4": [
        ("<|tool_call>call:get_weather{location:}<tool_call|>", "missing value"),
        ("<|tool_call>get_weather{}<tool_call|>", "call:"),
    ],
}


@pytest.mark.parametrize(
    ("fmt", "text", "reason"),
    [(fmt, text, reason) for fmt, cases in MALFORMED.items() for text, reason in cases],
)
def test_malformed_call_stays_in_content(fmt: str, text: str, reason: str) -> None:
    whole = parse(fmt, text)
    assert whole.calls == []
    assert whole.content == text
    assert whole.errors and any(reason in e.reason for e in whole.errors), whole.errors
    assert "".join(e.raw_text for e in whole.errors) in text
    check_protocol(whole)
    for cut in range(len(text) + 1):
        assert parse(fmt, text, [cut]).summary() == whole.summary(), cut


def test_every_format_has_malformed_cases() -> None:
    assert set(MALFORMED) == set(TOOL_FORMATS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unknown_tool_stays_in_content(case: str) -> None:
    fmt, write = CASES[case]
    text = write([("launch_rockets", {"count": 3})])
    outcome = parse(fmt, text, names=NAMES)
    assert outcome.calls == []
    assert outcome.content == text
    assert [e.reason for e in outcome.errors] == ["unknown tool 'launch_rockets'"]
    # An unknown tool is never announced.
    assert not any(isinstance(e, (ToolCallStarted, ToolCallArgumentsDelta)) for e in outcome.events)


@pytest.mark.parametrize("case", sorted(CASES))
def test_call_cut_off_by_the_end_of_the_output(case: str) -> None:
    fmt, write = CASES[case]
    text = write(CALLS[:1])
    cut = text.index("Paris") + 2
    outcome = parse(fmt, text[:cut], names=NAMES)
    assert outcome.calls == []
    assert outcome.content == text[:cut]
    assert len(outcome.errors) == 1
    check_protocol(outcome)


def test_a_failed_call_gives_its_index_to_the_next() -> None:
    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"location": nope}}</tool_call>\n'
        '<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>'
    )
    outcome = parse("hermes", text)
    started = [e for e in outcome.events if isinstance(e, ToolCallStarted)]
    assert [(e.index, e.name) for e in started] == [(0, "get_weather"), (0, "search")]
    assert outcome.calls == [(0, "search", {"query": "x"})]
    assert outcome.content == text[: text.index("\n")]
    check_protocol(outcome)



# Found by test_parser_never_raises_and_accounts_for_every_character[qwen3_coder]: a
# JSON body (the Qwen fallback) that parses, then a second opener where the block's end
# should be. The call fails after its arguments were streamed, and the next call reuses
# its index: the pieces of the cancelled call must not count towards the next one's.
CANCELLED_AFTER_ITS_ARGUMENTS = (
    '<tool_call>{"name": "search", "parameters": {}}<tool_call></tool_call><tool_call>\n'
    '{"name": "get_weather", "arguments": {"location": "Paris, France", "days": 3}}\n'
    "</tool_call>"
)


def test_a_call_cancelled_after_its_arguments_gives_its_index_to_the_next() -> None:
    text = CANCELLED_AFTER_ITS_ARGUMENTS
    outcome = parse("qwen3_coder", text)
    started = [(e.index, e.name) for e in outcome.events if isinstance(e, ToolCallStarted)]
    assert started == [(0, "search"), (0, "get_weather")]
    pieces = [(e.index, e.text) for e in outcome.events if isinstance(e, ToolCallArgumentsDelta)]
    assert pieces == [(0, "{}"), (0, '{"location": "Paris, France", "days": 3}')]
    assert outcome.calls == [(0, *CALLS[0])]
    assert [e.reason for e in outcome.errors] == ["unexpected text before </tool_call>"]
    assert outcome.content == text[: text.index("</tool_call>") + len("</tool_call>")]
    assert outcome.reassembled() == text
    check_protocol(outcome)


# The same kind of input for every XML-style family: a JSON body in the XML opener, and
# an opener inside an unclosed call, each followed by a good call.
_QWEN_WEATHER = "<function=get_weather><parameter=days>3</parameter></function>"
_XML_SIBLINGS = {  # opener, closer, a good call's body
    "qwen3_coder": ("<tool_call>", "</tool_call>", _QWEN_WEATHER),
    "seed_oss": ("<seed:tool_call>", "</seed:tool_call>", _QWEN_WEATHER),
    "minimax": (
        "<minimax:tool_call>",
        "</minimax:tool_call>",
        '<invoke name="get_weather"><parameter name="days">3</parameter></invoke>',
    ),
    "glm": (
        "<tool_call>", "</tool_call>", "get_weather<arg_key>days</arg_key><arg_value>3</arg_value>"
    ),
    "nemotron": (
        "<TOOLCALL>", "</TOOLCALL>", '[{"name": "get_weather", "arguments": {"days": 3}}]'
    ),
}
_GOOD_XML_PARAMETER = {
    "qwen3_coder": "<function=search><parameter=query>x</parameter>",
    "seed_oss": "<function=search><parameter=query>x</parameter>",
    "minimax": '<invoke name="search"><parameter name="query">x</parameter>',
    "glm": "search<arg_key>query</arg_key><arg_value>x</arg_value>",
    "nemotron": '[{"name": "search", "arguments": {"query": "x"}}',
}


def _sibling_texts(fmt: str) -> list[str]:
    opener, closer, good = _XML_SIBLINGS[fmt]
    body = _GOOD_XML_PARAMETER[fmt]
    json_body = '{"name": "search", "parameters": {}}'
    return [
        # The shape of the case above.
        f"{opener}{json_body}{opener}{closer}{opener}\n{good}\n{closer}",
        f"{opener}{json_body}{opener}{good}{closer}",
        f"{opener}{body}{opener}{closer}{opener}{good}{closer}",
        f"{opener}{body}{opener}{good}{closer}",
        f"{opener}{body}{closer}{opener}{good}{closer}",
        f"{opener}{opener}{good}{closer}",
        f"{opener}{body}{opener}",
    ]


@pytest.mark.parametrize("fmt", sorted(_XML_SIBLINGS))
@pytest.mark.parametrize("names", [None, NAMES])
def test_openers_inside_calls_never_break_the_protocol(fmt: str, names: list[str] | None) -> None:
    for text in _sibling_texts(fmt):
        for cuts in ([], list(range(len(text) + 1))):
            outcome = parse(fmt, text, cuts, names=names, tools=TOOLS)
            assert outcome.reassembled() == text
            check_protocol(outcome)
            assert outcome.summary() == parse(fmt, text, names=names, tools=TOOLS).summary()


def test_good_calls_around_a_bad_one_in_a_list() -> None:
    text = '<TOOLCALL>[{"name": "a", "arguments": {}}, {"name": 1}, {"name": "b", "arguments": {}}]</TOOLCALL>'
    outcome = parse("nemotron", text)
    assert [c[:2] for c in outcome.calls] == [(0, "a"), (1, "b")]
    assert outcome.content == '{"name": 1}'
    assert outcome.reassembled() == text
    broken = '<|tool_call|>[{"name": "a", "arguments": {}} {"name": "b"'
    outcome = parse("granite", broken)
    assert [c[:2] for c in outcome.calls] == [(0, "a")]
    assert outcome.content == ' {"name": "b"'
    assert [e.reason for e in outcome.errors] == ["expected ',' or ']' between tool calls"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tool-call format"):
        ToolCallParser("smoke-signals")


# --- property tests -------------------------------------------------------------------

NOISE = [
    "<tool_call>", "</tool_call>", "[TOOL_REQUEST]", "[END_TOOL_REQUEST]", "[TOOL_CALLS]",
    "[ARGS]", "[CALL_ID]", "<|python_tag|>", ".call(", "<function=", "</function>",
    "<parameter=", "</parameter>", "<seed:tool_call>", "</seed:tool_call>",
    "<minimax:tool_call>", '<invoke name="', '">', "</invoke>", '<parameter name="',
    "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>", "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁calls▁end｜>",
    "function", "<|tool_calls_section_begin|>", "<|tool_call_begin|>", "functions.a:0",
    "<|tool_call_argument_begin|>", "<|tool_call_end|>", "<|tool_calls_section_end|>",
    "<|tool_call|>", "<TOOLCALL>", "</TOOLCALL>", "functools", "<|START_ACTION|>",
    "<|END_ACTION|>", "Action:", "```json", "```", "to=functions.", "<|channel|>",
    "commentary", "<|constrain|>", "<|message|>", "<|call|>", "<|tool_call_start|>",
    "<|tool_call_end|>", "<|tool_call>", "call:", "<tool_call|>", '<|"|>', "<|eom_id|>",
    '{"name": "a", "arguments": ', '{"name": "search", "parameters": {}}', '"name"',
    '"arguments"', '"a"', "{", "}", "[", "]", "(", ")", ":", ",", '"', "'", "\\", "=",
    "\n", " ", "get_weather", "a", "search", "x=1", "1", "true", "null", "é", "\u2028",
]
# Whole calls among the noise, so that the parsers go deep as well as wide.
WHOLE_CALLS = [w(CALLS[:1]) for w in WRITERS.values()] + [w(CALLS) for w in WRITERS.values()]

texts = st.lists(
    st.one_of(
        st.sampled_from(NOISE),
        st.sampled_from(WHOLE_CALLS),
        st.text(max_size=4),
    ),
    max_size=25,
).map("".join)


@st.composite
def cut_points(draw: st.DrawFn, text: str) -> list[int]:
    if not text:
        return []
    return draw(st.lists(st.integers(0, len(text)), max_size=12))


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_property_settings_keep_the_profiles_derandomize() -> None:
    # CI's profile (tests/conftest.py) derandomizes; PROPERTY must not set it back.
    assert PROPERTY.derandomize == settings.default.derandomize


@pytest.mark.parametrize("fmt", TOOL_FORMATS)
@PROPERTY
@given(data=st.data())
def test_parser_never_raises_and_accounts_for_every_character(fmt: str, data: st.DataObject) -> None:
    text = data.draw(texts)
    cuts = data.draw(cut_points(text))
    names = data.draw(st.sampled_from([None, NAMES]))
    outcome = parse(fmt, text, cuts, names=names, tools=data.draw(st.sampled_from([None, TOOLS])))
    assert outcome.reassembled() == text
    check_protocol(outcome)


@pytest.mark.parametrize("fmt", TOOL_FORMATS)
@PROPERTY
@given(data=st.data())
def test_how_text_is_cut_does_not_change_the_result(fmt: str, data: st.DataObject) -> None:
    text = data.draw(texts)
    cuts = data.draw(cut_points(text))
    whole = parse(fmt, text, tools=TOOLS)
    assert parse(fmt, text, cuts, tools=TOOLS).summary() == whole.summary()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), json_values, max_size=4
)
JSON_ARGUMENT_FORMATS = [
    "default", "hermes", "llama3", "mistral", "deepseek_r1", "deepseek_v3", "kimi_k2",
    "granite", "nemotron", "firefunction", "functionary_v3_1", "command_r7b",
    "command_r_plus", "gpt_oss",
]


@pytest.mark.parametrize("fmt", JSON_ARGUMENT_FORMATS)
@PROPERTY
@given(args=st.lists(arguments, min_size=1, max_size=3), data=st.data())
def test_any_json_arguments_round_trip(fmt: str, args: list[dict[str, Any]], data: st.DataObject) -> None:
    calls = [(f"tool_{i}", a) for i, a in enumerate(args)]
    text = WRITERS[fmt](calls)
    outcome = parse(fmt, text, data.draw(cut_points(text)))
    assert [c[1:] for c in outcome.calls] == calls
    check_protocol(outcome)


# --- format detection -----------------------------------------------------------------

EXPECTED_FORMATS = {
    "ByteDance-Seed-OSS.jinja": "seed_oss",
    "CohereForAI-c4ai-command-r-plus-tool_use.jinja": "command_r_plus",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja": "command_r7b",
    "GLM-4.6.jinja": "glm",
    "GLM-4.7-Flash.jinja": "glm",
    "HuggingFaceTB-SmolLM3-3B.jinja": "default",  # renders no tools
    "Kimi-K2-Thinking.jinja": "kimi_k2",
    "LFM2-8B-A1B.jinja": "lfm2",
    "LFM2.5-8B-A1B.jinja": "lfm2",
    "MiniMax-M2.jinja": "minimax",
    "Mistral-Small-3.2-24B-Instruct-2506.jinja": "mistral",
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja": "qwen3_coder",
    "NVIDIA-Nemotron-Nano-v2.jinja": "nemotron",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja": "hermes",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": "hermes",
    "Qwen-QwQ-32B.jinja": "hermes",
    "Qwen-Qwen2.5-7B-Instruct.jinja": "hermes",
    "Qwen-Qwen3-0.6B.jinja": "hermes",
    "Qwen3-Coder.jinja": "qwen3_coder",
    "Qwen3.5-4B.jinja": "qwen3_coder",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja": "default",  # renders no tools
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": "default",  # renders no tools
    "deepseek-ai-DeepSeek-V3.1.jinja": "default",  # renders no tools
    "fireworks-ai-llama-3-firefunction-v2.jinja": "firefunction",
    "google-gemma-2-2b-it.jinja": "default",
    "google-gemma-4-31B-it.jinja": "gemma4",
    "ibm-granite-granite-3.3-2B-Instruct.jinja": "granite",
    "llama-cpp-deepseek-r1.jinja": "deepseek_r1",
    "meetkai-functionary-medium-v3.1.jinja": "functionary_v3_1",
    "meetkai-functionary-medium-v3.2.jinja": "functionary_v3_2",
    "meta-llama-Llama-3.1-8B-Instruct.jinja": "llama3",
    "meta-llama-Llama-3.2-3B-Instruct.jinja": "llama3",
    "meta-llama-Llama-3.3-70B-Instruct.jinja": "llama3",
    "microsoft-Phi-3.5-mini-instruct.jinja": "default",
    "mistralai-Ministral-3-14B-Reasoning-2512.jinja": "mistral",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": "mistral",
    "moonshotai-Kimi-K2.jinja": "kimi_k2",
    "openai-gpt-oss-120b.jinja": "gpt_oss",
    "unsloth-mistral-Devstral-Small-2507.jinja": "mistral",
}


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def test_every_shared_template_is_covered() -> None:
    assert {p.name for p in TEMPLATES.glob("*.jinja")} == set(EXPECTED_FORMATS)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_FORMATS.items()))
def test_detects_format_from_template(name: str, expected: str) -> None:
    assert detect_tool_format(_template(name)) == expected


def test_no_template_or_a_fallback_gets_the_default_format() -> None:
    assert detect_tool_format(None) == "default"
    assert detect_tool_format("") == "default"
    assert detect_tool_format(GEMMA_TEMPLATE) == "default"
    assert detect_tool_format(CHATML_TEMPLATE) == "default"


TOOL_HISTORY = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "abcDEF123",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"location": "Paris, France", "days": 3}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_weather", "content": "sunny"},
]


@pytest.mark.parametrize(
    "name",
    sorted(n for n, f in EXPECTED_FORMATS.items() if f != "default" and n not in {
        # These render no past tool calls (or, Command R+, not in this shape).
        "LFM2-8B-A1B.jinja",
        "ibm-granite-granite-3.3-2B-Instruct.jinja",
        "CohereForAI-c4ai-command-r-plus-tool_use.jinja",
    }),
)
def test_parser_reads_the_calls_its_template_writes(name: str) -> None:
    """Render a past tool call with the real template, then find it in the prompt."""
    source = _template(name)
    prompt = render(ChatTemplate(source, "file", "test", name), TOOL_HISTORY, tools=TOOLS)
    fmt = detect_tool_format(source)
    if fmt == "llama3":  # the call sits at the start of the assistant's turn
        prompt = prompt.split("<|start_header_id|>assistant<|end_header_id|>\n\n")[1]
    outcome = parse(fmt, prompt, tools=TOOLS)
    assert ("get_weather", {"location": "Paris, France", "days": 3}) in [c[1:] for c in outcome.calls]


# --- the default format ---------------------------------------------------------------

DELIVERY = {
    "type": "function",
    "function": {
        "name": "get_delivery_date",
        "description": "Get the delivery date for a customer's order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}

# As LM Studio's docs show it (`lms log stream`, gemma-2-2b-it).
LMSTUDIO_DEFAULT_PROMPT = """You are a tool-calling AI. You can request calls to available tools with this EXACT format:
[TOOL_REQUEST]{"name": "tool_name", "arguments": {"param1": "value1"}}[END_TOOL_REQUEST]

AVAILABLE TOOLS:
{
  "type": "toolArray",
  "tools": [
    {
      "type": "function",
      "function": {
        "name": "get_delivery_date",
        "description": "Get the delivery date for a customer's order",
        "parameters": {
          "type": "object",
          "properties": {
            "order_id": {
              "type": "string"
            }
          },
          "required": [
            "order_id"
          ]
        }
      }
    }
  ]
}

RULES:
- Only use tools from AVAILABLE TOOLS
- Include all required arguments
- Use one [TOOL_REQUEST] block per tool
- Never use [TOOL_RESULT]
- If you decide to call one or more tools, there should be no other text in your message

Examples:
"Check Paris weather"
[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Paris"}}[END_TOOL_REQUEST]

"Send email to John about meeting and open browser"
[TOOL_REQUEST]{"name": "send_email", "arguments": {"to": "John", "subject": "meeting"}}[END_TOOL_REQUEST]
[TOOL_REQUEST]{"name": "open_browser", "arguments": {}}[END_TOOL_REQUEST]

Respond conversationally if no matching tools exist."""


def test_default_prompt_is_lm_studios() -> None:
    assert default_tool_system_prompt([DELIVERY]) == LMSTUDIO_DEFAULT_PROMPT
    assert default_tool_system_prompt([DELIVERY["function"]]) == LMSTUDIO_DEFAULT_PROMPT
    assert "$tools" in DEFAULT_TOOL_SYSTEM_PROMPT


def test_to_default_format_rewrites_the_history() -> None:
    messages = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "When do orders 1 and 2 arrive?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function",
                 "function": {"name": "get_delivery_date", "arguments": '{"order_id": "1"}'}},
                {"id": "b", "type": "function",
                 "function": {"name": "get_delivery_date", "arguments": {"order_id": "2"}}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "Monday"},
        {"role": "tool", "tool_call_id": "b", "content": "Tuesday"},
    ]
    converted = to_default_format(messages, [DELIVERY])
    assert [m["role"] for m in converted] == ["system", "user", "assistant", "user"]
    assert converted[0]["content"] == "You are a support agent.\n\n" + LMSTUDIO_DEFAULT_PROMPT
    assert converted[2]["content"] == (
        '[TOOL_REQUEST]{"name": "get_delivery_date", "arguments": {"order_id": "1"}}[END_TOOL_REQUEST]\n'
        '[TOOL_REQUEST]{"name": "get_delivery_date", "arguments": {"order_id": "2"}}[END_TOOL_REQUEST]'
    )
    assert "tool_calls" not in converted[2]
    assert converted[3] == {
        "role": "user",
        "content": "[TOOL_RESULT]Monday[END_TOOL_RESULT]\n[TOOL_RESULT]Tuesday[END_TOOL_RESULT]",
    }
    assert messages[2]["tool_calls"]  # the caller's messages are left alone


def test_to_default_format_adds_a_system_message() -> None:
    converted = to_default_format([{"role": "user", "content": "hi"}], [DELIVERY])
    assert converted == [
        {"role": "system", "content": LMSTUDIO_DEFAULT_PROMPT},
        {"role": "user", "content": "hi"},
    ]


def _no_tools_template(name: str) -> ChatTemplate:
    if name == "gemma-fallback":
        return ChatTemplate(GEMMA_TEMPLATE, "fallback", "test", name)
    if name == "chatml-fallback":
        return ChatTemplate(CHATML_TEMPLATE, "fallback", "test", name)
    return ChatTemplate(_template(name), "file", "test", name)


@pytest.mark.parametrize(
    ("name", "user_turn"),
    [
        ("gemma-fallback", "<start_of_turn>user\n"),
        ("chatml-fallback", "<|im_start|>user\n"),
        ("microsoft-Phi-3.5-mini-instruct.jinja", "<|user|>\n"),
        ("HuggingFaceTB-SmolLM3-3B.jinja", "<|im_start|>user\n"),
    ],
)
def test_default_format_round_trip(name: str, user_turn: str) -> None:
    """Through a template without tool support: the prompt teaches the format and holds
    the history in it; a reply in that format parses back into the call."""
    template = _no_tools_template(name)
    history = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "When will order 123 arrive?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "abcDEF123", "type": "function",
                            "function": {"name": "get_delivery_date",
                                         "arguments": '{"order_id": "123"}'}}],
        },
        {"role": "tool", "tool_call_id": "abcDEF123", "content": "2024-03-15"},
        {"role": "assistant", "content": "It arrives on 15 March."},
        {"role": "user", "content": "And order 456?"},
    ]
    assert detect_tool_format(template.source) == "default"
    prompt = render(template, to_default_format(history, [DELIVERY]))
    assert LMSTUDIO_DEFAULT_PROMPT in prompt
    request = '[TOOL_REQUEST]{"name": "get_delivery_date", "arguments": {"order_id": "123"}}[END_TOOL_REQUEST]'
    assert request in prompt
    assert user_turn + "[TOOL_RESULT]2024-03-15[END_TOOL_RESULT]" in prompt

    reply = 'Let me check.\n[TOOL_REQUEST]{"name": "get_delivery_date", "arguments": {"order_id": "456"}}[END_TOOL_REQUEST]'
    parsed = parse_output(reply, chat_template=template.source, tools=[DELIVERY])
    assert parsed.content == "Let me check."
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("get_delivery_date", {"order_id": "456"})]
    assert parsed.errors == []


# --- reasoning and tool calls together ------------------------------------------------


def _feed_all(parser: Any, text: str, cuts: Sequence[int]) -> list[Event]:
    events: list[Event] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += parser.feed(text[start:cut])
        start = cut
    events += parser.feed(text[start:])
    return events + parser.finish()


def test_pipeline_splits_reasoning_then_parses_calls() -> None:
    text = (
        "<think>The user wants the weather; call the tool.</think>\n\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>'
    )
    for cuts in ([], [3, 10, 60, 70], range(len(text))):
        pipeline = OutputPipeline(ReasoningParser(THINK), ToolCallParser("hermes", tools=TOOLS))
        events = _feed_all(pipeline, text, cuts)
        assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == (
            "The user wants the weather; call the tool."
        )
        assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == ""
        calls = [e.call for e in events if isinstance(e, ToolCallFinished)]
        assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"location": "Paris"})]
        first_call = next(i for i, e in enumerate(events) if isinstance(e, ToolCallStarted))
        assert all(not isinstance(e, ReasoningDelta) for e in events[first_call:])


def test_pipeline_without_a_tool_parser_passes_content() -> None:
    pipeline = OutputPipeline(ReasoningParser(THINK), None)
    events = _feed_all(pipeline, "<think>hm</think>Hi <tool_call>", [5])
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Hi <tool_call>"


def test_parse_output_with_a_thinking_template() -> None:
    qwen3 = _template("Qwen-Qwen3-0.6B.jinja")
    raw = (
        "<think>\nNeed weather.\n</think>\n\nChecking.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>'
    )
    parsed = parse_output(raw, chat_template=qwen3, tools=TOOLS)
    assert parsed.reasoning == "\nNeed weather.\n"
    assert parsed.content == 'Checking.\n<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>'
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("get_weather", {"location": "Paris"})]
    assert [e.reason for e in parsed.errors] == ["unknown tool 'nope'"]


def test_parse_output_when_the_template_opened_the_reasoning() -> None:
    qwq = _template("Qwen-QwQ-32B.jinja")
    raw = 'Thinking hard.\n</think>\n\n<tool_call>\n{"name": "search", "arguments": {"query": "q"}}\n</tool_call>'
    parsed = parse_output(raw, chat_template=qwq)
    assert parsed.reasoning == "Thinking hard.\n"
    assert parsed.content == ""
    assert [c.name for c in parsed.tool_calls] == ["search"]


def test_parse_output_with_an_explicit_format() -> None:
    raw = '[TOOL_CALLS]get_weather[ARGS]{"location": "Oslo"}'
    parsed = parse_output(raw, format="mistral")
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("get_weather", {"location": "Oslo"})]
    assert parse_output(raw).content == raw  # the default format does not read Mistral's
