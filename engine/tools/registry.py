"""Running a model's tool call: `run_tool` for one definition, `ToolRegistry` by name.

Arguments are checked against the tool's JSON schema before anything runs, and every
failure (bad arguments, unknown tool, and whatever the built-in or command reports)
becomes an error `ToolResult` for the model, never an exception.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.chat import ToolCall
from engine.tools.builtin_tools import run_builtin
from engine.tools.commands import run_command
from engine.tools.definitions import ToolDefinition, load_tools, validate_arguments
from engine.tools.results import ToolResult, error_result
from engine.tools.roots import RootsArg, resolve_roots


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
        return error_result(call, f"unknown tool {call.name!r}", started)
    problems = validate_arguments(tool, call.arguments)
    if problems:
        listing = "\n".join(f"- {p}" for p in problems)
        return error_result(call, f"invalid arguments for {tool.name!r}:\n{listing}", started)
    roots = resolve_roots(allowed_roots)
    if tool.builtin is not None:
        return await run_builtin(tool, call, roots, started)
    return await run_command(tool, call, roots, started)


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
            return error_result(
                call, f"unknown tool {call.name!r} (available: {available})", time.monotonic()
            )
        return await run_tool(tool, call, allowed_roots=allowed_roots)

    def run_sync(self, call: ToolCall, *, allowed_roots: RootsArg = ()) -> ToolResult:
        return _run_blocking(lambda: self.run(call, allowed_roots=allowed_roots))
