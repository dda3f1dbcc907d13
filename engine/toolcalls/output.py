"""`parse_output`: a model's complete raw output taken apart into content, reasoning
and tool calls, as `ParsedOutput`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.chat import ToolCall
from engine.formatting.reasoning import ReasoningMarkers, ReasoningParser, markers_for_template
from engine.prediction import ContentDelta, ReasoningDelta, ToolCallFinished, ToolCallParseError
from engine.toolcalls.detect import detect_call_format
from engine.toolcalls.formats import FORMATS
from engine.toolcalls.pipeline import OutputPipeline, ToolCallParser
from engine.toolcalls.scanner import earliest


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """A complete reply taken apart."""

    content: str
    reasoning: str
    tool_calls: list[ToolCall]
    errors: list[ToolCallParseError]


def parse_output(
    raw_text: str,
    *,
    chat_template: str | None = None,
    format: str | None = None,  # noqa: A002 - the public name the callers use
    tools: list[dict[str, Any]] | None = None,
    reasoning: bool = True,
    starts_in_reasoning: bool | None = None,
) -> ParsedOutput:
    """Split a model's complete raw output into content, reasoning and tool calls.

    Reasoning markers come from the chat template; the tool-call format is `format`, or
    the one the template's model writes natively (`detect_call_format`). Calls that do not parse stay in the content and are
    listed in `errors`.

    `reasoning=False` keeps reasoning markup in the content verbatim (llama.cpp's
    `reasoning_format=none`); framing tokens (gpt-oss's message headers) still go, and
    tool calls still parse. `starts_in_reasoning` says
    whether the generation prompt opened a reasoning block; when it is not given, it
    is guessed from the text (a close marker with no open marker before it).

    Calls written inside a reasoning block that never closes are calls, as llama.cpp
    parses them: the block's text before them is content (its policy for DeepSeek
    V3.1 and most families), or reasoning where the format's record says so (Kimi K2
    Thinking).
    """
    markers = markers_for_template(chat_template) if chat_template else None
    tool_format = format or detect_call_format(chat_template)
    starts = _starts_in_reasoning(raw_text, markers) if starts_in_reasoning is None else (
        starts_in_reasoning and markers is not None
    )
    whole = _parse(raw_text, markers, starts, tool_format, tools, raw=not reasoning)
    if not reasoning:
        return whole
    unclosed = _unclosed_block(raw_text, markers, starts)
    if unclosed is None:
        return whole
    block_at, body_at = unclosed
    found = earliest(raw_text, FORMATS[tool_format].openers, body_at)
    if found is None:
        return whole
    before = _parse(raw_text[:block_at], markers, starts and block_at > 0, tool_format, tools)
    after = _parse(raw_text[found[0] :], None, False, tool_format, tools)
    if not after.tool_calls:
        return whole
    body = raw_text[body_at : found[0]].rstrip()
    as_reasoning = FORMATS[tool_format].calls_end_reasoning
    return ParsedOutput(
        content=before.content + ("" if as_reasoning else body) + after.content,
        reasoning=before.reasoning + (body if as_reasoning else ""),
        tool_calls=before.tool_calls + after.tool_calls,
        errors=before.errors + after.errors,
    )


def _parse(
    text: str,
    markers: ReasoningMarkers | None,
    starts: bool,
    tool_format: str,
    tools: list[dict[str, Any]] | None,
    *,
    raw: bool = False,
) -> ParsedOutput:
    pipeline = OutputPipeline(
        ReasoningParser(markers, starts_in_reasoning=starts, raw=raw),
        ToolCallParser(tool_format, tools=tools),
    )
    events = pipeline.feed(text) + pipeline.finish()
    return ParsedOutput(
        content="".join(e.text for e in events if isinstance(e, ContentDelta)),
        reasoning="".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        tool_calls=[e.call for e in events if isinstance(e, ToolCallFinished)],
        errors=[e for e in events if isinstance(e, ToolCallParseError)],
    )


def _unclosed_block(
    text: str, markers: ReasoningMarkers | None, starts: bool
) -> tuple[int, int] | None:
    """Where the last reasoning block's marker and its text begin, when it never closes."""
    if markers is None:
        return None
    opened, closed = text.rfind(markers.open), text.rfind(markers.close)
    if opened > closed:
        return opened, opened + len(markers.open)
    if opened == closed == -1 and starts:
        return 0, 0
    return None


def _starts_in_reasoning(text: str, markers: ReasoningMarkers | None) -> bool:
    """Without the prompt, a close marker with no open marker before it means that the
    template opened the reasoning block (QwQ, the R1 distills, ...)."""
    if markers is None or markers.role:
        return False  # gpt-oss's prompt ends with a role token, never inside a block
    close = text.find(markers.close)
    if close == -1:
        return False
    opened = text.find(markers.open)
    return opened == -1 or opened > close
