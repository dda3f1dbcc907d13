"""The default format, LM Studio's "default tool use", for models whose template
renders no tools: the system prompt that teaches
`[TOOL_REQUEST]{"name": ..., "arguments": {...}}[END_TOOL_REQUEST]`, and the history
rewritten so that any template can render it."""

from __future__ import annotations

import json
import string
from typing import Any

from engine.toolcalls.tool_specs import openai_tool

# LM Studio's own wording (its docs show it in `lms log stream`); `$tools` is the tool
# list as JSON. A string.Template placeholder, because the text is full of braces.
DEFAULT_TOOL_SYSTEM_PROMPT = """\
You are a tool-calling AI. You can request calls to available tools with this EXACT format:
[TOOL_REQUEST]{"name": "tool_name", "arguments": {"param1": "value1"}}[END_TOOL_REQUEST]

AVAILABLE TOOLS:
$tools

RULES:
- Only use tools from AVAILABLE TOOLS
- Include all required arguments
- Use one [TOOL_REQUEST] block per tool
- Never use [TOOL_RESULT]
- If you decide to call one or more tools, there should be no other text in your message

Examples:
"Check Paris weather"
[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Paris"}}[END_TOOL_REQUEST]

"Send email to John about meeting and open browser"
[TOOL_REQUEST]{"name": "send_email", "arguments": {"to": "John", "subject": "meeting"}}[END_TOOL_REQUEST]
[TOOL_REQUEST]{"name": "open_browser", "arguments": {}}[END_TOOL_REQUEST]

Respond conversationally if no matching tools exist."""

TOOL_REQUEST_OPEN = "[TOOL_REQUEST]"
TOOL_REQUEST_CLOSE = "[END_TOOL_REQUEST]"
# LM Studio's docs do not show how a result is worded; the prompt's "Never use
# [TOOL_RESULT]" tells that results come back wrapped in that tag.
TOOL_RESULT_OPEN = "[TOOL_RESULT]"
TOOL_RESULT_CLOSE = "[END_TOOL_RESULT]"


def default_tool_system_prompt(tools: list[dict[str, Any]]) -> str:
    """LM Studio's default tool-use system prompt, listing `tools`."""
    listing = {"type": "toolArray", "tools": [openai_tool(tool) for tool in tools]}
    text = json.dumps(listing, indent=2, ensure_ascii=False)
    return string.Template(DEFAULT_TOOL_SYSTEM_PROMPT).safe_substitute(tools=text)


def to_default_format(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Template messages that any template can render, teaching the default format.

    The tool prompt follows the first system message's text (or becomes the system
    message); `tool` results become user turns; assistant tool calls are written back
    into the assistant's content as `[TOOL_REQUEST]` blocks. Consecutive user turns
    made this way are joined, since many templates insist that roles alternate.
    With no tools (a follow-up request that offers none), the history is converted all
    the same, but no tool prompt is added.
    """
    prompt = default_tool_system_prompt(tools) if tools else None
    out: list[dict[str, Any]] = []
    merged_system = prompt is None
    for message in messages:
        role = message.get("role")
        if role == "system" and not merged_system and prompt is not None:
            out.append(_with_tool_prompt(message, prompt))
            merged_system = True
        elif role == "tool":
            _append_user(out, _tool_result_text(message), from_tool=True)
        elif role == "assistant" and message.get("tool_calls"):
            out.append(_assistant_with_requests(message))
        elif role == "user" and out and out[-1].get("_from_tool"):
            _append_user(out, _plain_text(message.get("content")), from_tool=False)
        else:
            out.append(dict(message))
    if not merged_system and prompt is not None:
        out.insert(0, {"role": "system", "content": prompt})
    for message in out:
        message.pop("_from_tool", None)
    return out


def _with_tool_prompt(message: dict[str, Any], prompt: str) -> dict[str, Any]:
    text = _plain_text(message.get("content"))
    return {**message, "content": f"{text}\n\n{prompt}" if text.strip() else prompt}


def _tool_result_text(message: dict[str, Any]) -> str:
    return f"{TOOL_RESULT_OPEN}{_plain_text(message.get('content'))}{TOOL_RESULT_CLOSE}"


def _append_user(out: list[dict[str, Any]], text: str, *, from_tool: bool) -> None:
    last = out[-1] if out else None
    if last is not None and last.get("role") == "user" and (from_tool or last.get("_from_tool")):
        last["content"] = f"{_plain_text(last.get('content'))}\n{text}"
        last["_from_tool"] = True
        return
    out.append({"role": "user", "content": text, "_from_tool": from_tool})


def _assistant_with_requests(message: dict[str, Any]) -> dict[str, Any]:
    requests = [_tool_request_text(call) for call in message.get("tool_calls") or []]
    text = _plain_text(message.get("content"))
    parts = ([text] if text.strip() else []) + requests
    rest = {k: v for k, v in message.items() if k != "tool_calls"}
    return {**rest, "content": "\n".join(parts)}


def _tool_request_text(call: Any) -> str:
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    function = call.get("function", call) if isinstance(call, dict) else {}
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # written back as the string the history holds
    body = json.dumps({"name": function.get("name", ""), "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_REQUEST_OPEN}{body}{TOOL_REQUEST_CLOSE}"


def _plain_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)
