"""Tool calls: which format a model writes them in, the default format for models
that have none, parsing calls out of generated text as it streams, and grammars that
force a call.

The format is told from the chat template (what the template itself writes), never
from the model's name. A template that does not render tools gets LM Studio's
"default" format: a system prompt that teaches
`[TOOL_REQUEST]{"name": ..., "arguments": {...}}[END_TOOL_REQUEST]`.

Where things are:

- `formats`: one record per format family (`ToolFormat`): how to detect it, the
  markers that open its calls, its reader, its grammar wrapper. Adding a model
  means adding a record here (and a reader, if no existing one fits).
- `pipeline`: `ToolCallParser` scans content text for the *openers* of its format
  (`<tool_call>`, `[TOOL_CALLS]`, ...). Text that cannot be part of an opener is
  emitted as content at once; only a possible opener prefix, and trailing whitespace,
  are held back. `OutputPipeline` runs reasoning first, then the tool-call parser.
- From an opener on, the text is a *block*, read by a reader object for the format's
  family of syntax (`json_readers`, `section_readers`, `xml_readers`,
  `pythonic_readers`, on the `Reader` base in `steps`, using `scanner` and `values`).
  A reader is handed the whole block text so far and returns *steps*: a call began
  (its name is known), argument text arrived, a call ended (with its arguments) or
  failed, the block closed. Readers only report; the parser turns steps into events,
  ids and indexes, and decides what is content.
- Every character of the input ends up either in the content or in the raw text of
  a parsed call (`ToolCallParser.raw_calls`), in order. Whitespace before a call, and
  after the last one, belongs to the call, so that a reply made only of calls has no
  content. A call that does not parse goes back to the content, with a
  `ToolCallParseError`. The one exception is markup a reader drops (`steps.Drop`):
  Functionary v3.2's `all` recipient line, gpt-oss's message to a built-in tool that
  was not offered.
- `output`: `parse_output` for a complete reply; `detect`: `detect_tool_format`;
  `default_format`: the default prompt and history; `grammar` (on `gbnf`): forced calls.
"""

from __future__ import annotations

from engine.toolcalls.default_format import (
    DEFAULT_TOOL_SYSTEM_PROMPT,
    TOOL_REQUEST_CLOSE,
    TOOL_REQUEST_OPEN,
    TOOL_RESULT_CLOSE,
    TOOL_RESULT_OPEN,
    default_tool_system_prompt,
    to_default_format,
)
from engine.toolcalls.detect import detect_call_format, detect_tool_format
from engine.toolcalls.formats import FORMATS, TOOL_FORMATS, ReaderFactory, ToolFormat
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
from engine.toolcalls.output import ParsedOutput, parse_output
from engine.toolcalls.pipeline import OutputPipeline, ToolCallParser, new_call_id

__all__ = [
    "DEFAULT_TOOL_SYSTEM_PROMPT",
    "FORMATS",
    "MAX_ENUM_RANGE",
    "MAX_ITEMS",
    "MAX_PARALLEL",
    "MAX_STRING",
    "TOOL_FORMATS",
    "TOOL_REQUEST_CLOSE",
    "TOOL_REQUEST_OPEN",
    "TOOL_RESULT_CLOSE",
    "TOOL_RESULT_OPEN",
    "OutputPipeline",
    "ParsedOutput",
    "ReaderFactory",
    "ToolCallParser",
    "ToolFormat",
    "UnsupportedToolFormat",
    "choose_tools",
    "default_tool_system_prompt",
    "detect_call_format",
    "detect_tool_format",
    "function_of",
    "new_call_id",
    "parse_output",
    "tight",
    "to_default_format",
    "tool_call_grammar",
]
