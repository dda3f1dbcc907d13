"""What a reader reports (its *steps*: a call began, argument text arrived, a call
ended or failed, the block closed), `Reader`, the cursor machinery every format's
reader is built on, and its bases for blocks of one call (`OneCallReader`) and for
calls written as a list (`CallListReader`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from engine.toolcalls.scanner import MAX_NAME, NAME_CHARS, earliest, partial_start
from engine.toolcalls.tool_specs import Context


@dataclass(frozen=True, slots=True)
class Begin:
    """A call's name is known."""

    name: str


@dataclass(frozen=True, slots=True)
class Args:
    """More of the current call's arguments, as JSON text."""

    text: str


@dataclass(frozen=True, slots=True)
class End:
    """The current call is complete; its raw text ends at `end` (an offset in the block)."""

    name: str
    arguments: Any
    end: int


@dataclass(frozen=True, slots=True)
class Fail:
    """The current call does not parse; its raw text, up to `end`, is content."""

    reason: str
    end: int


@dataclass(frozen=True, slots=True)
class Tail:
    """The text up to `end` (a separator between calls) goes with the previous call."""

    end: int


@dataclass(frozen=True, slots=True)
class Close:
    """The block ends at `end`; what follows is ordinary text again."""

    end: int


@dataclass(frozen=True, slots=True)
class Drop:
    """The block, up to `end`, is markup meant for no one here, neither content nor a
    call (Functionary's `all` recipient line, gpt-oss's message to a built-in tool that
    was not offered); it ends there, and what follows is ordinary text again."""

    end: int


@dataclass(frozen=True, slots=True)
class Reject:
    """The opener was not the start of a call after all (Llama 3's bare `{`)."""


Step: TypeAlias = Begin | Args | End | Fail | Tail | Close | Drop | Reject


class Scanning(Protocol):
    """What `Reader.settle_scan` needs of a scanner (`JsonScanner`, `BracketScanner`):
    where it stopped, where its span ends once it is whole, and what went wrong."""

    pos: int
    end: int | None
    error: str | None


class Reader:
    """Reads one block of tool calls, from its opener on, as the block's text grows.

    `advance(text, at_end)` gets the whole block text so far (it only grows) and returns
    the steps that text allows; the reader keeps its own cursor. Subclasses write
    `step()` (one move: True when it made progress, False when it needs more text) and
    may write `conclude()`, which must settle the block at the end of the output.

    Linear time: no move looks at text it has already looked at again, however the text
    arrives. Searches for a marker resume where the last one, from the same cursor,
    stopped; names and headers are read within their length limits.
    """

    closer: str | None = None
    """What a failed call's raw text runs through (see `fail_call`); None: the end of
    the output."""

    def __init__(self, ctx: Context, pos: int) -> None:
        self.ctx = ctx
        self.pos = pos
        self.done = False
        self.text = ""
        self.at_end = False
        self.name = ""
        self.settled = 0
        """Calls ended or failed so far in this block."""
        self.phase = ""
        self._steps: list[Step] = []
        self._inner: Reader | None = None
        self._failing: tuple[str, str, bool] | None = None
        self._resume: tuple[int, tuple[str, ...], int] = (-1, (), 0)
        """(cursor, needles, offset): where the last unfinished search may go on from."""

    def advance(self, text: str, at_end: bool) -> list[Step]:
        self.text, self.at_end, self._steps = text, at_end, []
        try:
            if self._inner is None:
                self._run()
            if self._inner is not None:  # delegated, now or before
                self._steps.extend(self._inner.advance(text, at_end))
                self.done = self._inner.done
        finally:
            # Hold no reference to the text between calls, so that the parser can grow
            # it in place (CPython appends to a string nothing else refers to).
            self.text = ""
        return self._steps

    def _run(self) -> None:
        while not self.done and self._inner is None:
            progressed = self._skip_failed() if self._failing else self.step()
            if not progressed:
                break
        if self.at_end and not self.done and self._inner is None:
            self.conclude()

    def step(self) -> bool:
        return bool(getattr(self, f"_phase_{self.phase}")())

    def conclude(self) -> None:
        self.fail("the tool call is not closed", len(self.text))

    # -- outcomes

    def emit(self, step: Step) -> None:
        if isinstance(step, (End, Fail)):
            self.settled += 1
        self._steps.append(step)

    def emit_all(self, steps: list[Step]) -> None:
        for step in steps:
            self.emit(step)

    def end_call(self, arguments: Any, end: int) -> None:
        self.emit(End(self.name, arguments, end))

    def close(self, end: int | None = None) -> None:
        self.emit(Close(self.pos if end is None else end))
        self.done = True

    def fail(self, reason: str, end: int | None = None) -> None:
        """The call fails here and the block ends with it."""
        end = self.pos if end is None else end
        self.emit(Fail(reason, end))
        self.close(end)

    def fail_through(self, reason: str, closer: str | None, *, close_block: bool = True) -> None:
        """The call fails; its raw text runs through `closer` (or to the end of the output),
        since a model that wrote the block's start usually writes its end too."""
        if closer is None:
            self.fail(reason)
        else:
            self._failing = (reason, closer, close_block)

    def fail_call(self, reason: str) -> None:
        """The current call fails; its raw text runs through `closer`. A reader whose
        failed calls end elsewhere (one call of several in a section) writes its own."""
        self.fail_through(reason, self.closer)

    def reject(self) -> None:
        self.emit(Reject())
        self.done = True

    def drop(self, end: int | None = None) -> None:
        """The block up to `end` (the cursor) is dropped: see `Drop`."""
        self.emit(Drop(self.pos if end is None else end))
        self.done = True

    def delegate(self, reader: Reader) -> None:
        """Let another reader, starting at its own cursor, read the rest of the block."""
        self._inner = reader

    def _skip_failed(self) -> bool:
        assert self._failing is not None
        reason, closer, close_block = self._failing
        found = self.search((closer,))
        if not found and not self.at_end:
            return False
        end = found[0] + len(closer) if found else len(self.text)
        self._failing = None
        self.pos = end
        self.emit(Fail(reason, end))
        if close_block or not found:
            self.close(end)
        return True

    # -- cursor helpers

    def settle_scan(self, scanner: Scanning, problem: str, read: Callable[[], None]) -> bool:
        """One move of a phase that follows `scanner`, which has just scanned the text so
        far (a call's JSON object, its bracketed arguments). On an error the call fails
        with `problem` and the error, the cursor where the scan stopped; while the span is
        open, wait (False); once it is whole, the cursor moves to its end and `read`
        takes the span. The scanner keeps its own place, so nothing is scanned twice."""
        if scanner.error is not None:
            self.pos = scanner.pos
            self.fail_call(f"{problem}: {scanner.error}")
            return True
        if scanner.end is None:
            return False
        self.pos = scanner.end
        read()
        return True

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def more(self) -> bool:
        return self.pos < len(self.text)

    def expect(self, *options: str) -> str | None:
        """Consume the longest option at the cursor and return it; "" when none can match;
        None when the text so far is too short to tell."""
        best = ""
        undecided = False
        for option in options:
            if self.text.startswith(option, self.pos):
                best = option if len(option) > len(best) else best
            elif len(self.text) - self.pos < len(option) and option.startswith(
                self.text[self.pos :]
            ):
                undecided = True
        if undecided:
            return None
        self.pos += len(best)
        return best

    def until(
        self, *delims: str, limit: int | None = None
    ) -> tuple[str, str] | Literal[False] | None:
        """The text up to the earliest delimiter, consumed with it: (text, delimiter).
        None while no delimiter has arrived; False when none starts within `limit`."""
        found = self.search(delims, limit)
        if not found:
            return found
        at, delim = found
        value = self.text[self.pos : at]
        self.pos = at + len(delim)
        return value, delim

    def search(
        self, needles: tuple[str, ...], limit: int | None = None
    ) -> tuple[int, str] | Literal[False] | None:
        """The earliest needle at or after the cursor (the longest, on a tie), once no
        earlier one can still be arriving: (offset, needle). None while none can be told
        yet; False when none starts within `limit` characters of the cursor.

        The answer does not depend on how the text arrived: a needle is looked for only
        where the whole of it could lie, and a search that finds nothing resumes, on
        the next call from the same cursor, where a needle could still begin.
        """
        text, pos = self.text, self.pos
        longest = max(len(n) for n in needles)
        resume_pos, resume_needles, resume_at = self._resume
        start = resume_at if (resume_pos, resume_needles) == (pos, needles) else pos
        end = None if limit is None else min(len(text), pos + limit + longest)
        found = earliest(text, needles, start, end)
        if found is not None and (limit is None or found[0] - pos <= limit):
            if self.at_end or len(needles) == 1:
                return found
            # A longer needle may begin before this one and still be arriving.
            if partial_start(text, needles, found[0], pos) is None:
                return found
            return None
        if found is not None:
            return False
        # Nothing yet: a needle may still begin where its whole length has not arrived.
        reach = len(text) if self.at_end else max(pos, len(text) - longest + 1)
        if limit is not None and reach - pos > limit:
            return False
        self._resume = (pos, needles, reach)
        return None

    def read_name(self) -> str | None:
        """A tool name at the cursor ("" when there is none); None while it may go on."""
        match = NAME_CHARS.match(self.text, self.pos, self.pos + MAX_NAME + 1)
        end = match.end() if match else self.pos
        if end - self.pos > MAX_NAME:
            return ""
        if end == len(self.text) and not self.at_end:
            return None
        name = self.text[self.pos : end]
        self.pos = end
        return name

    def begin(self, name: str) -> None:
        self.name = name
        self.emit(Begin(name))

    def begin_named_call(self, then: str, fail: Callable[[str], None]) -> bool:
        """One move of a phase that reads the tool name at the cursor: the call begins
        and the reader goes on to phase `then`; wait while the name may go on; with no
        name, `fail` (the block's end, or `fail_call`) says so."""
        name = self.read_name()
        if name is None:
            return False
        if not name:
            fail("expected a tool name")
            return True
        self.begin(name)
        self.phase = then
        return True

    def next_call(self, start: int) -> None:
        """A further call starts at `start`: what lies between goes with the previous one."""
        if self.settled:
            self.emit(Tail(start))


class OneCallReader(Reader):
    """Reads a block that holds one call. Once the call's arguments are read (into
    `arguments`, and the phase is "closer"), one of `closers` ends the call and the
    block (with none, the call ends there); other text fails the call. At the end of
    the output a missing closer is forgiven: the call is whole."""

    closers: tuple[str, ...] = ()
    stray_text = "unexpected text before {closer}"
    """How a call fails when other text stands where its closer belongs."""

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.arguments: Any = None

    def _phase_closer(self) -> bool:
        if not self.closers:
            self._end_block(self.pos)
            return True
        self.skip_ws()
        found = self.expect(*self.closers)
        if found is None:
            return False
        if found:
            self._end_block(self.pos)
        else:
            self.fail_call(self.stray_text.format(closer=self.closer))
        return True

    def _end_block(self, end: int) -> None:
        self.end_call(self.arguments, end)
        self.close(end)

    def conclude(self) -> None:
        if self.phase == "closer":
            self._end_block(len(self.text))
        else:
            super().conclude()


class CallListReader(Reader):
    """Reads calls written as a list (a JSON list, LFM2's Python list). Once the list
    ends, a closer may follow; a missing one is forgiven: the list is whole, and what
    follows it is text."""

    def __init__(self, ctx: Context, pos: int) -> None:
        super().__init__(ctx, pos)
        self.list_end = pos

    def end_list(self) -> None:
        """The list ended at the cursor; what may follow is the closer."""
        self.list_end = self.pos
        self.phase = "closer"

    def _phase_closer(self) -> bool:
        if self.closer is None:
            self.close()
            return True
        self.skip_ws()
        found = self.expect(self.closer)
        if found is None:
            return False
        self.close(self.pos if found else self.list_end)
        return True

    def conclude(self) -> None:
        if self.phase == "closer":
            self.close(len(self.text))
        else:
            super().conclude()
