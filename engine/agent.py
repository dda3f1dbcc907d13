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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from pydantic import ValidationError, create_model

from .chat import AssistantResponse, Chat, ToolCall, ToolResultMessage
from .contract import ChatModel, ToolChoice
from .llama import ENGINE_DEFAULTS
from .prediction import Event, Failed, Finished, PredictionConfig, PredictionResult
from .tools import ToolDefinition, ToolResult, run_tool
from .tools.definitions import openai_function_schema

DENIED = "The user denied this tool call. Do not call it again; answer without it."


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

    async def run(self, call: ToolCall) -> ToolResult:
        started = time.perf_counter()
        try:
            arguments = self._arguments.model_validate(call.arguments)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            return _result(call, f"invalid arguments: {problems}", started, is_error=True)
        try:
            value = await asyncio.to_thread(self.function, **dict(arguments))
            if inspect.isawaitable(value):
                value = await value
        except Exception as err:  # the model hears about the failure; the loop goes on
            return _result(call, f"{type(err).__name__}: {err}", started, is_error=True)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return _result(call, text, started)


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


def as_tools(tools: Iterable[AgentTool | Callable[..., Any]]) -> dict[str, AgentTool]:
    """Tools by name; plain functions become FunctionTools."""
    out: dict[str, AgentTool] = {}
    for tool in tools:
        agent_tool = tool if isinstance(tool, (ToolDefinition, FunctionTool)) else FunctionTool(tool)
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
    tools: Iterable[AgentTool | Callable[..., Any]],
    *,
    config: PredictionConfig | dict[str, Any] | None = None,
    defaults: PredictionConfig = ENGINE_DEFAULTS,
    approve: Approver | None = None,
    on_message: Callable[[Any], Any] | None = None,
    max_rounds: int = 8,
    tool_choice: ToolChoice = "auto",
    allowed_roots: Sequence[Path] = (),
) -> ActRun:
    """Start the act loop on `chat` (which it extends in place). Call from an event loop.

    `tool_choice` applies to the first round (e.g. "required" to make sure the model
    calls a tool); later rounds are "auto", so the model can answer with the results.
    Tools that need approval are only run if `approve(call, tool)` says yes; a denial is
    sent back to the model as the call's result.
    """
    by_name = as_tools(tools)
    schemas = [tool.openai_schema() for tool in by_name.values()]
    run = ActRun(_events=_never())

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
        for index in range(max_rounds):
            yield RoundStarted(index)
            choice = tool_choice if index == 0 else "auto"
            stream = model.respond_events(chat, merged, tools=schemas, tool_choice=choice)
            run._current = stream
            async for event in stream:
                yield event
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
            for call in last.tool_calls:
                tool = by_name.get(call.name)
                if tool is not None and tool.requires_approval:
                    yield ToolApprovalRequested(call, tool.name)
                if tool is not None and not await approved(call, tool):
                    result, denied = _result(call, DENIED, time.perf_counter(), True), True
                else:
                    yield ToolRunStarted(call)
                    result, denied = await _run(tool, call, by_name, allowed_roots), False
                yield ToolRunFinished(result, denied)
                append(result.to_message())
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
) -> ToolResult:
    if isinstance(tool, FunctionTool):
        return await tool.run(call)
    if tool is None:
        known = ", ".join(sorted(by_name)) or "none"
        return _result(
            call, f"unknown tool {call.name!r}; available tools: {known}", time.perf_counter(), True
        )
    return await run_tool(tool, call, allowed_roots=allowed_roots)


async def _never() -> AsyncIterator[Event | AgentEvent]:
    return
    yield  # pragma: no cover  (makes this an async generator)
