"""What a reader reports (its *steps*: a call began, argument text arrived, a call
ended or failed, the block closed), and `Reader`, the cursor machinery every
format's reader is built on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from engine.toolcalls.scanner import MAX_NAME, NAME_CHARS
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
class Reject:
    """The opener was not the start of a call after all (Llama 3's bare `{`)."""


Step: TypeAlias = Begin | Args | End | Fail | Tail | Close | Reject

class Reader:
    """Reads one block of tool calls, from its opener on, as the block's text grows.

    `advance(text, at_end)` gets the whole block text so far (it only grows) and returns
    the steps that text allows; the reader keeps its own cursor. Subclasses write
    `step()` (one move: True when it made progress, False when it needs more text) and
    may write `conclude()`, which must settle the block at the end of the output.
    """

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

    def advance(self, text: str, at_end: bool) -> list[Step]:
        self.text, self.at_end, self._steps = text, at_end, []
        if self._inner is None:
            self._run()
        if self._inner is not None:  # delegated, now or before
            self._steps.extend(self._inner.advance(text, at_end))
            self.done = self._inner.done
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

    def reject(self) -> None:
        self.emit(Reject())
        self.done = True

    def delegate(self, reader: Reader) -> None:
        """Let another reader, starting at its own cursor, read the rest of the block."""
        self._inner = reader

    def _skip_failed(self) -> bool:
        assert self._failing is not None
        reason, closer, close_block = self._failing
        at = self.text.find(closer, self.pos)
        if at == -1 and not self.at_end:
            return False
        end = len(self.text) if at == -1 else at + len(closer)
        self._failing = None
        self.pos = end
        self.emit(Fail(reason, end))
        if close_block or at == -1:
            self.close(end)
        return True

    # -- cursor helpers

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

    def until(self, *delims: str, limit: int | None = None) -> tuple[str, str] | bool | None:
        """The text up to the earliest delimiter, consumed with it: (text, delimiter).
        None while no delimiter has arrived; False when none comes within `limit`."""
        best_at, best = -1, ""
        for delim in delims:
            at = self.text.find(delim, self.pos)
            if at != -1 and (best_at == -1 or at < best_at):
                best_at, best = at, delim
        reach = best_at if best_at != -1 else len(self.text)
        if limit is not None and reach - self.pos > limit:
            return False
        if best_at == -1:
            return None
        value = self.text[self.pos : best_at]
        self.pos = best_at + len(best)
        return value, best

    def read_name(self) -> str | None:
        """A tool name at the cursor ("" when there is none); None while it may go on."""
        match = NAME_CHARS.match(self.text, self.pos)
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

    def next_call(self, start: int) -> None:
        """A further call starts at `start`: what lies between goes with the previous one."""
        if self.settled:
            self.emit(Tail(start))
