"""From the act loop's events to the Chat screen: text in buffers, the rest as messages.

As on the Complete screen (see `tui.stream_buffer`), text never travels one message per
token: the worker appends answer, reasoning and tool-call arguments to the
`RoundBuffers` of the current round, and the screen drains them into its widgets
on a timer. Everything that changes the shape of the reply (a round begins, a tool
call appears, a tool runs, the reply ends) is posted as a message, which the
screen's handlers turn into widgets and saved messages.

A message is posted after the text that came before it was buffered, so the
handler of `RoundEnded` drains the buffers once more and nothing is lost.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from textual.message import Message
from textual.message_pump import MessagePump

from engine.agent import (
    ActFinished,
    ActStopReason,
    RoundFinished,
    RoundStarted,
    ToolApprovalRequested,
    ToolRunFinished,
    ToolRunStarted,
)
from engine.chat import ToolCall
from engine.prediction import (
    ContentDelta,
    Failed,
    FirstToken,
    PredictionResult,
    PromptProgress,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)
from engine.tools import ToolResult
from tui.app_messages import PredictionFailed, PredictionFirstToken, PredictionProgress
from tui.store.saved_chats import SavedChat, UnknownCall
from tui.stream_buffer import TextBuffer
from tui.token_rate import TokenRate
from tui.widgets.chat.message_views import AssistantMessageView


@dataclass
class RoundBuffers:
    """Text of one round (one assistant message) not shown yet."""

    content: TextBuffer = field(default_factory=TextBuffer)
    reasoning: TextBuffer = field(default_factory=TextBuffer)
    arguments: dict[str, TextBuffer] = field(default_factory=dict)
    """Tool-call arguments as they stream, by call id: a call that fails gives its index
    to the next one, whose pieces must not join its own."""
    call_ids: dict[int, str] = field(default_factory=dict)
    """The id of the call streaming at each index now."""
    rate: TokenRate = field(default_factory=TokenRate)
    """The round's tokens so far (answer and reasoning), for the live speed."""

    def start_call(self, index: int, call_id: str) -> None:
        self.call_ids[index] = call_id
        self.arguments_of(call_id)

    def arguments_of(self, call_id: str) -> TextBuffer:
        return self.arguments.setdefault(call_id, TextBuffer())


class ApprovalGate:
    """The person's answers to tool approvals, one future per call id.

    The act loop awaits `ask` (through the `approve` callback); the screen calls
    `answer` when the person presses a key. Either may come first.
    """

    def __init__(self) -> None:
        self._answers: dict[str, asyncio.Future[bool]] = {}

    def _future(self, call_id: str) -> asyncio.Future[bool]:
        future = self._answers.get(call_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._answers[call_id] = future
        return future

    async def ask(self, call: ToolCall, _tool: Any) -> bool:
        return await self._future(call.id)

    def answer(self, call_id: str, approved: bool) -> None:
        future = self._future(call_id)
        if not future.done():
            future.set_result(approved)

    def deny_all(self) -> None:
        """Stopping the reply denies whatever is still waiting for an answer."""
        for future in self._answers.values():
            if not future.done():
                future.set_result(False)


@dataclass
class ReplyInProgress:
    """The reply being generated, and where its parts go."""

    tag: str
    saved: SavedChat
    run: Run
    gate: ApprovalGate
    view: AssistantMessageView | None = None
    buffers: RoundBuffers = field(default_factory=RoundBuffers)
    stopping: bool = False
    unknown_calls: list[UnknownCall] = field(default_factory=list)
    """This round's calls to tools the chat does not have (saved with its message)."""


# --- messages to the screen, all tagged with the reply they belong to -----------------


@dataclass
class RoundBegan(Message):
    """The model starts an assistant message; its text arrives in `buffers`."""

    tag: str
    index: int
    buffers: RoundBuffers


@dataclass
class ToolCallBegan(Message):
    tag: str
    index: int
    call_id: str
    name: str


@dataclass
class ToolCallParsed(Message):
    tag: str
    index: int
    call: ToolCall


@dataclass
class ToolCallUnparsed(Message):
    """The model wrote something like a tool call that did not parse; it stays in the text."""

    tag: str
    raw_text: str
    reason: str


@dataclass
class RoundEnded(Message):
    tag: str
    result: PredictionResult


@dataclass
class ApprovalRequested(Message):
    tag: str
    call: ToolCall
    tool_name: str


@dataclass
class ToolRunBegan(Message):
    tag: str
    call: ToolCall


@dataclass
class ToolRunEnded(Message):
    tag: str
    result: ToolResult
    denied: bool


@dataclass
class ReplyEnded(Message):
    """The reply is over: answered, stopped, failed or out of rounds."""

    tag: str
    reason: ActStopReason


class Run(Protocol):
    """What the pump needs of an `ActRun` (tests wrap one to pause it)."""

    def __aiter__(self) -> AsyncIterator[Any]: ...

    def cancel(self) -> None: ...


_UNKNOWN_TOOL = re.compile(r"""^unknown tool (['"])(?P<name>.*)\1$""")


def unknown_tool_name(reason: str) -> str | None:
    """The tool named by a parse error "unknown tool 'X'", else None."""
    match = _UNKNOWN_TOOL.match(reason)
    return match.group("name") if match is not None else None


def _without_prefix(text: str, prefix: str) -> tuple[str, str]:
    """(`text` less what it shares of `prefix` at its start, what is left of `prefix`).
    A text that does not start as `prefix` does ends the holding back."""
    shared = 0
    for ours, theirs in zip(text, prefix):
        if ours != theirs:
            break
        shared += 1
    if shared == 0:
        return text, ""
    return text[shared:], prefix[shared:]


async def pump_reply(run: Run, target: MessagePump, tag: str) -> None:
    """Run the act loop to its end, posting to `target`. Runs in an async worker and
    never touches a widget. The loop starts predicting only when iterated, so an
    error in starting it (a bad setting, a template that fails) surfaces here and is
    reported like any other."""
    buffers = RoundBuffers()
    post = target.post_message
    hidden = ""
    """The raw text of a call to an unknown tool: a card shows it, not the text."""
    try:
        async for event in run:
            match event:
                case ContentDelta(text=text, tokens_count=tokens):
                    buffers.rate.count(tokens)
                    if hidden:
                        text, hidden = _without_prefix(text, hidden)
                    buffers.content.add(text)
                case ReasoningDelta(text=text, tokens_count=tokens):
                    buffers.rate.count(tokens)
                    buffers.reasoning.add(text)
                case ToolCallArgumentsDelta(index=index, text=text):
                    if index in buffers.call_ids:
                        buffers.arguments_of(buffers.call_ids[index]).add(text)
                case RoundStarted(index=index):
                    buffers = RoundBuffers()
                    buffers.rate.start()
                    post(RoundBegan(tag, index, buffers))
                case PromptProgress(fraction=fraction, processed_tokens=done, total_tokens=total):
                    post(PredictionProgress(tag, fraction, done, total))
                case FirstToken(time_to_first_token_sec=seconds):
                    buffers.rate.first_token(seconds)
                    post(PredictionFirstToken(tag, seconds))
                case ToolCallStarted(index=index, id=call_id, name=name):
                    buffers.start_call(index, call_id)
                    post(ToolCallBegan(tag, index, call_id, name))
                case ToolCallFinished(index=index, call=call):
                    post(ToolCallParsed(tag, index, call))
                case ToolCallParseError(raw_text=raw, reason=reason):
                    # The parser gives the raw text back as content next: held back here.
                    hidden = raw if unknown_tool_name(reason) is not None else ""
                    post(ToolCallUnparsed(tag, raw, reason))
                case RoundFinished(result=result):
                    post(RoundEnded(tag, result))
                case ToolApprovalRequested(call=call, tool_name=name):
                    post(ApprovalRequested(tag, call, name))
                case ToolRunStarted(call=call):
                    post(ToolRunBegan(tag, call))
                case ToolRunFinished(result=result, denied=denied):
                    post(ToolRunEnded(tag, result, denied))
                case Failed(error=error):
                    post(PredictionFailed(tag, error))
                case ActFinished(reason=reason):
                    post(ReplyEnded(tag, reason))
                    return
                case _:
                    # Finished is followed by RoundFinished with the same result; log
                    # records reach the Logs screen through the log bus.
                    pass
        post(ReplyEnded(tag, "answered"))
    except asyncio.CancelledError:
        # The worker was cancelled (app quitting): stop the model too.
        run.cancel()
        raise
    except Exception as err:  # noqa: BLE001  (a template error, a bad tool choice...: report, never crash)
        post(PredictionFailed(tag, err))
        post(ReplyEnded(tag, "failed"))

