"""Which tool-call format a chat template's model writes, told from what the template
itself writes (never from the model's name), by the records in `formats`."""

from __future__ import annotations

from functools import lru_cache

from engine.formatting.templates import template_supports_tools
from engine.toolcalls.formats import FORMATS


@lru_cache(maxsize=64)
def detect_tool_format(chat_template_source: str | None) -> str:
    """The tool-call format a chat template's model writes; "default" when the template
    renders no tools, or writes calls in a format we do not parse.

    This is the format to prompt in: a template that does not list the tools cannot
    tell the model about them, so the default format's system prompt must.
    """
    if not chat_template_source or not template_supports_tools(chat_template_source):
        return "default"
    for record in FORMATS.values():
        if record.detect is not None and record.detect(chat_template_source):
            return record.name
    return "default"


@lru_cache(maxsize=64)
def detect_call_format(chat_template_source: str | None) -> str:
    """The format a template's model writes calls in natively: `detect_tool_format`'s,
    or, for a template that lists no tools yet writes calls in the history (DeepSeek
    V3.1), that format. `parse_output` reads a model's output by it, as llama.cpp does."""
    found = detect_tool_format(chat_template_source)
    if found != "default" or not chat_template_source:
        return found
    for record in FORMATS.values():
        if record.detect_unlisted is not None and record.detect_unlisted(chat_template_source):
            return record.name
    return "default"
