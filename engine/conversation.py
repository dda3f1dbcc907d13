"""Old path of engine.formatting.conversation (chat → prompt on a loaded model), kept while callers move."""

from __future__ import annotations

from .formatting.conversation import *  # noqa: F403
from .formatting.conversation import (
    Messages,
    ToolChoice,
    as_chat,
    chat_prompt,
    constrain_tool_call,
    fit_messages,
    fold_system,
    has_tool_history,
    render_chat,
    reply_reserve,
    respond_events,
    respond_sync,
    start_reply,
    template_tool_format,
    tool_format,
)

__all__ = [
    "Messages",
    "ToolChoice",
    "as_chat",
    "chat_prompt",
    "constrain_tool_call",
    "fit_messages",
    "fold_system",
    "has_tool_history",
    "render_chat",
    "reply_reserve",
    "respond_events",
    "respond_sync",
    "start_reply",
    "template_tool_format",
    "tool_format",
]
