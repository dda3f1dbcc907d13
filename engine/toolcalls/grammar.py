"""Grammars that force a tool call: tool_choice "required" or a named function.

The arguments follow each tool's JSON schema, wrapped in the model's native tool-call
syntax (the grammar wrapper its format's record names), so that even a tiny random
model writes a call that parses and validates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import UnsupportedToolFormat
from engine.toolcalls.formats import GRAMMARS
from engine.toolcalls.gbnf import MAX_ENUM_RANGE, MAX_ITEMS, MAX_PARALLEL, MAX_STRING, tight
from engine.toolcalls.tool_specs import function_of

__all__ = [
    "MAX_ENUM_RANGE",
    "MAX_ITEMS",
    "MAX_PARALLEL",
    "MAX_STRING",
    "UnsupportedToolFormat",
    "choose_tools",
    "function_of",
    "tight",
    "tool_call_grammar",
]


def choose_tools(tools: Sequence[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    """The tools a forced call may use: all of them, or the one tool_choice names."""
    if tool_choice == "required":
        return list(tools)
    name = tool_choice
    if isinstance(tool_choice, dict):
        name = function_of(tool_choice).get("name")
    chosen = [t for t in tools if function_of(t).get("name") == name]
    if not chosen:
        known = ", ".join(str(function_of(t).get("name")) for t in tools) or "none"
        raise ValueError(f"tool_choice names {name!r}, which is not among the tools ({known})")
    return chosen


def tool_call_grammar(
    tools: Sequence[dict[str, Any]], tool_choice: Any, tool_format: str, *, parallel: bool = False
) -> str:
    """A GBNF grammar whose every sentence is one call of a chosen tool in `tool_format`;
    with `parallel` (OpenAI's parallel_tool_calls), one to MAX_PARALLEL such calls."""
    chosen = choose_tools(tools, tool_choice)
    if not chosen:
        raise ValueError("tool_choice requires a tool call, but no tools were given")
    wrapper = GRAMMARS.get(tool_format)
    if wrapper is None:
        raise UnsupportedToolFormat(f"no grammar for the {tool_format!r} tool-call format")
    return wrapper.build(chosen, parallel)
