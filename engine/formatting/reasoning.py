"""Splitting generated text into reasoning and answer, as it streams.

Models write their thinking between markers (`<think>…</think>` and cousins). The
parser here turns a stream of text pieces into ReasoningDelta and ContentDelta events,
holding back only what could still turn out to be the start of a marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.prediction import ContentDelta, Event, ReasoningDelta, merge_deltas


@dataclass(frozen=True, slots=True)
class ReasoningMarkers:
    """The text that opens and closes a reasoning block in one model family."""

    open: str
    close: str
    family: str = ""
    framing: tuple[str, ...] = ()
    """Tokens around the answer that are dropped from content (Command R7B's
    `<|START_RESPONSE|>`, gpt-oss's `<|channel|>final<|message|>`)."""
    role: str = ""
    """The framing token that starts a message (gpt-oss's `<|start|>assistant`; the
    generation prompt ends with it, so the output starts right after one)."""
    recipient: tuple[str, str] | None = None
    """(opener, end) of a recipient written right after `role` (gpt-oss's
    ` to=functions.f<|channel|>analysis<|message|>`): that header is a tool call's,
    passed on to the content whole, even where it holds the open marker's text."""

    def __post_init__(self) -> None:
        if not self.open or not self.close:
            raise ValueError("reasoning markers must not be empty")


THINK = ReasoningMarkers("<think>", "</think>", "think")
GRANITE = ReasoningMarkers("<think>", "</think>", "granite", ("<response>", "</response>"))
MISTRAL_THINK = ReasoningMarkers("[THINK]", "[/THINK]", "mistral")
SEED_THINK = ReasoningMarkers("<seed:think>", "</seed:think>", "seed")
COMMAND_R7B = ReasoningMarkers(
    "<|START_THINKING|>",
    "<|END_THINKING|>",
    "command-r7b",
    ("<|START_RESPONSE|>", "<|END_RESPONSE|>"),
)
# Gemma 4 writes a newline after "thought"; it stays in the reasoning text.
GEMMA4 = ReasoningMarkers("<|channel>thought", "<channel|>", "gemma4")
# gpt-oss (harmony): reasoning is the analysis channel, the answer the final channel.
# Tool calls (the commentary channel) are left in the content for the tool-call parser.
# A message to the user on the commentary channel (no recipient) is content, its
# header dropped; so is a stray `to=assistant` header (llama.cpp drops both), and the
# `<|end|>` that closes a message outside reasoning.
HARMONY = ReasoningMarkers(
    "<|channel|>analysis<|message|>",
    "<|end|>",
    "harmony",
    (
        "<|start|>assistant",
        "<|channel|>final<|message|>",
        "<|channel|>final <|constrain|>json<|message|>",
        "<|channel|>commentary<|message|>",
        "<|channel|>commentary to=assistant",
        "<|end|>",
        "<|return|>",
    ),
    role="<|start|>assistant",
    recipient=(" to=", "<|message|>"),
)

KNOWN_MARKERS: tuple[ReasoningMarkers, ...] = (
    THINK,
    GRANITE,
    MISTRAL_THINK,
    SEED_THINK,
    COMMAND_R7B,
    GEMMA4,
    HARMONY,
)


def markers_for_template(source: str | None) -> ReasoningMarkers | None:
    """The reasoning markers a chat template's model writes, or None if it does not reason.

    Told apart by what the template itself writes: a template that renders past
    reasoning, or opens a block in the generation prompt, names its markers.
    """
    if not source:
        return None
    # Most specific first: several of these templates also mention "<think>" in prose.
    if "<|channel|>analysis" in source or "<|channel|>final" in source:
        return HARMONY
    if "<|channel>" in source and "<channel|>" in source:
        return GEMMA4
    if "<seed:think>" in source:
        return SEED_THINK
    if "<|START_THINKING|>" in source:
        return COMMAND_R7B
    if "[THINK]" in source:
        return MISTRAL_THINK
    if "<think>" in source:
        if "<|start_of_role|>" in source and "<response>" in source:
            return GRANITE
        return THINK
    return None


def prompt_opens_reasoning(prompt: str, markers: ReasoningMarkers | None) -> bool:
    """Did the template end the prompt inside an open reasoning block?

    QwQ, the R1 distills, Qwen3.5, GLM-4.7 and MiniMax end the generation prompt with
    the open marker, so the output starts in reasoning and holds only the close marker.
    """
    if markers is None:
        return False
    return prompt.rstrip().endswith(markers.open.rstrip())


def split_reasoning(
    text: str, markers: ReasoningMarkers | None, *, starts_in_reasoning: bool = False
) -> tuple[str, str]:
    """Split a complete text into (reasoning, content)."""
    parser = ReasoningParser(markers, starts_in_reasoning=starts_in_reasoning)
    events = parser.feed(text) + parser.finish()
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    return reasoning, content


_HEADER_LIMIT = 256
"""How far a recipient header may run before its end (gpt-oss's `<|message|>`)."""


class ReasoningParser:
    """An OutputParser that separates reasoning blocks from the answer.

    - Text before an open marker is content; there may be several blocks.
    - A marker split across pieces is recognised; only a possible marker prefix is
      held back, everything else is emitted at once.
    - Whitespace right after a close marker is dropped (it separates, it is not answer).
    - A block still open at the end is reasoning.
    - `starts_in_reasoning`: the prompt already opened the block; a repeated open
      marker at the very start of the output is dropped.
    - `raw=True` keeps each reasoning block in the content verbatim, markers and all
      (llama.cpp's `reasoning_format=none`); framing tokens still go, as llama.cpp
      drops them.
    - `enabled=False` (or no markers) passes everything through as content.
    """

    def __init__(
        self,
        markers: ReasoningMarkers | None,
        starts_in_reasoning: bool = False,
        enabled: bool = True,
        *,
        raw: bool = False,
    ) -> None:
        self.markers = markers
        self.enabled = enabled and markers is not None
        self.raw = raw
        self.raw_event: type[ContentDelta | ReasoningDelta] = ContentDelta
        """What a raw block's text comes out as: content, or, for an OutputPipeline,
        ReasoningDelta that it passes on as content the tool-call parser must not read
        (calls written inside reasoning are reasoning, as llama.cpp keeps them)."""
        self._in_reasoning = self.enabled and starts_in_reasoning
        self._at_block_start = self._in_reasoning and not raw
        self._skip_space = False
        # The output starts right after the generation prompt's role token.
        self._after_role = (
            self.enabled and markers is not None and bool(markers.role) and bool(markers.recipient)
        )
        self._buffer = ""

    @property
    def in_reasoning(self) -> bool:
        return self._in_reasoning

    def feed(self, text: str) -> list[Event]:
        if not self.enabled:
            return [ContentDelta(text)] if text else []
        self._buffer += text
        out: list[Event] = []
        while self._step(out):
            pass
        return merge_deltas(out)

    def finish(self) -> list[Event]:
        if not self.enabled:
            return []
        rest, self._buffer = self._buffer, ""
        if self._in_reasoning:
            return [self._reasoning(rest)] if rest else []
        if self._skip_space:
            rest = rest.lstrip()
        return [ContentDelta(rest)] if rest else []

    def _reasoning(self, text: str) -> Event:
        return self.raw_event(text) if self.raw else ReasoningDelta(text)

    def _step(self, out: list[Event]) -> bool:
        """Consume what the buffer allows; True when a marker changed the state."""
        if self._in_reasoning:
            return self._step_reasoning(out)
        return self._step_content(out)

    def _step_reasoning(self, out: list[Event]) -> bool:
        assert self.markers is not None
        if self._at_block_start and not self._drop_repeated_open():
            return False
        before, marker, self._buffer = _scan(self._buffer, (self.markers.close,))
        if before:
            out.append(self._reasoning(before))
        if marker is None:
            return False
        self._in_reasoning = False
        if self.raw:
            out.append(self._reasoning(marker))
        else:
            self._skip_space = True
        return True

    def _drop_repeated_open(self) -> bool:
        """At the start of a forced-open block, drop the open marker if the model repeats
        it. False while that cannot be decided yet."""
        assert self.markers is not None
        opener = self.markers.open
        stripped = self._buffer.lstrip()
        if len(stripped) < len(opener) and opener.startswith(stripped):
            return False
        if stripped.startswith(opener):
            self._buffer = stripped[len(opener) :]
        self._at_block_start = False
        return True

    def _step_content(self, out: list[Event]) -> bool:
        assert self.markers is not None
        if self._skip_space:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return False
            self._skip_space = False
        if self._after_role:
            passed = self._pass_recipient(out)
            if passed is None:
                return False
            if passed:
                return True
        needles = (self.markers.open, *self.markers.framing)
        before, marker, self._buffer = _scan(self._buffer, needles)
        if before:
            out.append(ContentDelta(before))
        if marker is None:
            return False
        if marker == self.markers.open:
            self._in_reasoning = True
            if self.raw:
                out.append(self._reasoning(marker))
        elif marker == self.markers.role and self.markers.recipient:
            self._after_role = True
        return True

    def _pass_recipient(self, out: list[Event]) -> bool | None:
        """Right after the role token: a recipient header passes to the content whole
        (True). False when none is there; None while that cannot be told yet."""
        assert self.markers is not None and self.markers.recipient is not None
        opener, end = self.markers.recipient
        buffer = self._buffer
        if len(buffer) < len(opener) and opener.startswith(buffer):
            return None
        self._after_role = False
        if not buffer.startswith(opener):
            return False
        at = buffer.find(end, len(opener), _HEADER_LIMIT)  # the same however it arrives
        if at == -1:
            if len(buffer) < _HEADER_LIMIT:
                self._after_role = True
                return None
            return False
        cut = at + len(end)
        out.append(ContentDelta(buffer[:cut]))
        self._buffer = buffer[cut:]
        return True


def _scan(buffer: str, needles: Sequence[str]) -> tuple[str, str | None, str]:
    """Split `buffer` at the earliest complete needle: (before, needle, after).

    With no complete needle, or one preceded by the start of a needle that might still
    complete, returns (safe text, None, text held back).
    """
    found_at, found = -1, None
    for needle in needles:
        at = buffer.find(needle)
        if at != -1 and (found is None or at < found_at):
            found_at, found = at, needle
    hold = _possible_start(buffer, needles, found_at if found is not None else len(buffer))
    if hold is not None:
        return buffer[:hold], None, buffer[hold:]
    if found is not None:
        return buffer[:found_at], found, buffer[found_at + len(found) :]
    return buffer, None, ""


def _possible_start(buffer: str, needles: Sequence[str], before: int) -> int | None:
    """The earliest index before `before` where the buffer's tail is a proper prefix of a
    needle, i.e. where a marker may be starting but has not arrived whole."""
    longest = max(len(n) for n in needles)
    for at in range(max(0, len(buffer) - longest + 1), min(before, len(buffer))):
        tail = buffer[at:]
        if any(len(tail) < len(n) and n.startswith(tail) for n in needles):
            return at
    return None
