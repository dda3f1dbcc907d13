"""Tools a person defines on disk, and how a model's call to one is run.

The package, by what each module holds:

- `definitions`: `ToolDefinition` (one `[[tool]]` table), the tools file (`load_tools`,
  `save_tools`, where it is) and `validate_arguments`;
- `builtin_tools`: the Python built-ins (`get_current_time`, `analyze_directory`,
  `read_text_file`);
- `commands`: argv commands with `{param}` placeholders, timeouts and output limits;
- `roots`: the allowed directories file access is confined to;
- `results`: `ToolResult`, what the model reads back;
- `registry`: `run_tool`, `run_tool_sync` and `ToolRegistry` (name to tool).

Every name callers imported from the old `engine/tools.py` is re-exported here, so
`from engine.tools import X` keeps working.
"""

from __future__ import annotations

from engine.errors import ToolError
from engine.tools.builtin_tools import (
    BUILTIN_NAMES,
    DIRECTORY_DEFAULT_ENTRIES,
    DIRECTORY_MAX_ENTRIES,
    READ_TEXT_DEFAULT_BYTES,
    READ_TEXT_MAX_BYTES,
    BuiltinName,
)
from engine.tools.commands import build_argv
from engine.tools.definitions import (
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_TIMEOUT_SEC,
    TOOLS_FILE_NAME,
    ToolDefinition,
    ToolsFile,
    default_tools_path,
    load_tools,
    read_configured_tools,
    read_tools_file,
    save_tools,
    tools_file_candidates,
    tools_path,
    validate_arguments,
)
from engine.tools.registry import ToolRegistry, run_tool, run_tool_sync
from engine.tools.results import ToolResult
from engine.tools.roots import RootsArg, confine_path

__all__ = [
    "BUILTIN_NAMES",
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT_SEC",
    "DIRECTORY_DEFAULT_ENTRIES",
    "DIRECTORY_MAX_ENTRIES",
    "READ_TEXT_DEFAULT_BYTES",
    "READ_TEXT_MAX_BYTES",
    "TOOLS_FILE_NAME",
    "BuiltinName",
    "RootsArg",
    "ToolDefinition",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "ToolsFile",
    "build_argv",
    "confine_path",
    "default_tools_path",
    "load_tools",
    "read_configured_tools",
    "read_tools_file",
    "run_tool",
    "run_tool_sync",
    "save_tools",
    "tools_file_candidates",
    "tools_path",
    "validate_arguments",
]
