"""Old path, kept while callers move: the grammars that force a tool call now live in
`engine.toolcalls.grammar` (each format's wrapper in its record in
`engine.toolcalls.formats`)."""

from __future__ import annotations

from engine.toolcalls.grammar import *  # noqa: F403
from engine.toolcalls.grammar import (
    MAX_ENUM_RANGE,
    MAX_ITEMS,
    MAX_PARALLEL,
    MAX_STRING,
    UnsupportedToolFormat,
    choose_tools,
    function_of,
    tight,
    tool_call_grammar,
)

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
