"""LM Studio's wire chat history (`ChatHistoryData`) as an engine Chat.

Messages carry lists of parts: `text`, `file` (images and other uploads),
`toolCallRequest` (assistant) and `toolCallResult` (role `tool`, one per call).
"""

from __future__ import annotations

import json
from typing import Any

from engine.chat import Chat, ToolCall

from .protocol import LmsError


def chat_of(history: Any) -> Chat:
    """The engine Chat for a history dict; raises LmsError for what we cannot read."""
    messages = history.get("messages") if isinstance(history, dict) else None
    if not isinstance(messages, list):
        raise LmsError('the history must be {"messages": [...]}')
    chat = Chat()
    names: dict[str, str] = {}
    for n, message in enumerate(messages):
        if not isinstance(message, dict):
            raise LmsError(f"history.messages[{n}] is not an object")
        role = message.get("role")
        parts = message.get("content")
        if isinstance(parts, str):
            parts = [{"type": "text", "text": parts}]
        if not isinstance(parts, list):
            raise LmsError(f"history.messages[{n}].content must be a list of parts")
        if any(isinstance(p, dict) and p.get("type") == "file" for p in parts):
            raise LmsError(
                f"history.messages[{n}] holds a file (an image?): the model here has no vision"
            )
        text = "".join(
            p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text"
        )
        if role == "system":
            chat.add_system_prompt(text)
        elif role == "user":
            chat.add_user_message(text)
        elif role == "assistant":
            calls = [_call(p["toolCallRequest"]) for p in parts
                     if isinstance(p, dict) and p.get("type") == "toolCallRequest"]
            names.update({c.id: c.name for c in calls if c.id})
            chat.add_assistant_response(text, tool_calls=calls)
        elif role == "tool":
            for part in parts:
                if isinstance(part, dict) and part.get("type") == "toolCallResult":
                    call_id = str(part.get("toolCallId") or "")
                    content = _result_text(part.get("content"))
                    chat.add_tool_result(call_id, content, names.get(call_id, ""))
        else:
            raise LmsError(f"history.messages[{n}].role: unknown role {role!r}")
    return chat


def _call(request: Any) -> ToolCall:
    if not isinstance(request, dict) or not request.get("name"):
        raise LmsError(f"a toolCallRequest without a name: {request!r}")
    return ToolCall(id=str(request.get("id") or ""), name=request["name"],
                    arguments=dict(request.get("arguments") or {}))


def _result_text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def completion_prompt(chat: Chat) -> str:
    """The prompt `complete()` means: its template concatenates the message contents."""
    return "".join(str(getattr(m, "content", "")) for m in chat.messages)
