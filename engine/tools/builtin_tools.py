"""The built-in tools: Python functions run on a worker thread, with their own schemas.

`get_current_time`, `analyze_directory` and `read_text_file`. The file ones see only
the allowed roots (engine.tools.roots); none of them writes anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.chat import ToolCall
from engine.errors import ToolError
from engine.tools.results import ToolResult, error_result, truncate
from engine.tools.roots import confine_path

if TYPE_CHECKING:
    from engine.tools.definitions import ToolDefinition

READ_TEXT_DEFAULT_BYTES = 100_000
READ_TEXT_MAX_BYTES = 1_000_000
DIRECTORY_DEFAULT_ENTRIES = 200
DIRECTORY_MAX_ENTRIES = 1_000

BuiltinName: TypeAlias = Literal["get_current_time", "analyze_directory", "read_text_file"]


async def run_builtin(
    tool: ToolDefinition, call: ToolCall, roots: list[Path], started: float
) -> ToolResult:
    """Run a built-in tool's function off the event loop, within the tool's timeout."""
    builtin = BUILTINS[tool.builtin or ""]
    work = asyncio.to_thread(builtin.function, dict(call.arguments), roots)
    try:
        text = await asyncio.wait_for(work, tool.timeout_sec)
    except TimeoutError:
        message = f"timed out after {tool.timeout_sec:g} s"
        return error_result(call, message, started, timed_out=True)
    except ToolError as err:
        return error_result(call, str(err), started)
    except Exception as err:  # noqa: BLE001 - a tool's bug must reach the model, not crash the app
        return error_result(call, f"{type(err).__name__}: {err}", started)
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        content=truncate(text, tool.max_output_chars),
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
class Builtin:
    """A built-in tool: its texts for the model and the function that runs it."""

    description: str
    parameters: dict[str, Any]
    function: Callable[[dict[str, Any], list[Path]], str]


_PATH_PROPERTY = {
    "type": "string",
    "description": "Absolute, or relative to the first allowed directory.",
}

BUILTINS: dict[str, Builtin] = {
    "get_current_time": Builtin(
        description="Get the current date and time (ISO 8601), in a given time zone or the local one.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {"type": "string", "description": "IANA time zone, e.g. Europe/Paris."}
            },
        },
        function=_get_current_time,
    ),
    "analyze_directory": Builtin(
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
    "read_text_file": Builtin(
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

BUILTIN_NAMES: tuple[str, ...] = tuple(BUILTINS)

