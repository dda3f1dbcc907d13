"""The streaming reasoning splitter: markers at any split point, every family's markers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.formatting.reasoning import (
    COMMAND_R7B,
    GEMMA4,
    GRANITE,
    HARMONY,
    KNOWN_MARKERS,
    MISTRAL_THINK,
    SEED_THINK,
    THINK,
    ReasoningMarkers,
    ReasoningParser,
    markers_for_template,
    prompt_opens_reasoning,
    split_reasoning,
)
from engine.llama import OutputParser
from engine.prediction import ContentDelta, Event, ReasoningDelta

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "data" / "chat-templates"


def run(parser: ReasoningParser, chunks: list[str]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.finish()


def split(events: list[Event]) -> tuple[str, str]:
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    return reasoning, content


def stream(
    chunks: list[str], markers: ReasoningMarkers | None = THINK, **kwargs: bool
) -> tuple[str, str]:
    return split(run(ReasoningParser(markers, **kwargs), chunks))


def test_is_an_output_parser() -> None:
    parser: OutputParser = ReasoningParser(THINK)
    assert parser.feed("") == []


def test_complete_text() -> None:
    assert stream(["<think>\nLet me see.\n</think>\n\nThe answer is 4."]) == (
        "\nLet me see.\n",
        "The answer is 4.",
    )


def test_text_before_the_open_marker_is_content() -> None:
    assert stream(["Sure. <think>hmm</think> Here."]) == ("hmm", "Sure. Here.")


def test_no_markers_is_all_content() -> None:
    assert stream(["just ", "an ", "answer"]) == ("", "just an answer")


def test_text_is_emitted_promptly() -> None:
    parser = ReasoningParser(THINK)
    assert parser.feed("Hello wor") == [ContentDelta("Hello wor")]
    assert parser.feed("ld <th") == [ContentDelta("ld ")]  # "<th" may start "<think>"
    assert parser.feed("ink>deep") == [ReasoningDelta("deep")]
    assert parser.feed(" thought</") == [ReasoningDelta(" thought")]
    assert parser.feed("think>\n\n") == []  # whitespace after the close is not content
    assert parser.feed("\nDone") == [ContentDelta("Done")]
    assert parser.finish() == []


def test_a_false_marker_start_is_released() -> None:
    parser = ReasoningParser(THINK)
    assert parser.feed("a <thin") == [ContentDelta("a ")]
    assert parser.feed("g> b") == [ContentDelta("<thing> b")]


def test_one_piece_gives_at_most_one_event_per_change_of_kind() -> None:
    events = ReasoningParser(THINK).feed("a<think>b</think>c")
    assert events == [ContentDelta("a"), ReasoningDelta("b"), ContentDelta("c")]


TEXT = "Intro <think>step one\nstep two</think>\n\nFinal answer."
EXPECTED = ("step one\nstep two", "Intro Final answer.")


@pytest.mark.parametrize("at", range(len(TEXT) + 1))
def test_split_at_every_position(at: int) -> None:
    assert stream([TEXT[:at], TEXT[at:]]) == EXPECTED


def test_split_at_every_pair_of_positions() -> None:
    for i in range(len(TEXT) + 1):
        for j in range(i, len(TEXT) + 1):
            assert stream([TEXT[:i], TEXT[i:j], TEXT[j:]]) == EXPECTED, (i, j)


def test_one_character_at_a_time() -> None:
    assert stream(list(TEXT)) == EXPECTED


# --- forced open ------------------------------------------------------------------


def test_forced_open_output_has_only_the_close_marker() -> None:
    text = "Okay, 2+2.\n</think>\n\nIt is 4."
    assert stream([text], starts_in_reasoning=True) == ("Okay, 2+2.\n", "It is 4.")
    for at in range(len(text) + 1):
        assert stream([text[:at], text[at:]], starts_in_reasoning=True) == (
            "Okay, 2+2.\n",
            "It is 4.",
        )


def test_forced_open_ignores_a_repeated_open_marker() -> None:
    text = "\n<think>\nOkay.</think>Yes."
    for at in range(len(text) + 1):
        assert stream([text[:at], text[at:]], starts_in_reasoning=True) == ("\nOkay.", "Yes.")


def test_forced_open_keeps_leading_whitespace_that_is_not_a_marker() -> None:
    assert stream(["\n", "Hmm</think>A"], starts_in_reasoning=True) == ("\nHmm", "A")


def test_forced_open_with_no_close_is_all_reasoning() -> None:
    assert stream(["still ", "thinking"], starts_in_reasoning=True) == ("still thinking", "")


# --- ends -------------------------------------------------------------------------


def test_unclosed_block_at_the_end_is_reasoning() -> None:
    assert stream(["<think>never", " finished"]) == ("never finished", "")


def test_partial_close_marker_at_the_end_stays_reasoning() -> None:
    assert stream(["<think>abc</thi"]) == ("abc</thi", "")


def test_partial_open_marker_at_the_end_stays_content() -> None:
    assert stream(["answer <thi"]) == ("", "answer <thi")


def test_only_whitespace_after_the_close() -> None:
    assert stream(["<think>x</think>", "\n\n"]) == ("x", "")


def test_several_blocks() -> None:
    assert stream(["<think>a</think>b<think>c</think> d"]) == ("ac", "bd")


# --- disabled ---------------------------------------------------------------------


def test_disabled_parser_passes_everything_through() -> None:
    parser = ReasoningParser(THINK, starts_in_reasoning=True, enabled=False)
    assert parser.feed("<think>x</think>") == [ContentDelta("<think>x</think>")]
    assert parser.feed("") == []
    assert parser.finish() == []


def test_no_markers_passes_everything_through() -> None:
    assert stream(["<think>x</think>"], markers=None, starts_in_reasoning=True) == (
        "",
        "<think>x</think>",
    )


def test_empty_markers_are_refused() -> None:
    with pytest.raises(ValueError):
        ReasoningMarkers("", "</think>")


# --- families ---------------------------------------------------------------------

FAMILY_OUTPUTS = [
    (THINK, "<think>\nplan\n</think>\n\nanswer", ("\nplan\n", "answer")),
    (MISTRAL_THINK, "[THINK]plan[/THINK]answer", ("plan", "answer")),
    (SEED_THINK, "<seed:think>plan</seed:think>answer", ("plan", "answer")),
    (
        COMMAND_R7B,
        "<|START_THINKING|>plan<|END_THINKING|><|START_RESPONSE|>answer<|END_RESPONSE|>",
        ("plan", "answer"),
    ),
    (GEMMA4, "<|channel>thought\nplan<channel|>answer", ("\nplan", "answer")),
    (GRANITE, "<think>plan</think>\n<response>answer</response>", ("plan", "answer")),
    (
        HARMONY,
        (
            "<|channel|>analysis<|message|>plan<|end|>"
            "<|start|>assistant<|channel|>final<|message|>answer<|return|>"
        ),
        ("plan", "answer"),
    ),
    (HARMONY, "<|channel|>final<|message|>answer", ("", "answer")),
]


@pytest.mark.parametrize(("markers", "text", "expected"), FAMILY_OUTPUTS)
def test_family_markers(markers: ReasoningMarkers, text: str, expected: tuple[str, str]) -> None:
    for at in range(len(text) + 1):
        assert stream([text[:at], text[at:]], markers) == expected, at
    assert split_reasoning(text, markers) == expected


def test_harmony_tool_calls_stay_in_the_content_for_the_tool_call_parser() -> None:
    text = (
        "<|channel|>analysis<|message|>Need weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city": "Paris"}<|call|>'
    )
    reasoning, content = split_reasoning(text, HARMONY)
    assert reasoning == "Need weather."
    assert content.startswith("<|channel|>commentary to=functions.get_weather")
    assert content.endswith('{"city": "Paris"}<|call|>')


TEMPLATE_MARKERS = {
    "ByteDance-Seed-OSS.jinja": SEED_THINK,
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja": COMMAND_R7B,
    "GLM-4.6.jinja": THINK,
    "GLM-4.7-Flash.jinja": THINK,
    "HuggingFaceTB-SmolLM3-3B.jinja": THINK,
    "Kimi-K2-Thinking.jinja": THINK,
    "LFM2.5-8B-A1B.jinja": THINK,
    "MiniMax-M2.jinja": THINK,
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja": THINK,
    "NVIDIA-Nemotron-Nano-v2.jinja": THINK,
    "Qwen-QwQ-32B.jinja": THINK,
    "Qwen-Qwen3-0.6B.jinja": THINK,
    "Qwen3.5-4B.jinja": THINK,
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja": THINK,
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja": THINK,
    "deepseek-ai-DeepSeek-V3.1.jinja": THINK,
    "google-gemma-4-31B-it.jinja": GEMMA4,
    "ibm-granite-granite-3.3-2B-Instruct.jinja": GRANITE,
    "llama-cpp-deepseek-r1.jinja": THINK,
    "mistralai-Ministral-3-14B-Reasoning-2512.jinja": MISTRAL_THINK,
    "openai-gpt-oss-120b.jinja": HARMONY,
}


@pytest.mark.parametrize("path", sorted(TEMPLATES_DIR.glob("*.jinja")), ids=lambda p: p.name)
def test_markers_for_each_shared_template(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert markers_for_template(source) == TEMPLATE_MARKERS.get(path.name)


def test_markers_for_no_template() -> None:
    assert markers_for_template(None) is None
    assert markers_for_template("") is None


@pytest.mark.parametrize(
    ("prompt", "markers", "expected"),
    [
        ("<|im_start|>assistant\n<think>\n", THINK, True),
        ("<｜Assistant｜><think>", THINK, True),
        ("<|im_start|>assistant\n<think>\n\n</think>\n\n", THINK, False),
        ("<|im_start|>assistant\n", THINK, False),
        ("<|turn>model\n<|channel>thought\n<channel|>", GEMMA4, False),
        ("<|start|>assistant", HARMONY, False),
        ("anything<think>", None, False),
    ],
)
def test_prompt_opens_reasoning(
    prompt: str, markers: ReasoningMarkers | None, expected: bool
) -> None:
    assert prompt_opens_reasoning(prompt, markers) is expected


# --- properties -------------------------------------------------------------------


def reference_split(
    text: str, markers: ReasoningMarkers, starts_in_reasoning: bool = False
) -> tuple[str, str]:
    """The same rules, written plainly over the whole text."""
    reasoning, content = [], []
    rest = text
    if starts_in_reasoning and rest.lstrip().startswith(markers.open):
        rest = rest.lstrip()[len(markers.open) :]
    in_reasoning, skip_space = starts_in_reasoning, False
    while rest:
        if in_reasoning:
            at = rest.find(markers.close)
            if at == -1:
                reasoning.append(rest)
                break
            reasoning.append(rest[:at])
            rest = rest[at + len(markers.close) :]
            in_reasoning, skip_space = False, True
            continue
        if skip_space:
            rest = rest.lstrip()
            skip_space = False
            continue
        hits = [(rest.find(n), n) for n in (markers.open, *markers.framing) if n in rest]
        if not hits:
            content.append(rest)
            break
        at, needle = min(hits, key=lambda hit: hit[0])
        content.append(rest[:at])
        rest = rest[at + len(needle) :]
        in_reasoning = needle == markers.open
    return "".join(reasoning), "".join(content)


def chunkings(text: str) -> st.SearchStrategy[list[str]]:
    cuts = st.lists(st.integers(0, len(text)), max_size=8).map(sorted)
    return cuts.map(lambda c: [text[a:b] for a, b in zip([0, *c], [*c, len(text)])])


# Characters of the markers, so that partial markers turn up often.
ALPHABET = "<>/|[]:!think THINKsed\n\tabchanlyrmg_SRTU"
FRAGMENTS = [m.open for m in KNOWN_MARKERS] + [m.close for m in KNOWN_MARKERS]
FRAGMENTS += [f for m in KNOWN_MARKERS for f in m.framing]
texts = st.lists(
    st.one_of(st.text(ALPHABET, max_size=12), st.sampled_from(FRAGMENTS)), max_size=10
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    text=texts,
    markers=st.sampled_from(KNOWN_MARKERS),
    forced=st.booleans(),
)
def test_any_chunking_gives_the_same_split(
    data: st.DataObject, text: str, markers: ReasoningMarkers, forced: bool
) -> None:
    chunks = data.draw(chunkings(text))
    assert "".join(chunks) == text
    events = run(ReasoningParser(markers, starts_in_reasoning=forced), chunks)
    assert all(e.text for e in events if isinstance(e, (ContentDelta, ReasoningDelta)))
    assert split(events) == reference_split(text, markers, forced)


# Text between markers: marker characters, but no whole marker.
segment = st.text("<>/think \nabc[]", max_size=10).filter(
    lambda s: "<think>" not in s and "</think>" not in s
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    lead=segment,
    blocks=st.lists(st.tuples(segment, segment), max_size=4),
)
def test_output_is_the_input_minus_the_markers(
    data: st.DataObject, lead: str, blocks: list[tuple[str, str]]
) -> None:
    text = lead + "".join(f"<think>{r}</think>{c}" for r, c in blocks)
    chunks = data.draw(chunkings(text))
    events = run(ReasoningParser(THINK), chunks)
    deltas = "".join(e.text for e in events if isinstance(e, (ContentDelta, ReasoningDelta)))
    expected_content = lead + "".join(c.lstrip() for _, c in blocks)
    expected_reasoning = "".join(r for r, _ in blocks)
    assert split(events) == (expected_reasoning, expected_content)
    if all(c == c.lstrip() for _, c in blocks):
        assert deltas == text.replace("<think>", "").replace("</think>", "")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60), markers=st.sampled_from(KNOWN_MARKERS), data=st.data())
def test_never_raises_and_loses_nothing_when_disabled(
    text: str, markers: ReasoningMarkers, data: st.DataObject
) -> None:
    chunks = data.draw(chunkings(text))
    run(ReasoningParser(markers), chunks)
    assert stream(chunks, markers, enabled=False) == ("", text)


# --- in the engine ------------------------------------------------------------------


def test_reasoning_parser_in_a_real_prediction(tiny_model_path: Path) -> None:
    from engine.llama import LoadedModel
    from engine.load_config import LoadConfig

    # A grammar makes the random-weight model write a think block, then an answer.
    grammar = 'root ::= "<think>" [a-z ]{2,12} "</think>" "\\n\\n" [a-z]{1,6}'
    config = LoadConfig.model_validate({"context_length": 256, "batch_size": 32})
    model = LoadedModel.load(tiny_model_path, config)
    try:
        stream = model.complete_sync(
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
            {"maxTokens": 40, "seed": 7, "grammar": grammar, "temperature": 0.8},
            parser=ReasoningParser(THINK),
        )
        events = list(stream)
    finally:
        model.unload()
    assert stream.error is None, stream.error
    assert stream.result is not None
    raw = stream.result.raw_text
    assert raw.startswith("<think>") and "</think>\n\n" in raw
    reasoning, content = split(events)
    assert (reasoning, content) == split_reasoning(raw, THINK)
    assert (stream.result.reasoning, stream.result.content) == (reasoning, content)
    assert reasoning and content and "<think>" not in reasoning + content


@settings(max_examples=150, deadline=None)
@given(
    text=texts,
    markers=st.sampled_from([m for m in KNOWN_MARKERS if not m.framing]),
    forced=st.booleans(),
    data=st.data(),
)
def test_raw_keeps_reasoning_markup_in_the_content_verbatim(
    text: str, markers: ReasoningMarkers, forced: bool, data: st.DataObject
) -> None:
    # llama.cpp's reasoning_format none: no reasoning, the text as written.
    chunks = data.draw(chunkings(text))
    events = run(ReasoningParser(markers, starts_in_reasoning=forced, raw=True), chunks)
    assert split(events) == ("", text)


def test_raw_harmony_keeps_the_analysis_and_drops_the_headers() -> None:
    text = (
        "<|channel|>analysis<|message|>I'm\nthinking<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello"
    )
    for size in (1, 5, len(text)):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert split(run(ReasoningParser(HARMONY, raw=True), chunks)) == (
            "",
            "<|channel|>analysis<|message|>I'm\nthinking<|end|>Hello",
        )


def test_harmony_recipient_header_is_never_reasoning() -> None:
    # The role header's recipient, then the analysis channel: a call, for the tool parser.
    text = ' to=functions.f<|channel|>analysis<|message|>{"a": 1}<|call|>'
    for size in (1, 3, len(text)):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert split(run(ReasoningParser(HARMONY), chunks)) == ("", text)
    later = "<|channel|>analysis<|message|>hm<|end|><|start|>assistant" + text
    assert split_reasoning(later, HARMONY) == ("hm", text)
