"""Command tools: an argv with `{param}` placeholders, run with a timeout and output limits.

A `{param}` placeholder is replaced by the argument's value and always yields exactly
one argv element, whatever the value holds: nothing here ever goes through a shell,
so quotes, `;`, `$(...)` and newlines in a model's arguments reach the program
verbatim. Every failure (a timeout, a non-zero exit, a missing program) becomes an
error *result* for the model, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.chat import ToolCall
from engine.errors import ToolError
from engine.tools.definitions import PLACEHOLDER, ToolDefinition, leading_placeholder
from engine.tools.results import ToolResult, error_result, truncate
from engine.tools.roots import confine_path
from engine.tools.spawn import RunningCommand, start_command


async def run_command(
    tool: ToolDefinition, call: ToolCall, roots: list[Path], started: float
) -> ToolResult:
    """Run a command tool; `roots` are resolved already."""
    try:
        argv = build_argv(tool, call.arguments, roots)
    except ToolError as err:
        return error_result(call, str(err), started)
    if tool.cwd is not None and not tool.cwd.is_dir():
        message = f"the tool's working directory does not exist: {tool.cwd}"
        return error_result(call, message, started)
    try:
        running = await start_command(argv, cwd=tool.cwd, env={**os.environ, **tool.env})
    except (OSError, ValueError) as err:
        return _start_error(call, argv, err, started)
    try:
        captured = await _collect(running, tool)
    finally:
        running.close()
    if running.start_error is not None:
        return _start_error(call, argv, running.start_error, started)
    return _command_result(tool, call, captured, started)


def _start_error(
    call: ToolCall, argv: list[str], err: OSError | ValueError, started: float
) -> ToolResult:
    if isinstance(err, FileNotFoundError):
        return error_result(call, f"program not found: {argv[0]!r}", started)
    if isinstance(err, PermissionError):
        return error_result(call, f"program is not executable: {argv[0]!r}", started)
    return error_result(call, f"cannot start {argv[0]!r}: {err}", started)


def build_argv(
    tool: ToolDefinition, arguments: Mapping[str, Any], roots: Sequence[Path] = ()
) -> list[str]:
    """The command's argv with placeholders replaced; each element stays one element.

    An element whose placeholder has no argument (and no schema default) is left out,
    which is how optional flags are written: `"--max-count={limit}"`. Path parameters
    are confined to `roots` (already resolved) and passed as absolute paths. ToolError
    when a value starting with `-` would land where the program reads options (an
    element's start, before a literal `--`) and the tool does not set `allow_options`.
    """
    values = _argument_values(tool, arguments, roots)
    argv: list[str] = []
    options_end = False
    for element in tool.command or []:
        # Only a literal "--" ends the options: one a placeholder produced is not trusted.
        options_end = options_end or element == "--"
        substituted = _substitute(element, values)
        if substituted is None:
            continue
        if not options_end and not tool.allow_options and substituted.startswith("-"):
            name = leading_placeholder(element)
            if name is not None:
                raise ToolError(_option_refused(name, values[name]))
        argv.append(substituted)
    return argv


def _option_refused(name: str, value: str) -> str:
    shown = value if len(value) <= 60 else value[:60] + "..."
    return (
        f"argument {name!r} ({shown!r}) starts with '-', so the program would read it as an "
        "option, and this tool takes no options from its arguments; pass a value that does "
        "not start with '-' (the tool's definition can put \"--\" before the placeholder, "
        "or set allow_options = true)"
    )


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

    result = PLACEHOLDER.sub(replace, element)
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


async def _collect(running: RunningCommand, tool: ToolDefinition) -> _Captured:
    # Bytes kept per stream: enough for max_output_chars of any UTF-8 text, never more,
    # so a chatty program cannot fill memory.
    keep = tool.max_output_chars * 4 + 4
    stdout, stderr = _Capture(keep), _Capture(keep)
    timed_out = False
    try:
        await asyncio.wait_for(_drain_all(running, stdout, stderr), tool.timeout_sec)
    except TimeoutError:
        timed_out = True
    finally:
        # Also on cancellation: a call abandoned by the act loop must not leave it running.
        if timed_out or running.process.returncode is None:
            running.stop()
    if timed_out:
        # What the program wrote before it was killed is still in the pipes.
        try:
            await asyncio.wait_for(_drain_all(running, stdout, stderr), 2.0)
        except TimeoutError:
            running.kill_group()  # the reaper did not finish: the last resort
    return _Captured(stdout, stderr, running.exit_code, timed_out)


async def _drain_all(running: RunningCommand, out: _Capture, err: _Capture) -> None:
    process = running.process
    assert process.stdout is not None and process.stderr is not None
    # The wait runs beside the reads: once the command has ended, what it left running is
    # killed, which also closes the pipes it held open.
    await asyncio.gather(_drain(process.stdout, out), _drain(process.stderr, err), running.wait())


async def _drain(stream: asyncio.StreamReader, capture: _Capture) -> None:
    while chunk := await stream.read(65536):
        capture.add(chunk)


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


def _truncate(text: str, limit: int, capture: _Capture) -> str:
    dropped = capture.total > len(capture.data)
    return truncate(text, limit, capture.total if dropped else None)
