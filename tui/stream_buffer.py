"""From the engine's event stream to the screen, in batches.

A widget update per token costs a fifth of generation speed (measured for the TUI
issue); so the worker only appends text to a `TextBuffer`, and the screen drains
the buffer into its widget on a timer, `[ui] stream_refresh_rate` times a second.
Everything else (progress, first token, the end) becomes a message, and the handler
of the final message drains the buffer once more, so the last tokens always reach
the screen.
"""

from __future__ import annotations

import asyncio
import threading

from textual.message_pump import MessagePump

from engine.llama import EventStream
from engine.prediction import (
    ContentDelta,
    Failed,
    Finished,
    FirstToken,
    PromptProgress,
)
from tui.app_messages import (
    PredictionFailed,
    PredictionFinished,
    PredictionFirstToken,
    PredictionProgress,
)
from tui.token_rate import TokenRate


def flush_interval(refresh_rate: int) -> float:
    """Seconds between two drains of a TextBuffer into its widget (`[ui] stream_refresh_rate`)."""
    return 1 / max(1, refresh_rate)


class TextBuffer:
    """Text produced but not shown yet. Safe to fill from any thread."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()

    def add(self, text: str) -> None:
        with self._lock:
            self._parts.append(text)

    def take(self) -> str:
        """Everything added since the last take, and empty the buffer."""
        with self._lock:
            parts, self._parts = self._parts, []
        return "".join(parts)

    def __bool__(self) -> bool:
        return bool(self._parts)


async def pump_prediction(
    stream: EventStream,
    buffer: TextBuffer,
    target: MessagePump,
    tag: str,
    rate: TokenRate | None = None,
) -> None:
    """Consume a raw completion's events until it ends.

    Text goes into `buffer`; progress, the first token and the end are posted to
    `target` as messages carrying `tag`, so one screen can tell its predictions apart;
    the tokens are counted in `rate`, for the live speed.
    Runs in an async worker: it never touches a widget.
    """
    if rate is not None:
        rate.start()
    try:
        async for event in stream:
            _dispatch(event, buffer, target, tag, rate)
    except asyncio.CancelledError:
        # The worker was cancelled (screen closed, app quitting): stop the model too.
        stream.cancel()
        raise


def _dispatch(
    event: object, buffer: TextBuffer, target: MessagePump, tag: str, rate: TokenRate | None
) -> None:
    match event:
        case ContentDelta(text=text, tokens_count=tokens):
            buffer.add(text)
            if rate is not None:
                rate.count(tokens)
        case PromptProgress(fraction=fraction, processed_tokens=done, total_tokens=total):
            target.post_message(PredictionProgress(tag, fraction, done, total))
        case FirstToken(time_to_first_token_sec=seconds):
            if rate is not None:
                rate.first_token(seconds)
            target.post_message(PredictionFirstToken(tag, seconds))
        case Finished(result=result):
            target.post_message(PredictionFinished(tag, result))
        case Failed(error=error):
            target.post_message(PredictionFailed(tag, error))
        case _:
            # Log records reach the Logs screen through the log bus.
            pass
