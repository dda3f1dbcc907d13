"""`parse_output`: a model's complete raw output taken apart into content, reasoning
and tool calls, as `ParsedOutput`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.chat import ToolCall
from engine.prediction import ContentDelta, ReasoningDelta, ToolCallFinished, ToolCallParseError
from engine.reasoning import ReasoningMarkers, ReasoningParser, markers_for_template
from engine.toolcalls.detect import detect_tool_format
from engine.toolcalls.pipeline import OutputPipeline, ToolCallParser


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
) -> ParsedOutput:
    """Split a model's complete raw output into content, reasoning and tool calls.

    Reasoning markers come from the chat template; the tool-call format is `format`, or
    the one the template implies. Calls that do not parse stay in the content and are
    listed in `errors`.
    """
    markers = markers_for_template(chat_template) if chat_template else None
    tool_format = format or detect_tool_format(chat_template)
    pipeline = OutputPipeline(
        ReasoningParser(markers, starts_in_reasoning=_starts_in_reasoning(raw_text, markers)),
        ToolCallParser(tool_format, tools=tools),
    )
    events = pipeline.feed(raw_text) + pipeline.finish()
    return ParsedOutput(
        content="".join(e.text for e in events if isinstance(e, ContentDelta)),
        reasoning="".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        tool_calls=[e.call for e in events if isinstance(e, ToolCallFinished)],
        errors=[e for e in events if isinstance(e, ToolCallParseError)],
    )


def _starts_in_reasoning(text: str, markers: ReasoningMarkers | None) -> bool:
    """Without the prompt, a close marker with no open marker before it means that the
    template opened the reasoning block (QwQ, the R1 distills, ...)."""
    if markers is None:
        return False
    close = text.find(markers.close)
    if close == -1:
        return False
    opened = text.find(markers.open)
    return opened == -1 or opened > close
