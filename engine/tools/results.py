"""What a tool call produced (`ToolResult`), and the output limit every tool shares."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.chat import ToolCall, ToolResultMessage


class ToolResult(BaseModel):
    """What a call produced; `content` is what the model reads."""

    model_config = ConfigDict(frozen=True)

    tool_call_id: str
    name: str
    content: str
    is_error: bool = False
    exit_code: int | None = None
    """The command's exit status (negative: killed by that signal); None for built-ins
    and for commands that never started."""
    duration_sec: float = 0.0
    timed_out: bool = False

    def to_message(self) -> ToolResultMessage:
        """The `tool` message that carries this result back to the model."""
        return ToolResultMessage(
            tool_call_id=self.tool_call_id, name=self.name, content=self.content
        )


def error_result(call: ToolCall, message: str, started: float, **extra: Any) -> ToolResult:
    """An error the model reads as the call's result (`started`: time.monotonic())."""
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        content=f"error: {message}",
        is_error=True,
        duration_sec=time.monotonic() - started,
        **extra,
    )


def truncate(text: str, limit: int, total_bytes: int | None = None) -> str:
    """`text` cut at `limit` characters with a note saying how much there was.

    `total_bytes` is given when bytes were already dropped before decoding (a command's
    capture keeps only so many): then the note counts those, and is added even if
    `text` itself fits.
    """
    dropped_bytes = total_bytes is not None
    if len(text) <= limit and not dropped_bytes:
        return text
    shown = min(limit, len(text))
    # Past the bytes kept, only the byte count is known, not the characters.
    whole = f"{total_bytes} bytes" if dropped_bytes else f"{len(text)} characters"
    return f"{text[:limit]}\n[output truncated: showing the first {shown} characters of {whole}]"
