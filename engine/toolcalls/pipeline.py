"""The streaming parsers: `ToolCallParser`, which finds a format's calls in content
text and turns its reader's steps into events, ids and indexes; and `OutputPipeline`,
reasoning first, then its content through the tool-call parser."""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from engine.chat import ToolCall
from engine.formatting.reasoning import ReasoningParser
from engine.prediction import (
    ContentDelta,
    Event,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
    merge_deltas,
)
from engine.toolcalls.formats import FORMATS, TOOL_FORMATS
from engine.toolcalls.scanner import earliest, partial_start
from engine.toolcalls.steps import Args, Begin, Close, Drop, End, Fail, Reader, Step, Tail
from engine.toolcalls.tool_specs import Context, function_specs

_ID_ALPHABET = string.ascii_letters + string.digits
_VISIBLE = re.compile(r"\S")  # \s is str.isspace(), as strip() has it


def new_call_id() -> str:
    """A call id: 9 random letters and digits, the shape Mistral's templates demand."""
    return "".join(random.choices(_ID_ALPHABET, k=9))


@dataclass(slots=True)
class _OpenCall:
    index: int
    id: str
    name: str
    doomed: str | None
    """Why the call will fail whatever follows (an unknown tool); nothing is announced."""
    streamed: bool = False


class ToolCallParser:
    """An OutputParser that finds tool calls in content text as it streams.

    Ordinary text passes through as ContentDelta at once (only a possible call marker
    and trailing whitespace are held back). Each call gives ToolCallStarted as soon as
    its name is known, ToolCallArgumentsDelta pieces whose concatenation is the
    arguments' JSON text, and ToolCallFinished when it closes. A call that does not
    parse stays in the content and gives a ToolCallParseError; if it was already
    started, that error cancels it and the next call reuses its index. Never raises.
    """

    def __init__(
        self,
        format: str,  # noqa: A002 - the public name the callers use
        tool_names: Collection[str] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> None:
        record = FORMATS.get(format)
        if record is None:
            raise ValueError(
                f"unknown tool-call format {format!r}; known: {', '.join(TOOL_FORMATS)}"
            )
        self.format = format
        self._record = record
        functions = function_specs(tools)
        self._ctx = Context(functions)
        if tool_names is not None:
            self._names: frozenset[str] | None = frozenset(tool_names)
        else:
            self._names = frozenset(functions) if functions else None
        self.raw_calls: list[str] = []
        """The raw text of each parsed call, by index, whitespace around it included."""
        # All offsets below are into `_text`, the output not yet accounted for and, in a
        # block, the block from its opener on. Nothing is copied as the text grows.
        self._text = ""
        self._start = 0
        """Outside a block: where the text not yet emitted begins."""
        self._searched = 0
        """No opener starts in [_start, _searched): where the opener search goes on."""
        self._blank_to = 0
        """text[_start:_blank_to] is all whitespace (held back, or before an anchor)."""
        self._reader: Reader | None = None
        self._opener = ""
        self._opened_at = 0
        self._lead = ""
        self._consumed = 0
        self._settled = 0
        self._last_ok = False
        self._after_call = False
        self._anchored = True
        self._call: _OpenCall | None = None
        self._broken = False
        if record.starts_in_block:
            self._open_block("", 0)

    def feed(self, text: str) -> list[Event]:
        if not text:
            return []
        return self._guarded(text, at_end=False)

    def finish(self) -> list[Event]:
        return self._guarded("", at_end=True)

    def feed_verbatim(self, text: str) -> list[Event]:
        """Text that is content whatever it holds (reasoning kept in the content as
        written): what is held back goes out first, as it can no longer open a call."""
        if not text:
            return []
        if self._broken or self._reader is not None:
            return self.feed(text)  # inside a block, it is the block's
        out: list[Event] = []
        self._emit_content(self._text[self._start :], out)
        self._emit_content(text, out)
        self._text, self._start, self._searched, self._blank_to = "", 0, 0, 0
        return merge_deltas(out)

    def _guarded(self, text: str, *, at_end: bool) -> list[Event]:
        if self._broken:
            return [ContentDelta(text)] if text else []
        out: list[Event] = []
        try:
            grown = self._text
            self._text = ""
            grown += text  # in place: CPython grows a string that nothing else refers to
            self._text = grown
            del grown
            self._pump(out, at_end)
        except Exception as err:  # noqa: BLE001 - a parser bug must not end the prediction
            self._give_up(err, out)
        return merge_deltas(out)

    def _give_up(self, err: Exception, out: list[Event]) -> None:
        """Pass everything through from now on, keeping what is pending as content."""
        since = self._consumed if self._reader is not None else self._start
        pending = self._lead + self._text[since:]
        self._broken = True
        self._reader, self._text, self._lead = None, "", ""
        reason = f"internal error in the {self.format} tool-call parser: {err!r}"
        out.append(ToolCallParseError(pending, reason))
        if pending:
            out.append(ContentDelta(pending))

    def _pump(self, out: list[Event], at_end: bool) -> None:
        while True:
            if self._reader is not None:
                if not self._read_block(out, at_end):
                    return
            elif not self._read_text(out, at_end):
                return

    # -- ordinary text

    def _read_text(self, out: list[Event], at_end: bool) -> bool:
        """Emit what is surely content; True when a block opened."""
        text, start = self._text, self._start
        found, hold = self._find_opener(text, start, at_end)
        if found is None:
            if at_end:
                self._start = len(text)
                self._final_text(text[start:], out)
                return False
            safe = self._visible_end(text, start, hold)  # whitespace waits for what follows
            self._emit_content(text[start:safe], out)
            self._start, self._blank_to = safe, hold
            self._compact()
            return False
        at, opener = found
        before = self._visible_end(text, start, at)
        self._emit_content(text[start:before], out)
        self._lead = text[before:at]
        self._open_block(opener, at)
        return True

    def _visible_end(self, text: str, start: int, end: int) -> int:
        """Where text[start:end] ends once trailing whitespace is taken off."""
        low = max(start, min(self._blank_to, end))
        at = end
        while at > low and text[at - 1].isspace():
            at -= 1
        return start if at == low else at  # text[start:low] is whitespace already

    def _first_visible(self, text: str, start: int) -> int:
        """The first non-whitespace offset from `start` on (the end of the text if none)."""
        match = _VISIBLE.search(text, max(start, self._blank_to))
        first = match.start() if match else len(text)
        self._blank_to = max(self._blank_to, first)
        return first

    def _compact(self) -> None:
        """Drop emitted text once it is most of what is kept: amortised, each character
        is copied at most once more."""
        cut = self._start
        if cut < 4096 or cut * 2 < len(self._text):
            return
        self._text = self._text[cut:]
        self._start = 0
        self._searched = max(0, self._searched - cut)
        self._blank_to = max(0, self._blank_to - cut)

    def _final_text(self, text: str, out: list[Event]) -> None:
        if text and not text.strip() and self._after_call and self.raw_calls:
            self.raw_calls[-1] += text  # the whitespace after the last call is the call's
        else:
            self._emit_content(text, out)

    def _find_opener(
        self, text: str, start: int, at_end: bool
    ) -> tuple[tuple[int, str] | None, int]:
        """The earliest opener from `start` on, or None and where a partial one may start."""
        openers = self._record.openers
        since = max(start, self._searched)
        found = earliest(text, openers, since)
        # Remember how far the search got, whatever opens the block: the next search
        # goes on from there instead of reading the same text again.
        if found is None:
            longest = max(len(op) for op in openers)
            self._searched = max(since, len(text) - longest + 1)
        else:
            self._searched = found[0]
        limit = found[0] if found else len(text)
        anchored = self._record.anchored if self._anchored else ()
        first = self._first_visible(text, start) if anchored else len(text)
        if anchored and first < limit:
            for opener in anchored:
                if text.startswith(opener, first):
                    found, limit = (first, opener), first
                    break
        if at_end:
            return found, len(text)
        hold = partial_start(text, openers, limit, start)
        if anchored and first < limit and first < len(text):
            left = len(text) - first
            if any(left < len(op) and op.startswith(text[first:]) for op in anchored):
                hold = first if hold is None else min(hold, first)
        if hold is not None and hold < limit:
            return None, hold
        return found, len(text)

    def _emit_content(self, text: str, out: list[Event]) -> None:
        if not text:
            return
        out.append(ContentDelta(text))
        self._after_call = False
        if text.strip():
            self._anchored = False

    # -- blocks

    def _open_block(self, opener: str, at: int) -> None:
        self._opener = opener
        self._opened_at = at
        self._reader = self._record.reader(opener, self._ctx, at)
        self._consumed = at
        self._settled = 0
        self._last_ok = False

    def _read_block(self, out: list[Event], at_end: bool) -> bool:
        """Apply the reader's steps; True when the block is over."""
        assert self._reader is not None
        for step in self._reader.advance(self._text, at_end):
            self._apply(step, out)
            if self._reader is None:
                return True
        if at_end:  # a reader that did not settle its block: settle it here
            end = len(self._text)
            self._fail("the tool call is not closed", end, out)
            self._close(end, out)
            return True
        return False

    def _apply(self, step: Step, out: list[Event]) -> None:
        if isinstance(step, Begin):
            self._begin(step.name, out)
        elif isinstance(step, Args):
            self._arguments(step.text, out)
        elif isinstance(step, End):
            self._end(step, out)
        elif isinstance(step, Fail):
            self._fail(step.reason, step.end, out)
        elif isinstance(step, Tail):
            if self._last_ok:  # after a failed call, the separator leads the next one
                self._tail(step.end, out)
        elif isinstance(step, Close):
            self._close(step.end, out)
        elif isinstance(step, Drop):
            self._drop(step.end, out)
        else:
            self._reject(out)

    def _begin(self, name: str, out: list[Event]) -> None:
        if self._call is not None:
            return
        known = self._names is None or name in self._names
        doomed = None if known else f"unknown tool {name!r}"
        call = _OpenCall(len(self.raw_calls), new_call_id(), name, doomed)
        self._call = call
        if doomed is None:
            out.append(ToolCallStarted(call.index, call.id, name))

    def _arguments(self, text: str, out: list[Event]) -> None:
        call = self._call
        if call is None or call.doomed or not text:
            return
        out.append(ToolCallArgumentsDelta(call.index, text))
        call.streamed = True

    def _end(self, step: End, out: list[Event]) -> None:
        problem = self._problem(step)
        if problem:
            self._fail(problem, step.end, out)
            return
        if self._call is None:
            self._begin(step.name, out)
        call = self._call
        assert call is not None
        if not call.streamed:
            self._arguments(json.dumps(step.arguments, ensure_ascii=False), out)
        tool_call = ToolCall(id=call.id, name=call.name, arguments=step.arguments)
        out.append(ToolCallFinished(call.index, tool_call))
        self.raw_calls.append(self._take_raw(step.end))
        self._call = None
        self._settled += 1
        self._last_ok = True

    def _problem(self, step: End) -> str | None:
        call = self._call
        if call is not None and call.doomed:
            return call.doomed
        if self._names is not None and step.name not in self._names:
            return f"unknown tool {step.name!r}"
        if call is not None and call.name != step.name:
            return "the tool call names two different tools"
        if not isinstance(step.arguments, dict):
            return "the arguments are not a JSON object"
        return None

    def _fail(self, reason: str, end: int, out: list[Event]) -> None:
        raw = self._take_raw(end)
        self._call = None
        self._settled += 1
        self._last_ok = False
        out.append(ToolCallParseError(raw, reason))
        self._emit_content(raw, out)

    def _close(self, end: int, out: list[Event]) -> None:
        assert self._reader is not None
        if self._call is not None:
            self._fail("the tool call is not complete", end, out)
        elif self._settled == 0:
            self._fail("no tool call in the block", end, out)
        self._tail(end, out)
        self._resume_text(self._consumed)
        self._after_call = self._last_ok
        if self._last_ok:
            self._anchored = True

    def _tail(self, end: int, out: list[Event]) -> None:
        tail = self._take_raw(end)
        if tail and self._last_ok:
            self.raw_calls[-1] += tail
        else:
            self._emit_content(tail, out)

    def _drop(self, end: int, out: list[Event]) -> None:
        assert self._reader is not None
        # The whitespace before the block was the text's, not the dropped markup's.
        lead, self._lead = self._lead, ""
        self._emit_content(lead, out)
        self._call = None
        self._take_raw(end)
        self._resume_text(self._consumed)

    def _reject(self, out: list[Event]) -> None:
        assert self._reader is not None
        self._call = None
        self._emit_content(self._lead + self._opener, out)
        self._lead = ""
        self._resume_text(self._opened_at + len(self._opener))

    def _resume_text(self, start: int) -> None:
        """The block is over: ordinary text again from `start`."""
        self._reader = None
        self._start = self._blank_to = start
        # Blocks only move forward, so what the opener search ruled out still holds.
        self._searched = max(start, self._searched)

    def _take_raw(self, end: int) -> str:
        """The block text from what is accounted for up to `end`, with the whitespace
        that came before the block."""
        # Never less than the opener: the text after a settled block is scanned again,
        # so it must be shorter than the block was.
        end = max(end, self._consumed, self._opened_at + len(self._opener))
        end = min(end, len(self._text))
        raw = self._lead + self._text[self._consumed : end]
        self._lead = ""
        self._consumed = end
        return raw


class OutputPipeline:
    """An OutputParser: the reasoning parser first, then its content through the tool-call
    parser; reasoning passes through, in order."""

    def __init__(self, reasoning: ReasoningParser, tools: ToolCallParser | None) -> None:
        self.reasoning = reasoning
        self.tools = tools
        # Raw reasoning comes to the pipeline marked, so that no call is read inside it.
        reasoning.raw_event = ReasoningDelta

    def feed(self, text: str) -> list[Event]:
        return self._route(self.reasoning.feed(text))

    def finish(self) -> list[Event]:
        events = self._route(self.reasoning.finish())
        if self.tools is not None:
            events.extend(self.tools.finish())
        return events

    def _route(self, events: list[Event]) -> list[Event]:
        raw = self.reasoning.raw
        if self.tools is None:
            if not raw:
                return events
            return merge_deltas(
                [ContentDelta(e.text) if isinstance(e, ReasoningDelta) else e for e in events]
            )
        out: list[Event] = []
        for event in events:
            if isinstance(event, ContentDelta):
                out.extend(self.tools.feed(event.text))
            elif raw and isinstance(event, ReasoningDelta):
                out.extend(self.tools.feed_verbatim(event.text))
            else:
                out.append(event)
        return merge_deltas(out) if raw else out
