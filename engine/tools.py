"""Tools a person defines on disk, and how a model's call to one is run.

The tools file is TOML (default `<data_dir>/tools.toml`, or [tools] file in the
config), one `[[tool]]` table per tool; `tools.example.toml` documents every key:

```toml
[[tool]]
name = "count_lines"
description = "Count the lines of a text file."
parameters = { type = "object", properties = { path = { type = "string" } }, required = ["path"] }
command = ["wc", "-l", "--", "{path}"]
path_parameters = ["path"]
timeout_sec = 10
```

A tool runs either a built-in (`builtin = "read_text_file"`) or a command given as
an argv list. A `{param}` placeholder is replaced by the argument's value and always
yields exactly one argv element, whatever the value holds: nothing here ever goes
through a shell, so quotes, `;`, `$(...)` and newlines in a model's arguments reach
the program verbatim. Arguments are checked against the tool's JSON schema before
anything runs, and every failure (bad arguments, unknown tool, a timeout, a non-zero
exit, a missing program) becomes an error *result* for the model, never an exception.

Approval is not decided here: `ToolDefinition.requires_approval` tells the act loop
whether to ask the person first.
"""

from __future__ import annotations

from engine.errors import ToolError

import asyncio
import concurrent.futures
import contextlib
import difflib
import json
import os
import re
import signal
import stat
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomli_w
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.chat import ToolCall, ToolResultMessage
from engine.store import atomic_write_text

if TYPE_CHECKING:
    from engine.settings import Settings

TOOLS_FILE_NAME = "tools.toml"
DEFAULT_TIMEOUT_SEC = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 20_000
READ_TEXT_DEFAULT_BYTES = 100_000
READ_TEXT_MAX_BYTES = 1_000_000
DIRECTORY_DEFAULT_ENTRIES = 200
DIRECTORY_MAX_ENTRIES = 1_000

BuiltinName: TypeAlias = Literal["get_current_time", "analyze_directory", "read_text_file"]
RootsArg: TypeAlias = Sequence[Path | str]

# OpenAI's rule for function names; templates and parsers rely on it too.
_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# `{{` and `}}` are literal braces; `{name}` is a placeholder; any other brace is literal,
# so Python snippets such as `-c "d = {}"` need no escaping.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_-]*)\}")
_EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}




# --- definitions --------------------------------------------------------------------


class ToolDefinition(BaseModel):
    """One `[[tool]]` table of the tools file."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(pattern=_NAME_PATTERN)
    """The function name the model calls: letters, digits, `_` and `-`, at most 64."""
    description: str = ""
    """What the tool does, for the model. Built-ins have one of their own."""
    parameters: dict[str, Any] = Field(default_factory=lambda: dict(_EMPTY_OBJECT_SCHEMA))
    """A JSON schema (an object schema) for the arguments, as in OpenAI's function format.
    Built-ins have one of their own."""
    builtin: BuiltinName | None = None
    """Run one of the built-in Python tools instead of a command."""
    command: list[str] | None = Field(default=None, min_length=1)
    """The argv list to run; `{param}` elements or parts are replaced by arguments."""
    cwd: Path | None = None
    """Working directory of the command; unset means the app's."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables added to the app's for the command."""
    path_parameters: list[str] = Field(default_factory=list)
    """Parameters of a command that are paths: each must resolve inside the allowed
    roots, and the command receives it as an absolute path."""
    timeout_sec: float = Field(default=DEFAULT_TIMEOUT_SEC, gt=0)
    """Seconds before the command (its whole process group) is killed."""
    max_output_chars: int = Field(default=DEFAULT_MAX_OUTPUT_CHARS, ge=1)
    """Characters of output sent back to the model; the rest is cut with a note."""
    requires_approval: bool = True
    """Ask the person before each call."""

    @model_validator(mode="before")
    @classmethod
    def _builtin_defaults(cls, data: Any) -> Any:
        name = data.get("builtin") if isinstance(data, dict) else None
        builtin = _BUILTINS.get(name) if isinstance(name, str) else None
        if builtin is None:
            return data
        return {
            "description": builtin.description,
            "parameters": builtin.parameters,
            **data,
        }

    @field_validator("cwd")
    @classmethod
    def _expand_cwd(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            validator_for(value, default=Draft202012Validator).check_schema(value)
        except SchemaError as err:
            where = "/".join(str(p) for p in err.path)
            raise ValueError(
                f"not a valid JSON schema{f' at {where}' if where else ''}: {err.message}"
            ) from None
        if value.get("type") != "object":
            raise ValueError('must be an object schema: type = "object"')
        return value

    @model_validator(mode="after")
    def _runnable(self) -> ToolDefinition:
        if (self.builtin is None) == (self.command is None):
            raise ValueError("give exactly one of `builtin` and `command`")
        if self.command is not None:
            _check_command(self.command, self.parameter_names())
        elif self.cwd is not None or self.env or self.path_parameters:
            raise ValueError("cwd, env and path_parameters apply to commands only")
        unknown = [p for p in self.path_parameters if p not in self.parameter_names()]
        if unknown:
            raise ValueError(f"path_parameters names no parameter: {', '.join(unknown)}")
        return self

    def parameter_names(self) -> list[str]:
        properties = self.parameters.get("properties")
        return list(properties) if isinstance(properties, dict) else []

    def openai_schema(self) -> dict[str, Any]:
        """The tool as OpenAI's `tools` list and chat templates expect it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def to_toml_table(self) -> dict[str, Any]:
        """The table `save_tools` writes: unset keys and a built-in's own texts left out."""
        table = self.model_dump(mode="json", exclude_none=True)
        for key in ("env", "path_parameters"):
            if not table[key]:
                del table[key]
        builtin = _BUILTINS.get(self.builtin or "")
        if builtin is not None:
            for key in ("description", "parameters"):
                if table[key] == getattr(builtin, key):
                    del table[key]
        return table


def _check_command(command: list[str], parameters: list[str]) -> None:
    if _placeholders(command[0]):
        # The model picks arguments, never the program.
        raise ValueError("the program (command[0]) cannot contain a placeholder")
    used = {name for element in command for name in _placeholders(element)}
    unknown = sorted(used - set(parameters))
    if unknown:
        known = ", ".join(parameters) or "none"
        names = ", ".join(f"{{{name}}}" for name in unknown)
        raise ValueError(f"command placeholder {names} names no parameter (parameters: {known})")


def _placeholders(element: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(element) if m.group(1)]


# --- the tools file -----------------------------------------------------------------


def default_tools_path(data_dir: Path) -> Path:
    """Where the tools file is when the config does not say."""
    return Path(data_dir) / TOOLS_FILE_NAME


def tools_path(settings: Settings) -> Path:
    """The tools file of the config: [tools] file, else tools.toml in the data directory."""
    configured = settings.tools.file
    return configured if configured is not None else default_tools_path(settings.data_dir())


def load_tools(path: Path) -> tuple[list[ToolDefinition], list[str]]:
    """The valid definitions in the tools file, and one error line per invalid one.

    A missing file is no tools and no error. A file that is not TOML loads nothing and
    reports its line. The file is only read, never rewritten.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as err:
        return [], [f"{path}: cannot read: {err.strerror or err}"]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        return [], [f"{path}: not UTF-8 text (byte {err.start})"]
    except tomllib.TOMLDecodeError as err:
        return [], [_toml_error(path, err)]
    return _definitions(path, data)


def _toml_error(path: Path, err: tomllib.TOMLDecodeError) -> str:
    match = re.search(r"at line (\d+)", str(err))
    where = f"{path}:{match.group(1)}" if match else str(path)
    return f"{where}: invalid TOML: {err}"


def _definitions(path: Path, data: dict[str, Any]) -> tuple[list[ToolDefinition], list[str]]:
    errors = [
        f"{path}: unknown top-level key {key!r}{_did_you_mean(key, ['tool'])}; "
        "tools are [[tool]] tables"
        for key in data
        if key != "tool"
    ]
    tables = data.get("tool", [])
    if not isinstance(tables, list):
        return [], [*errors, f"{path}: `tool` must be an array of tables: write [[tool]]"]
    tools: list[ToolDefinition] = []
    for number, table in enumerate(tables, start=1):
        label = _tool_label(number, table)
        try:
            tool = ToolDefinition.model_validate(table)
        except ValidationError as err:
            errors.append(f"{path}: {label}: {_describe(err)}")
            continue
        if any(t.name == tool.name for t in tools):
            errors.append(f"{path}: {label}: another tool already has this name; skipped")
            continue
        tools.append(tool)
    return tools, errors


def _tool_label(number: int, table: Any) -> str:
    name = table.get("name") if isinstance(table, dict) else None
    return f"tool {name!r} (#{number})" if isinstance(name, str) else f"tool #{number} (no name)"


def _describe(err: ValidationError) -> str:
    problems: list[str] = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            message = f"unknown key{_did_you_mean(loc, list(ToolDefinition.model_fields))}"
        else:
            message = item["msg"].removeprefix("Value error, ")
        problem = f"{loc}: {message}" if loc else message
        if problem not in problems:
            problems.append(problem)
    return "; ".join(problems)


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def save_tools(path: Path, tools: Iterable[ToolDefinition]) -> None:
    """Write the tools file atomically. Comments of an existing file are not kept."""
    document = {"tool": [tool.to_toml_table() for tool in tools]}
    header = "# llamaterm tools: one [[tool]] table each; see tools.example.toml.\n\n"
    atomic_write_text(Path(path), header + tomli_w.dumps(document))


# --- arguments ----------------------------------------------------------------------


def validate_arguments(tool: ToolDefinition, arguments: Mapping[str, Any] | str) -> list[str]:
    """What is wrong with `arguments` (a dict or a JSON string) for `tool`; [] if nothing."""
    parsed, problem = _parse_arguments(arguments)
    if problem is not None:
        return [problem]
    validator_class = validator_for(tool.parameters, default=Draft202012Validator)
    validator = validator_class(tool.parameters, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(parsed), key=lambda e: [str(p) for p in e.path])
    return [_schema_problem(error.absolute_path, error.message) for error in errors]


def _parse_arguments(arguments: Mapping[str, Any] | str) -> tuple[dict[str, Any], str | None]:
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}, None
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as err:
            return {}, f"arguments are not valid JSON: {err}"
    if not isinstance(arguments, Mapping):
        return {}, f"arguments must be a JSON object, not {type(arguments).__name__}"
    return dict(arguments), None


def _schema_problem(path: Iterable[Any], message: str) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return f"arguments{where}: {message}"


# --- results ------------------------------------------------------------------------


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


def _error(call: ToolCall, message: str, started: float, **extra: Any) -> ToolResult:
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        content=f"error: {message}",
        is_error=True,
        duration_sec=time.monotonic() - started,
        **extra,
    )


# --- running ------------------------------------------------------------------------


async def run_tool(
    tool: ToolDefinition | None, call: ToolCall, *, allowed_roots: RootsArg = ()
) -> ToolResult:
    """Run `call` with `tool`; every failure is an error result, never an exception.

    `tool` None (or one of another name) means the model asked for a tool that does not
    exist. `allowed_roots` confines the file built-ins and `path_parameters`; with none,
    those refuse. Cancelling this coroutine kills a running command.
    """
    started = time.monotonic()
    if tool is None or tool.name != call.name:
        return _error(call, f"unknown tool {call.name!r}", started)
    problems = validate_arguments(tool, call.arguments)
    if problems:
        listing = "\n".join(f"- {p}" for p in problems)
        return _error(call, f"invalid arguments for {tool.name!r}:\n{listing}", started)
    roots = _resolve_roots(allowed_roots)
    if tool.builtin is not None:
        return await _run_builtin(tool, call, roots, started)
    return await _run_command(tool, call, roots, started)


def run_tool_sync(
    tool: ToolDefinition | None, call: ToolCall, *, allowed_roots: RootsArg = ()
) -> ToolResult:
    """`run_tool` for callers without an event loop. Inside a running loop it runs on a
    helper thread (and blocks that loop until the tool is done)."""
    return _run_blocking(lambda: run_tool(tool, call, allowed_roots=allowed_roots))


def _run_blocking(make: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
    async def main() -> ToolResult:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


# --- built-ins ----------------------------------------------------------------------


async def _run_builtin(
    tool: ToolDefinition, call: ToolCall, roots: list[Path], started: float
) -> ToolResult:
    builtin = _BUILTINS[tool.builtin or ""]
    work = asyncio.to_thread(builtin.function, dict(call.arguments), roots)
    try:
        text = await asyncio.wait_for(work, tool.timeout_sec)
    except TimeoutError:
        return _error(call, f"timed out after {tool.timeout_sec:g} s", started, timed_out=True)
    except ToolError as err:
        return _error(call, str(err), started)
    except Exception as err:  # noqa: BLE001 - a tool's bug must reach the model, not crash the app
        return _error(call, f"{type(err).__name__}: {err}", started)
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        content=_truncate(text, tool.max_output_chars),
        duration_sec=time.monotonic() - started,
    )


def _get_current_time(arguments: dict[str, Any], roots: list[Path]) -> str:
    name = arguments.get("timezone")
    if name:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(
                f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'"
            ) from None
        now = datetime.now(zone)
        zone_name = name
    else:
        now = datetime.now().astimezone()
        zone_name = now.tzname() or "local"
    return json.dumps(
        {
            "datetime": now.isoformat(timespec="seconds"),
            "timezone": zone_name,
            "weekday": now.strftime("%A"),
        }
    )


def _analyze_directory(arguments: dict[str, Any], roots: list[Path]) -> str:
    directory = confine_path(arguments["path"], roots)
    limit = min(int(arguments.get("max_entries", DIRECTORY_DEFAULT_ENTRIES)), DIRECTORY_MAX_ENTRIES)
    if not directory.exists():
        raise ToolError(f"no such directory: {arguments['path']}")
    if not directory.is_dir():
        raise ToolError(f"not a directory: {arguments['path']} (use read_text_file for files)")
    try:
        entries = sorted(
            _directory_entries(directory), key=lambda e: (e["type"] != "directory", e["name"])
        )
    except OSError as err:
        raise ToolError(f"cannot list {arguments['path']}: {err.strerror or err}") from None
    counts = {
        kind: sum(e["type"] == kind for e in entries)
        for kind in ("file", "directory", "symlink", "other")
    }
    return json.dumps(
        {
            "path": str(directory),
            "files": counts["file"],
            "directories": counts["directory"],
            "symlinks": counts["symlink"],
            "other": counts["other"],
            # Direct children only: walking a whole tree could take unbounded time.
            "total_size": sum(e.get("size", 0) for e in entries if e["type"] == "file"),
            "entries": entries[:limit],
            "truncated": len(entries) > limit,
        },
        ensure_ascii=False,
    )


def _directory_entries(directory: Path) -> Iterator[dict[str, Any]]:
    with os.scandir(directory) as scan:
        for entry in scan:
            # lstat: never follow a link, so nothing outside the roots is looked at.
            info = entry.stat(follow_symlinks=False)
            kind = _entry_kind(info.st_mode)
            item: dict[str, Any] = {"name": entry.name, "type": kind}
            if kind == "file":
                item["size"] = info.st_size
            yield item


def _entry_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    return "file" if stat.S_ISREG(mode) else "other"


def _read_text_file(arguments: dict[str, Any], roots: list[Path]) -> str:
    path = confine_path(arguments["path"], roots)
    limit = min(int(arguments.get("max_bytes", READ_TEXT_DEFAULT_BYTES)), READ_TEXT_MAX_BYTES)
    data = _read_regular_file(path, arguments["path"], limit)
    if b"\0" in data:
        raise ToolError(f"{arguments['path']} is a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ToolError(f"{arguments['path']} is not UTF-8 text (binary?)") from None


def _read_regular_file(path: Path, shown: str, limit: int) -> bytes:
    # O_NONBLOCK: a FIFO must not hang the tool; O_NOFOLLOW: the checked path is the one read.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ToolError(f"no such file: {shown}") from None
    except OSError as err:
        raise ToolError(f"cannot open {shown}: {err.strerror or err}") from None
    try:
        _check_readable(os.fstat(fd), shown, limit)
        # One byte more than allowed: files that lie about their size (/proc) are caught too.
        data = _read_up_to(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ToolError(f"{shown} is over the limit of {limit} bytes")
    return data


def _check_readable(info: os.stat_result, shown: str, limit: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"{shown} is a directory (use analyze_directory)")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{shown} is not a regular file")
    if info.st_size > limit:
        raise ToolError(f"{shown} is {info.st_size} bytes, over the limit of {limit} bytes")


def _read_up_to(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 20))):
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class _Builtin:
    description: str
    parameters: dict[str, Any]
    function: Callable[[dict[str, Any], list[Path]], str]


_PATH_PROPERTY = {
    "type": "string",
    "description": "Absolute, or relative to the first allowed directory.",
}

_BUILTINS: dict[str, _Builtin] = {
    "get_current_time": _Builtin(
        description="Get the current date and time (ISO 8601), in a given time zone or the local one.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {"type": "string", "description": "IANA time zone, e.g. Europe/Paris."}
            },
        },
        function=_get_current_time,
    ),
    "analyze_directory": _Builtin(
        description="List a directory's entries with their types and sizes, with counts and total size.",
        parameters={
            "type": "object",
            "properties": {
                "path": _PATH_PROPERTY,
                "max_entries": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": DIRECTORY_MAX_ENTRIES,
                    "default": DIRECTORY_DEFAULT_ENTRIES,
                },
            },
            "required": ["path"],
        },
        function=_analyze_directory,
    ),
    "read_text_file": _Builtin(
        description="Read a UTF-8 text file.",
        parameters={
            "type": "object",
            "properties": {
                "path": _PATH_PROPERTY,
                "max_bytes": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": READ_TEXT_MAX_BYTES,
                    "default": READ_TEXT_DEFAULT_BYTES,
                },
            },
            "required": ["path"],
        },
        function=_read_text_file,
    ),
}

BUILTIN_NAMES: tuple[str, ...] = tuple(_BUILTINS)


# --- allowed roots ------------------------------------------------------------------


def _resolve_roots(roots: RootsArg) -> list[Path]:
    return [Path(os.path.realpath(Path(root).expanduser())) for root in roots]


def confine_path(raw: str, roots: Sequence[Path], base: Path | None = None) -> Path:
    """`raw` with every symlink and `..` resolved, if that lies inside one of `roots`
    (already resolved); otherwise ToolError. Relative paths start at `base`, else at the
    first root."""
    if not roots:
        raise ToolError(
            "file access is disabled: no allowed directories are configured "
            "([tools] allowed_roots in config.toml)"
        )
    start = base if base is not None else roots[0]
    try:
        resolved = Path(os.path.realpath(start / Path(raw).expanduser()))
    except (ValueError, OSError) as err:
        raise ToolError(f"invalid path {raw!r}: {err}") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise ToolError(f"{raw!r} is outside the allowed directories ({allowed})")
    return resolved


# --- commands -----------------------------------------------------------------------


async def _run_command(
    tool: ToolDefinition, call: ToolCall, roots: list[Path], started: float
) -> ToolResult:
    try:
        argv = build_argv(tool, call.arguments, roots)
    except ToolError as err:
        return _error(call, str(err), started)
    if tool.cwd is not None and not tool.cwd.is_dir():
        return _error(call, f"the tool's working directory does not exist: {tool.cwd}", started)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tool.cwd,
            env={**os.environ, **tool.env},
            # Its own process group, so a timeout kills the children it started too.
            start_new_session=True,
        )
    except FileNotFoundError:
        return _error(call, f"program not found: {argv[0]!r}", started)
    except PermissionError:
        return _error(call, f"program is not executable: {argv[0]!r}", started)
    except (OSError, ValueError) as err:
        return _error(call, f"cannot start {argv[0]!r}: {err}", started)
    captured = await _collect(process, tool)
    return _command_result(tool, call, captured, started)


def build_argv(
    tool: ToolDefinition, arguments: Mapping[str, Any], roots: Sequence[Path] = ()
) -> list[str]:
    """The command's argv with placeholders replaced; each element stays one element.

    An element whose placeholder has no argument (and no schema default) is left out,
    which is how optional flags are written: `"--max-count={limit}"`. Path parameters
    are confined to `roots` (already resolved) and passed as absolute paths.
    """
    values = _argument_values(tool, arguments, roots)
    argv: list[str] = []
    for element in tool.command or []:
        substituted = _substitute(element, values)
        if substituted is not None:
            argv.append(substituted)
    return argv


def _argument_values(
    tool: ToolDefinition, arguments: Mapping[str, Any], roots: Sequence[Path]
) -> dict[str, str]:
    properties = tool.parameters.get("properties", {})
    values: dict[str, str] = {}
    for name in tool.parameter_names():
        value = arguments.get(name)
        if value is None:
            value = properties[name].get("default") if isinstance(properties[name], dict) else None
        if value is None:
            continue
        if name in tool.path_parameters:
            if not isinstance(value, str):
                raise ToolError(f"{name} must be a path string")
            value = str(confine_path(value, roots, base=tool.cwd))
        values[name] = _as_argument(value)
    return values


def _as_argument(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _substitute(element: str, values: Mapping[str, str]) -> str | None:
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        if name not in values:
            missing = True
            return ""
        return values[name]

    result = _PLACEHOLDER.sub(replace, element)
    return None if missing else result


@dataclass
class _Capture:
    """One output stream: the first `keep` bytes, and how many came in all."""

    keep: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class _Captured:
    stdout: _Capture
    stderr: _Capture
    exit_code: int | None
    timed_out: bool


async def _collect(process: asyncio.subprocess.Process, tool: ToolDefinition) -> _Captured:
    # Bytes kept per stream: enough for max_output_chars of any UTF-8 text, never more,
    # so a chatty program cannot fill memory.
    keep = tool.max_output_chars * 4 + 4
    stdout, stderr = _Capture(keep), _Capture(keep)
    timed_out = False
    try:
        await asyncio.wait_for(_drain_all(process, stdout, stderr), tool.timeout_sec)
    except TimeoutError:
        timed_out = True
    finally:
        # Also on cancellation: a call abandoned by the act loop must not leave it running.
        if timed_out or process.returncode is None:
            _kill_group(process)
    if timed_out:
        # What the program wrote before it was killed is still in the pipes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_drain_all(process, stdout, stderr), 2.0)
    return _Captured(stdout, stderr, process.returncode, timed_out)


async def _drain_all(process: asyncio.subprocess.Process, out: _Capture, err: _Capture) -> None:
    assert process.stdout is not None and process.stderr is not None
    await asyncio.gather(_drain(process.stdout, out), _drain(process.stderr, err))
    await process.wait()


async def _drain(stream: asyncio.StreamReader, capture: _Capture) -> None:
    while chunk := await stream.read(65536):
        capture.add(chunk)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows has no process groups to kill
            process.kill()


def _command_result(
    tool: ToolDefinition, call: ToolCall, captured: _Captured, started: float
) -> ToolResult:
    out, err = _fit(captured.stdout, captured.stderr, tool.max_output_chars)
    failed = captured.timed_out or captured.exit_code != 0
    header = _failure_header(tool, captured) if failed else ""
    if not failed and not err:
        content = out or "(no output)"
    else:
        sections = [f"[stdout]\n{out}" if out else "", f"[stderr]\n{err}" if err else ""]
        body = "\n".join(s for s in sections if s) or "(no output)"
        content = f"{header}\n{body}" if header else body
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        content=content,
        is_error=failed,
        exit_code=captured.exit_code,
        duration_sec=time.monotonic() - started,
        timed_out=captured.timed_out,
    )


def _failure_header(tool: ToolDefinition, captured: _Captured) -> str:
    if captured.timed_out:
        return f"error: timed out after {tool.timeout_sec:g} s; the command was killed"
    code = captured.exit_code
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"error: the command was killed by {signal.Signals(-code).name}"
    return f"error: the command exited with code {code}"


def _fit(stdout: _Capture, stderr: _Capture, limit: int) -> tuple[str, str]:
    """Both streams within `limit` characters together; stderr, where errors are, keeps up
    to half the room whatever stdout holds."""
    out, err = stdout.text(), stderr.text()
    if len(out) + len(err) <= limit:
        return _truncate(out, len(out), stdout), _truncate(err, len(err), stderr)
    err_room = min(len(err), max(limit // 2, limit - len(out)))
    out_room = limit - err_room
    return _truncate(out, out_room, stdout), _truncate(err, err_room, stderr)


def _truncate(text: str, limit: int, capture: _Capture | None = None) -> str:
    dropped_bytes = capture is not None and capture.total > len(capture.data)
    if len(text) <= limit and not dropped_bytes:
        return text
    shown = min(limit, len(text))
    # Past the bytes kept, only the byte count is known, not the characters.
    whole = f"{capture.total} bytes" if capture and dropped_bytes else f"{len(text)} characters"
    return f"{text[:limit]}\n[output truncated: showing the first {shown} characters of {whole}]"


# --- registry -----------------------------------------------------------------------


class ToolRegistry:
    """The loaded tools by name."""

    def __init__(self, tools: Iterable[ToolDefinition] = ()) -> None:
        self._tools: dict[str, ToolDefinition] = {}
        for tool in tools:
            self.add(tool)

    @classmethod
    def from_file(cls, path: Path) -> tuple[ToolRegistry, list[str]]:
        """The registry of a tools file, and `load_tools`' error lines."""
        tools, errors = load_tools(path)
        return cls(tools), errors

    def add(self, tool: ToolDefinition) -> None:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> ToolDefinition | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolDefinition]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def openai_schemas(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The OpenAI `tools` list of all tools, or of `names` in that order (KeyError
        for a name that is not registered)."""
        chosen = self.names() if names is None else list(names)
        unknown = [name for name in chosen if name not in self._tools]
        if unknown:
            raise KeyError(f"no such tool: {', '.join(unknown)}")
        return [self._tools[name].openai_schema() for name in chosen]

    async def run(self, call: ToolCall, *, allowed_roots: RootsArg = ()) -> ToolResult:
        """Run `call` with the tool of its name; an unknown name is an error result that
        lists the tools there are."""
        tool = self.get(call.name)
        if tool is None:
            available = ", ".join(self.names()) or "none"
            return _error(
                call, f"unknown tool {call.name!r} (available: {available})", time.monotonic()
            )
        return await run_tool(tool, call, allowed_roots=allowed_roots)

    def run_sync(self, call: ToolCall, *, allowed_roots: RootsArg = ()) -> ToolResult:
        return _run_blocking(lambda: self.run(call, allowed_roots=allowed_roots))
