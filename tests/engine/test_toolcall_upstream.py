"""Tool calls and reasoning, family by family, on llama.cpp's own test cases.

Each case is an output from llama.cpp's chat-parser tests, with the upstream file and
line it comes from, and what llama.cpp makes of it: content and reasoning (compared
after strip, as upstream does) and the calls (arguments as JSON). Each is parsed in
one piece by `parse_output` and, where both can apply, streamed in pieces through the
same pipeline: the two must agree.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.formatting.reasoning import ReasoningParser, markers_for_template
from engine.prediction import ContentDelta, Event, ReasoningDelta, ToolCallFinished
from engine.toolcalls import (
    OutputPipeline,
    ToolCallParser,
    detect_call_format,
    detect_tool_format,
    parse_output,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat-templates"
DEEPSEEK_V3_1 = "ochafik/llama.cpp@148a605 tests/chat-parsers/test-deepseek-v3-1.cpp"
KIMI_K2 = "ochafik/llama.cpp@148a605 tests/chat-parsers/test-kimi-k2.cpp"
GPT_OSS = "ochafik/llama.cpp@1e7262b tests/chat-parsers/test-gpt-oss.cpp"
FUNCTIONARY_V3_2 = "ochafik/llama.cpp@1e7262b tests/chat-parsers/test-functionary-v3-2.cpp"
# The template-driven PEG parser's tests (2026): GPT-OSS's block, cited by its comments.
PEG_GPT_OSS = "ggml-org/llama.cpp@0042e20 tests/test-chat.cpp GPT-OSS"

# DeepSeek's special tokens, spelled once.
CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, SEP, CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"


def deepseek_call(name: str, arguments: str) -> str:
    return f"{CALL_BEGIN}{name}{SEP}{arguments}{CALL_END}"


def kimi_calls(*calls: tuple[str, str]) -> str:
    return (
        "<|tool_calls_section_begin|>"
        + "".join(
            f"<|tool_call_begin|>functions.{name}:{i}<|tool_call_argument_begin|>{arguments}"
            "<|tool_call_end|>"
            for i, (name, arguments) in enumerate(calls)
        )
        + "<|tool_calls_section_end|>"
    )


ANALYSIS = "<|channel|>analysis<|message|>I'm\nthinking<|end|>"
HELLO = "Hello, world!\nWhat's up?"
FINAL = "<|start|>assistant<|channel|>final<|message|>" + HELLO
PYTHON_HELLO = "<|channel|>analysis<|message|>I will execute python to say hello<|end|>"
SPECIAL = [("special_function", {"arg1": 1})]
JOHN = '{"name": "John Doe", "age": 30, "active": true, "score": 95.5}'
JOHN_VALUE = {"name": "John Doe", "age": 30, "active": True, "score": 95.5}


@dataclass(frozen=True)
class Case:
    source: str
    """Upstream file and line of the input."""
    template: str
    raw: str
    content: str = ""
    reasoning: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    """parse_output's keywords: reasoning, starts_in_reasoning."""
    streams: bool = True
    """False where only a complete output can tell (a reasoning block never closed)."""


CASES: list[Case] = [
    Case(
        f"{DEEPSEEK_V3_1}:44",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "I'm\nthinking</think>Hello, world!\nWhat's up?",
        content="Hello, world!\nWhat's up?",
        reasoning="I'm\nthinking",
        options={"starts_in_reasoning": True},
    ),
    Case(  # reasoning_format none: the markup stays in the content
        f"{DEEPSEEK_V3_1}:56",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "REASONING</think>ok",
        content="REASONING</think>ok",
        options={"reasoning": False, "starts_in_reasoning": True},
    ),
    Case(  # the happy path, as the model card says
        f"{DEEPSEEK_V3_1}:69",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        CALLS_BEGIN + deepseek_call("get_time", '{"city": "Tokyo"}') + CALLS_END,
        calls=[("get_time", {"city": "Tokyo"})],
        options={"starts_in_reasoning": False},
    ),
    Case(  # thinking open, then a call
        f"{DEEPSEEK_V3_1}:82",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "REASONING</think>" + CALLS_BEGIN + deepseek_call("get_time", '{"city": "Tokyo"}') + CALLS_END,
        reasoning="REASONING",
        calls=[("get_time", {"city": "Tokyo"})],
        options={"starts_in_reasoning": True},
    ),
    Case(  # text, then parallel calls in one section
        f"{DEEPSEEK_V3_1}:100",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "CONTENT"
        + CALLS_BEGIN
        + deepseek_call("get_time", '{"city": "Paris"}')
        + deepseek_call("get_weather", '{"city": "Paris"}')
        + CALLS_END,
        content="CONTENT",
        calls=[("get_time", {"city": "Paris"}), ("get_weather", {"city": "Paris"})],
        options={"starts_in_reasoning": False},
    ),
    Case(  # a call block inside closed reasoning is reasoning
        f"{DEEPSEEK_V3_1}:113",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "REASONING"
        + CALLS_BEGIN
        + deepseek_call("get_time2", '{"city": "Tokyo2"}')
        + CALLS_END
        + "REASONING</think>"
        + CALLS_BEGIN
        + deepseek_call("get_time", '{"city": "Tokyo"}')
        + CALLS_END,
        reasoning="REASONING"
        + CALLS_BEGIN
        + deepseek_call("get_time2", '{"city": "Tokyo2"}')
        + CALLS_END
        + "REASONING",
        calls=[("get_time", {"city": "Tokyo"})],
        options={"starts_in_reasoning": True},
    ),
    Case(  # reasoning never closed, calls follow: the reasoning is content, plus the calls
        f"{DEEPSEEK_V3_1}:129",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "REASONING" + CALLS_BEGIN + deepseek_call("get_time", '{"city": "Tokyo"}') + CALLS_END,
        content="REASONING",
        calls=[("get_time", {"city": "Tokyo"})],
        options={"starts_in_reasoning": True},
        streams=False,
    ),
    Case(  # the same, the prompt unknown: nothing says the reasoning was opened
        f"{DEEPSEEK_V3_1}:129",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "REASONING" + CALLS_BEGIN + deepseek_call("get_time", '{"city": "Tokyo"}') + CALLS_END,
        content="REASONING",
        calls=[("get_time", {"city": "Tokyo"})],
    ),
    Case(
        f"{DEEPSEEK_V3_1}:155",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        "CONTENT",
        content="CONTENT",
        options={"starts_in_reasoning": False},
    ),
    # gpt-oss (harmony): the assert_msg_equals cases, counted from the top of the file.
    Case(
        f"{GPT_OSS} case 3 (analysis, then final)",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS + "<|start|>assistant<|channel|>final<|message|>Hello, world!\nWhat's up?",
        content="Hello, world!\nWhat's up?",
        reasoning="I'm\nthinking",
    ),
    Case(
        f"{GPT_OSS} case 6 (a call in the commentary channel)",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS + "<|start|>assistant<|channel|>commentary to=functions.special_function "
        '<|constrain|>json<|message|>{"arg1": 1}',
        reasoning="I'm\nthinking",
        calls=SPECIAL,
    ),
    Case(
        f"{GPT_OSS} case 7 (a call addressed from the analysis channel)",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS + "<|start|>assistant<|channel|>analysis to=functions.special_function "
        '<|constrain|>json<|message|>{"arg1": 1}',
        reasoning="I'm\nthinking",
        calls=SPECIAL,
    ),
    Case(
        f"{GPT_OSS} case 16 (the recipient in the role header)",
        "openai-gpt-oss-120b.jinja",
        ' to=functions.special_function<|channel|>commentary <|constrain|>json<|message|>{"arg1": 1}',
        calls=SPECIAL,
    ),
    Case(
        f"{GPT_OSS} case 17 (role header, analysis channel)",
        "openai-gpt-oss-120b.jinja",
        ' to=functions.special_function<|channel|>analysis <|constrain|>json<|message|>{"arg1": 1}',
        calls=SPECIAL,
    ),
    Case(
        f"{GPT_OSS} case 18 (role header after reasoning)",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS + "<|start|>assistant to=functions.special_function<|channel|>analysis "
        '<|constrain|>json<|message|>{"arg1": 1}',
        reasoning="I'm\nthinking",
        calls=SPECIAL,
    ),
    Case(
        f"{GPT_OSS} case 8 (a commentary message without recipient is content)",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS + "<|start|>assistant<|channel|>commentary<|message|>" + HELLO,
        content=HELLO,
        reasoning="I'm\nthinking",
    ),
    Case(
        f"{GPT_OSS} case 9 (commentary content, then a call)",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS
        + "<|start|>assistant<|channel|>commentary<|message|>"
        + HELLO
        + "<|end|><|start|>assistant<|channel|>commentary to=functions.special_function "
        '<|constrain|>json<|message|>{"arg1": 1}',
        content=HELLO,
        reasoning="I'm\nthinking",
        calls=SPECIAL,
    ),
    Case(  # reasoning_format none: the analysis message stays, the final header goes
        f"{GPT_OSS} case 13 (reasoning_format none)",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS + FINAL,
        content=ANALYSIS + HELLO,
        options={"reasoning": False},
    ),
    Case(
        f"{PEG_GPT_OSS} 'Basic content only - final channel'",
        "openai-gpt-oss-120b.jinja",
        "<|channel|>final<|message|>" + HELLO,
        content=HELLO,
    ),
    Case(
        f"{PEG_GPT_OSS} 'Basic content only - commentary channel'",
        "openai-gpt-oss-120b.jinja",
        "<|channel|>commentary<|message|>" + HELLO,
        content=HELLO,
    ),
    Case(
        f"{PEG_GPT_OSS} 'Analysis channel (reasoning) with final channel (content) with "
        "reasoning_format = none'",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS + FINAL,
        content=ANALYSIS + HELLO,
        options={"reasoning": False},
    ),
    Case(  # the header holds the reasoning marker's text, yet it is the call's
        f"{PEG_GPT_OSS} 'Tool call with recipient in role header'",
        "openai-gpt-oss-120b.jinja",
        ' to=functions.special_function<|channel|>analysis<|message|>{"arg1": 1}',
        calls=SPECIAL,
    ),
    Case(
        f"{PEG_GPT_OSS} 'Tool call with recipient in channel header'",
        "openai-gpt-oss-120b.jinja",
        '<|channel|>analysis to=functions.special_function<|message|>{"arg1": 1}',
        calls=SPECIAL,
    ),
    Case(
        f"{PEG_GPT_OSS} 'Tool call in commentary channel (channel header variant)'",
        "openai-gpt-oss-120b.jinja",
        '<|channel|>commentary to=functions.special_function<|message|>{"arg1": 1}',
        calls=SPECIAL,
    ),
    Case(
        f"{PEG_GPT_OSS} 'Tool call with reasoning + content (analysis first, then tool call)'",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS
        + '<|start|>assistant to=functions.special_function<|channel|>analysis<|message|>{"arg1": 1}',
        reasoning="I'm\nthinking",
        calls=SPECIAL,
    ),
    Case(
        f"{PEG_GPT_OSS} 'Structured output'",
        "openai-gpt-oss-120b.jinja",
        "<|channel|>analysis<|message|>I need to output the invoice details in JSON<|end|>"
        '<|start|>assistant<|channel|>final <|constrain|>json<|message|>{"amount": 123.45, '
        '"date": "2025-12-03"}',
        content='{"amount": 123.45, "date": "2025-12-03"}',
        reasoning="I need to output the invoice details in JSON",
    ),
    Case(  # not offered: dropped, not shown as content
        f"{PEG_GPT_OSS} 'Builtin function - recipient in role'",
        "openai-gpt-oss-120b.jinja",
        PYTHON_HELLO
        + "<|start|>assistant to=container.exec<|channel|>commentary<|message|>"
        "python3 -c 'print(\"hello\")'",
        reasoning="I will execute python to say hello",
    ),
    Case(
        f"{PEG_GPT_OSS} 'Builtin function - recipient in channel'",
        "openai-gpt-oss-120b.jinja",
        PYTHON_HELLO
        + '<|start|>assistant<|channel|>commentary to=python <|constrain|>code<|message|>print("hello")',
        reasoning="I will execute python to say hello",
    ),
    Case(
        f"{PEG_GPT_OSS} '\"<|channel|>commentary to=assistant\" before reasoning'",
        "openai-gpt-oss-120b.jinja",
        "<|channel|>commentary to=assistant" + ANALYSIS + FINAL,
        content=HELLO,
        reasoning="I'm\nthinking",
    ),
    Case(
        f"{PEG_GPT_OSS} '\"<|channel|>commentary to=assistant\" before final message'",
        "openai-gpt-oss-120b.jinja",
        ANALYSIS
        + "<|start|>assistant<|channel|>commentary to=assistant<|channel|>final<|message|>"
        + HELLO,
        content=HELLO,
        reasoning="I'm\nthinking",
    ),
    # Functionary v3.2: the output starts after the prompt's `>>>`.
    Case(
        f"{FUNCTIONARY_V3_2}:44",
        "meetkai-functionary-medium-v3.2.jinja",
        "all\nHello, world!\nnono\nWhat's up?>>>special_function\n{\"arg1\": 1}\n",
        content="Hello, world!\nnono\nWhat's up?",
        calls=SPECIAL,
    ),
    Case(  # raw code for python, not JSON
        f"{FUNCTIONARY_V3_2}:53",
        "meetkai-functionary-medium-v3.2.jinja",
        "python\n# This is a program:\nprint('hey')",
        calls=[("python", {"code": "# This is a program:\nprint('hey')"})],
    ),
    Case(  # trailing whitespace after the JSON is ignored
        f"{FUNCTIONARY_V3_2}:67",
        "meetkai-functionary-medium-v3.2.jinja",
        'special_function\n{"arg1": 1} \n                    ',
        calls=SPECIAL,
    ),
    Case(
        f"{FUNCTIONARY_V3_2}:73",
        "meetkai-functionary-medium-v3.2.jinja",
        "all\n" + HELLO,
        content=HELLO,
    ),
    # Kimi K2 (upstream reads its Instruct template; the Thinking one writes the same).
    Case(
        f"{KIMI_K2} 'Test parsing tool calls with thinking'",
        "Kimi-K2-Thinking.jinja",
        "<think>I'm\nthinking</think>" + kimi_calls(("special_function", '{"arg1": 1}')),
        reasoning="I'm\nthinking",
        calls=[("special_function", {"arg1": 1})],
        options={"starts_in_reasoning": False},
    ),
    Case(
        f"{KIMI_K2} 'Test tool calls with extra content AND thinking'",
        "Kimi-K2-Thinking.jinja",
        "<think>I'm\nthinking</think>"
        + kimi_calls(("special_function", '{"arg1": 1}'))
        + "Hello, world!\nWhat's up?",
        content="Hello, world!\nWhat's up?",
        reasoning="I'm\nthinking",
        calls=[("special_function", {"arg1": 1})],
        options={"starts_in_reasoning": False},
    ),
    Case(
        f"{KIMI_K2} multi_tool_msg",
        "Kimi-K2-Thinking.jinja",
        "<think>I'm thinking.</think>Let me call multiple tools."
        + kimi_calls(
            ("read_file", '{"files":[{"path":"src/app/Partners.tsx","line_ranges":["1-100"]}]}'),
            ("complex_function", JOHN),
            ("emoji_function", '{"message":"Hello! 👋 🌟 🚀 Testing emojis: 😀😃😄😁 and symbols: ∑∏∆∇"}'),
        ),
        content="Let me call multiple tools.",
        reasoning="I'm thinking.",
        calls=[
            ("read_file", {"files": [{"path": "src/app/Partners.tsx", "line_ranges": ["1-100"]}]}),
            ("complex_function", JOHN_VALUE),
            ("emoji_function", {"message": "Hello! 👋 🌟 🚀 Testing emojis: 😀😃😄😁 and symbols: ∑∏∆∇"}),
        ],
        options={"starts_in_reasoning": False},
    ),
    Case(  # calls inside a <think> that never closes: calls, the text before is reasoning
        f"{KIMI_K2} TODO 'tool calls embedded in <think> blocks', first case",
        "Kimi-K2-Thinking.jinja",
        "<think>I'm thinking" + kimi_calls(("complex_function_in_think", JOHN)),
        reasoning="I'm thinking",
        calls=[("complex_function_in_think", JOHN_VALUE)],
        streams=False,
    ),
]


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _outcome(content: str, reasoning: str, calls: list[Any]) -> tuple[Any, ...]:
    return (content.strip(), reasoning.strip(), [(c.name, c.arguments) for c in calls])


def _streamed(case: Case, pieces: list[str]) -> tuple[Any, ...]:
    """The pipeline the engine streams through, fed in pieces."""
    source = _template(case.template)
    markers = markers_for_template(source)
    raw_reasoning = not case.options.get("reasoning", True)
    given = case.options.get("starts_in_reasoning")
    # What parse_output guesses when it is not told: the stream is told the same.
    raw = case.raw
    guessed = (
        markers is not None
        and not markers.role
        and markers.close in raw
        and (markers.open not in raw or raw.find(markers.open) > raw.find(markers.close))
    )
    starts = (guessed if given is None else bool(given)) and markers is not None
    pipeline = OutputPipeline(
        ReasoningParser(markers, starts_in_reasoning=starts, raw=raw_reasoning),
        ToolCallParser(detect_call_format(source)),
    )
    events: list[Event] = []
    for piece in pieces:
        events += pipeline.feed(piece)
    events += pipeline.finish()
    return _outcome(
        "".join(e.text for e in events if isinstance(e, ContentDelta)),
        "".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        [e.call for e in events if isinstance(e, ToolCallFinished)],
    )


def _id(case: Case) -> str:
    where = case.source.split(" tests/chat-parsers/", 1)[-1]
    return where.replace(" ", "_") + ("" if case.streams else "-whole")


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_parses_as_llama_cpp_does(case: Case) -> None:
    parsed = parse_output(case.raw, chat_template=_template(case.template), **case.options)
    expected = _outcome(case.content, case.reasoning, [])[:2] + (case.calls,)
    assert _outcome(parsed.content, parsed.reasoning, parsed.tool_calls) == expected
    assert parsed.errors == []
    for call in parsed.tool_calls:
        json.dumps(call.arguments)  # arguments are JSON


@pytest.mark.parametrize("case", [c for c in CASES if c.streams], ids=_id)
def test_streamed_agrees_with_one_piece(case: Case) -> None:
    parsed = parse_output(case.raw, chat_template=_template(case.template), **case.options)
    whole = _outcome(parsed.content, parsed.reasoning, parsed.tool_calls)
    text = case.raw
    for size in (1, 3, 7, 16):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        assert _streamed(case, pieces) == whole, size
    rng = random.Random(case.source)  # and cut at random, as tokens fall
    for _ in range(10):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 12))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert _streamed(case, pieces) == whole, cuts


def test_deepseek_v3_1_writes_its_own_calls_though_its_template_lists_no_tools() -> None:
    v3_1 = _template("deepseek-ai-DeepSeek-V3.1.jinja")
    assert detect_call_format(v3_1) == "deepseek_v3"
    # Prompting still needs the default format: nothing else tells the model the tools.
    assert detect_tool_format(v3_1) == "default"
    # The R1 distills write no calls of their own.
    assert detect_call_format(_template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja")) == "default"


# reasoning=False (llama.cpp's reasoning_format none): each family's reasoning markup
# stays in the content as written, and the calls after it still parse.
RAW_REASONING = [
    (
        "Qwen-Qwen3-0.6B.jinja",
        "<think>I'm\nthinking</think>\n\n",
        '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>',
    ),
    (
        "mistralai-Ministral-3-14B-Reasoning-2512.jinja",
        "[THINK]I'm\nthinking[/THINK]",
        '[TOOL_CALLS]special_function[ARGS]{"arg1": 1}',
    ),
    (
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
        "<|START_THINKING|>I'm\nthinking<|END_THINKING|>",
        (
            '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "special_function", '
            '"parameters": {"arg1": 1}}]<|END_ACTION|>'
        ),
    ),
    (
        "openai-gpt-oss-120b.jinja",
        ANALYSIS,
        (
            "<|start|>assistant<|channel|>commentary to=functions.special_function "
            '<|constrain|>json<|message|>{"arg1": 1}'
        ),
    ),
]


@pytest.mark.parametrize(
    ("template", "thinking", "call"), RAW_REASONING, ids=[t for t, _, _ in RAW_REASONING]
)
def test_raw_reasoning_stays_in_the_content_and_calls_still_parse(
    template: str, thinking: str, call: str
) -> None:
    source = _template(template)
    raw = thinking + call
    parsed = parse_output(raw, chat_template=source, reasoning=False)
    # The whitespace before a call is the call's, as everywhere.
    assert (parsed.content, parsed.reasoning) == (thinking.rstrip(), "")
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == SPECIAL
    # Split as usual, the same text gives reasoning.
    assert parse_output(raw, chat_template=source).reasoning.strip() == "I'm\nthinking"
    case = Case("", template, raw, options={"reasoning": False, "starts_in_reasoning": False})
    for size in (1, 4, 9):
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert _streamed(case, pieces) == (thinking.strip(), "", SPECIAL)


def test_raw_reasoning_keeps_a_call_written_inside_it_as_text() -> None:
    # llama.cpp parses the block and puts it in the content whole: the call inside it is
    # reasoning, written down; the call after it is a call.
    source = _template("deepseek-ai-DeepSeek-V3.1.jinja")
    inside = CALLS_BEGIN + deepseek_call("get_time2", '{"city": "Tokyo2"}') + CALLS_END
    after = CALLS_BEGIN + deepseek_call("get_time", '{"city": "Tokyo"}') + CALLS_END
    raw = "REASONING" + inside + "REASONING</think>" + after
    options = {"reasoning": False, "starts_in_reasoning": True}
    case = Case("", "deepseek-ai-DeepSeek-V3.1.jinja", raw, options=options)
    expected = ("REASONING" + inside + "REASONING</think>", "", [("get_time", {"city": "Tokyo"})])
    parsed = parse_output(raw, chat_template=source, **options)  # type: ignore[arg-type]
    assert _outcome(parsed.content, parsed.reasoning, parsed.tool_calls) == expected
    for size in (1, 5, len(raw)):
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert _streamed(case, pieces) == expected, size


def test_harmony_output_never_starts_in_reasoning() -> None:
    # `<|end|>` closes every harmony message, not only the analysis: an output that
    # starts with a commentary message to the user does not start in reasoning.
    raw = (
        "<|channel|>commentary<|message|>Let me check the weather.<|end|>"
        '<|start|>assistant to=functions.get_weather<|channel|>commentary<|message|>{"location": "SF"}'
    )
    parsed = parse_output(raw, chat_template=_template("openai-gpt-oss-120b.jinja"))
    assert (parsed.content, parsed.reasoning) == ("Let me check the weather.", "")
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("get_weather", {"location": "SF"})]
