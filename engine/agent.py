"""The act loop: respond, run the tools the model asked for, respond again.

Every step is an event (the prediction's own events plus the ones defined here),
so a UI shows the whole loop live. Tools come from the tools file
(`ToolDefinition`) or are plain Python functions (`FunctionTool`), as in LM
Studio's `act()`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from pydantic import ValidationError, create_model

from .chat import AssistantResponse, Chat, ToolCall, ToolResultMessage
from .contract import ChatModel, ToolChoice
from .errors import ToolError
from .llama import ENGINE_DEFAULTS
from .prediction import (
    Event,
    Failed,
    Finished,
    PredictionConfig,
    PredictionResult,
    ToolCallParseError,
)
from .tools import ToolDefinition, ToolResult, run_tool
from .tools.definitions import openai_function_schema

DENIED = "The user denied this tool call. Do not call it again; answer without it."

InvalidToolHandler = Callable[["ToolCall | None", str, "Exception | None"], "str | None"]
"""Called with a call that cannot run (unknown tool, arguments the schema refuses, a
function that raised; None for a call the model wrote that could not be parsed), the
message the model would get, and the exception if any. What it returns (a string)
replaces the message; it may raise, which ends the act loop with that error."""


class FunctionTool:
    """A Python function offered to the model as a tool; its schema comes from its signature."""

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        self.description = description or inspect.getdoc(function) or ""
        self.requires_approval = requires_approval
        fields: dict[str, Any] = {}
        for param in inspect.signature(function).parameters.values():
            annotation = param.annotation if param.annotation is not inspect.Parameter.empty else Any
            default = param.default if param.default is not inspect.Parameter.empty else ...
            fields[param.name] = (annotation, default)
        self._arguments = create_model(f"{self.name}_arguments", **fields)

    @property
    def parameters(self) -> dict[str, Any]:
        schema = self._arguments.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    def openai_schema(self) -> dict[str, Any]:
        return openai_function_schema(self.name, self.description, self.parameters)

    @classmethod
    def from_definition(
        cls,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        implementation: Callable[..., Any],
    ) -> FunctionTool:
        """A tool from LM Studio's explicit form: `parameters` maps each name to a type,
        or to `{"type": type, "default": value}`."""
        if not isinstance(name, str) or not name:
            raise ToolError("a tool definition needs a name")
        if not callable(implementation):
            raise ToolError(f"tool {name!r}: implementation is not callable")
        fields: dict[str, Any] = {}
        for key, spec in dict(parameters).items():
            if isinstance(spec, dict):
                if "type" not in spec:
                    raise ToolError(f"tool {name!r}: parameter {key!r} has no 'type'")
                fields[key] = (spec["type"], spec.get("default", ...))
            else:
                fields[key] = (spec, ...)
        tool = cls.__new__(cls)
        tool.function = implementation
        tool.name = name
        tool.description = description or ""
        tool.requires_approval = False
        tool._arguments = create_model(f"{name}_arguments", **fields)
        return tool

    async def run(self, call: ToolCall, on_invalid: InvalidToolHandler | None = None) -> ToolResult:
        started = time.perf_counter()

        def failed(message: str, err: Exception) -> ToolResult:
            if on_invalid is not None:
                replacement = on_invalid(call, message, err)
                message = message if replacement is None else replacement
            return _result(call, message, started, is_error=True)

        try:
            arguments = self._arguments.model_validate(call.arguments)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            return failed(f"invalid arguments: {problems}", err)
        try:
            value = await asyncio.to_thread(self.function, **dict(arguments))
            if inspect.isawaitable(value):
                value = await value
        except Exception as err:  # the model hears about the failure; the loop goes on
            return failed(f"{type(err).__name__}: {err}", err)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return _result(call, text, started)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolFunctionDef:
    """LM Studio's explicit tool form: a name, a description, the parameters (name to type,
    or to `{"type": type, "default": value}`) and the function that implements it."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    implementation: Callable[..., Any]

    @classmethod
    def from_callable(
        cls, f: Callable[..., Any], *, name: str | None = None, description: str | None = None
    ) -> ToolFunctionDef:
        tool = FunctionTool(f, name=name, description=description)
        parameters = {
            p.name: p.annotation if p.default is inspect.Parameter.empty
            else {"type": p.annotation, "default": p.default}
            for p in inspect.signature(f).parameters.values()
        }
        return cls(name=tool.name, description=tool.description, parameters=parameters,
                   implementation=f)


def _result(call: ToolCall, content: str, started: float, is_error: bool = False) -> ToolResult:
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        content=content,
        is_error=is_error,
        exit_code=None,
        duration_sec=time.perf_counter() - started,
    )


AgentTool: TypeAlias = ToolDefinition | FunctionTool
Approver = Callable[[ToolCall, AgentTool], bool | Awaitable[bool]]


def as_tool(tool: Any) -> AgentTool:
    """One tool in any of the forms `act` takes: a ToolDefinition (tools file), a
    FunctionTool, an `lms.ToolFunctionDef`, LM Studio's dict form (`name`,
    `description`, `parameters`, `implementation`), or a plain function."""
    if isinstance(tool, (ToolDefinition, FunctionTool)):
        return tool
    if isinstance(tool, ToolFunctionDef):
        return FunctionTool.from_definition(
            tool.name, tool.description, tool.parameters, tool.implementation
        )
    if isinstance(tool, Mapping):
        missing = sorted({"name", "implementation"} - tool.keys())
        if missing:
            raise ToolError(
                f"a tool given as a dict needs {' and '.join(missing)} "
                "(name, description, parameters, implementation)"
            )
        unknown = sorted(tool.keys() - {"name", "description", "parameters", "implementation"})
        if unknown:
            raise ToolError(f"tool {tool['name']!r}: unknown key(s) {', '.join(unknown)}")
        return FunctionTool.from_definition(
            tool["name"], tool.get("description", ""), tool.get("parameters", {}),
            tool["implementation"],
        )
    if callable(tool):
        return FunctionTool(tool)
    raise ToolError(f"not a tool: {tool!r} (a function, a ToolFunctionDef or a dict)")


def as_tools(tools: Iterable[Any]) -> dict[str, AgentTool]:
    """Tools by name (see as_tool for the forms); a name given twice is an error."""
    out: dict[str, AgentTool] = {}
    for tool in tools:
        agent_tool = as_tool(tool)
        if agent_tool.name in out:
            raise ToolError(f"two tools are named {agent_tool.name!r}")
        out[agent_tool.name] = agent_tool
    return out


# --- events of the loop ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoundStarted:
    index: int


@dataclass(frozen=True, slots=True)
class ToolApprovalRequested:
    call: ToolCall
    tool_name: str


@dataclass(frozen=True, slots=True)
class ToolRunStarted:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolRunFinished:
    result: ToolResult
    denied: bool = False


@dataclass(frozen=True, slots=True)
class RoundFinished:
    index: int
    result: PredictionResult


ActStopReason: TypeAlias = Literal["answered", "maxRounds", "userStopped", "failed"]


@dataclass(frozen=True, slots=True)
class ActFinished:
    rounds: int
    reason: ActStopReason
    result: PredictionResult | None
    """The last round's prediction result."""


AgentEvent: TypeAlias = (
    RoundStarted | ToolApprovalRequested | ToolRunStarted | ToolRunFinished | RoundFinished | ActFinished
)


@dataclass
class ActRun:
    """A running act loop: iterate it for events; `cancel()` stops it at once."""

    _events: AsyncIterator[Event | AgentEvent]
    _cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    _current: Any = None

    def __aiter__(self) -> AsyncIterator[Event | AgentEvent]:
        return self._events

    def cancel(self) -> None:
        self._cancelled.set()
        if self._current is not None:
            self._current.cancel()


def act_events(
    model: ChatModel,
    chat: Chat,
    tools: Iterable[Any],
    *,
    config: PredictionConfig | dict[str, Any] | None = None,
    defaults: PredictionConfig = ENGINE_DEFAULTS,
    approve: Approver | None = None,
    on_message: Callable[[Any], Any] | None = None,
    max_rounds: int = 8,
    tool_choice: ToolChoice = "auto",
    allowed_roots: Sequence[Path] = (),
    max_parallel_tool_calls: int = 1,
    on_invalid_tool: InvalidToolHandler | None = None,
    tools_in_final_round: bool = True,
) -> ActRun:
    """Start the act loop on `chat` (which it extends in place). Call from an event loop.

    `tool_choice` applies to the first round (e.g. "required" to make sure the model
    calls a tool); later rounds are "auto", so the model can answer with the results.
    Tools that need approval are only run if `approve(call, tool)` says yes; a denial is
    sent back to the model as the call's result. The calls of one round run up to
    `max_parallel_tool_calls` at a time; their results go back in the calls' order.
    `tools_in_final_round=False` offers no tools in round `max_rounds` (LM Studio's
    `max_prediction_rounds`), so that the last round answers.
    """
    by_name = as_tools(tools)
    schemas = [tool.openai_schema() for tool in by_name.values()]
    run = ActRun(_events=_never())
    parallel = max(1, max_parallel_tool_calls)

    async def approved(call: ToolCall, tool: AgentTool) -> bool:
        if not tool.requires_approval:
            return True
        if approve is None:
            return False
        answer = approve(call, tool)
        return bool(await answer) if inspect.isawaitable(answer) else bool(answer)

    def append(message: AssistantResponse | ToolResultMessage) -> None:
        chat.append(message)
        if on_message is not None:
            on_message(message)

    async def loop() -> AsyncIterator[Event | AgentEvent]:
        last: PredictionResult | None = None
        # Merged here, not by each model: a remote one knows nothing of our defaults.
        merged = PredictionConfig.parse(config).merged_over(defaults)
        gate = asyncio.Semaphore(parallel)

        async def run_one(call: ToolCall, tool: AgentTool | None) -> ToolResult:
            async with gate:
                return await _run(tool, call, by_name, allowed_roots, on_invalid_tool)

        for index in range(max_rounds):
            yield RoundStarted(index)
            offer = tools_in_final_round or index < max_rounds - 1
            choice = tool_choice if index == 0 else "auto"
            stream = model.respond_events(
                chat, merged, tools=schemas if offer else None, tool_choice=choice if offer else "auto"
            )
            run._current = stream
            async for event in stream:
                yield event
                if isinstance(event, ToolCallParseError) and on_invalid_tool is not None:
                    on_invalid_tool(None, f"Failed to parse tool call request: {event.reason}", None)
                if isinstance(event, Failed):
                    yield ActFinished(index + 1, "failed", last)
                    return
                if isinstance(event, Finished):
                    last = event.result
            run._current = None
            assert last is not None
            append(
                AssistantResponse(
                    content=last.content,
                    reasoning=last.reasoning,
                    tool_calls=list(last.tool_calls),
                )
            )
            yield RoundFinished(index, last)
            if run._cancelled.is_set() or last.stats.stop_reason == "userStopped":
                yield ActFinished(index + 1, "userStopped", last)
                return
            if not last.tool_calls:
                yield ActFinished(index + 1, "answered", last)
                return
            # Approvals first, one at a time (a person answers them). One call at a time
            # (the default), each runs as it is reported; in parallel, all start at once,
            # `parallel` running at a time, and report in the calls' order.
            pending: list[tuple[ToolCall, AgentTool | None, Any]] = []
            for call in last.tool_calls:
                tool = by_name.get(call.name)
                if tool is not None and tool.requires_approval:
                    yield ToolApprovalRequested(call, tool.name)
                if tool is not None and not await approved(call, tool):
                    pending.append((call, tool, DENIED))
                elif parallel > 1:
                    yield ToolRunStarted(call)
                    pending.append((call, tool, asyncio.ensure_future(run_one(call, tool))))
                else:
                    pending.append((call, tool, None))
            try:
                for call, tool, task in pending:
                    if task is DENIED:
                        result, denied = _result(call, DENIED, time.perf_counter(), True), True
                    elif task is None:
                        yield ToolRunStarted(call)
                        result, denied = await run_one(call, tool), False
                    else:
                        result, denied = await task, False
                    yield ToolRunFinished(result, denied)
                    append(result.to_message())
                    if run._cancelled.is_set():
                        break
            finally:
                for _, _, task in pending:
                    if isinstance(task, asyncio.Future) and not task.done():
                        task.cancel()
            if run._cancelled.is_set():
                yield ActFinished(index + 1, "userStopped", last)
                return
        yield ActFinished(max_rounds, "maxRounds", last)

    run._events = loop()
    return run


async def _run(
    tool: AgentTool | None,
    call: ToolCall,
    by_name: dict[str, AgentTool],
    allowed_roots: Sequence[Path],
    on_invalid: InvalidToolHandler | None = None,
) -> ToolResult:
    if isinstance(tool, FunctionTool):
        return await tool.run(call, on_invalid)
    if tool is None:
        known = ", ".join(sorted(by_name)) or "none"
        message = f"unknown tool {call.name!r}; available tools: {known}"
        if on_invalid is not None:
            replacement = on_invalid(call, message, None)
            message = message if replacement is None else replacement
        return _result(call, message, time.perf_counter(), True)
    return await run_tool(tool, call, allowed_roots=allowed_roots)


async def _never() -> AsyncIterator[Event | AgentEvent]:
    return
    yield  # pragma: no cover  (makes this an async generator)
