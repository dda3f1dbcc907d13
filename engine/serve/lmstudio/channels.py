"""The streaming channels: `getOrLoad` and `loadModel` (load progress), and `predict`.

A channel is a coroutine that reads its creation parameter, sends `channelSend`
payloads through `Channel.send`, and may read what the client sends on the channel
(`cancel`) from `Channel.inbox`. The session sends `channelClose` when it returns and
`channelError` when it raises.

A prediction is one engine event stream, translated event by event: prompt progress,
fragments (reasoning framed by start/end tag fragments, as LM Studio sends them),
tool-call generation, then `success` with stats and configs, or `error`. A client's
`cancel` stops the engine within a token; the stream still ends in `success`, with
stop reason `userStopped`, as LM Studio does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.formatting.conversation import respond_events
from engine.formatting.reasoning import markers_for_template
from engine.logbus import LOG_BUS
from engine.prediction import (
    ContentDelta,
    Event,
    Failed,
    Finished,
    PredictionConfig,
    PromptProgress,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)

from . import protocol
from .chat_history import chat_of, completion_prompt
from .config_stack import load_overrides, prediction_settings
from .protocol import LmsError, Message
from .state import SdkState


@dataclass(slots=True)
class Channel:
    """One open channel of a session."""

    id: int
    send_raw: Callable[[Message], Awaitable[None]]
    inbox: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)

    async def send(self, message: Message) -> None:
        await self.send_raw(protocol.channel_send(self.id, message))


ChannelHandler = Callable[[SdkState, Any, Channel], Awaitable[None]]


# --- loading -----------------------------------------------------------------------


class _Progress:
    """Load progress from the loading thread, sent from the event loop, never backwards."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.last = -1.0
        self.pending: set[asyncio.Future[None]] = set()

    def __call__(self, fraction: float) -> None:
        self.loop.call_soon_threadsafe(self._send, fraction)

    def _send(self, fraction: float) -> None:
        # 1.0 is sent with the result; the SDK only needs to see the way there.
        if fraction <= self.last or fraction >= 1.0:
            return
        self.last = fraction
        task = asyncio.ensure_future(self.channel.send({"type": "progress", "progress": fraction}))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def flush(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)


def _ttl(milliseconds: Any) -> float | None:
    """Seconds from the SDK's ttl in ms; none given (or nonsense) means no TTL."""
    if isinstance(milliseconds, int | float) and milliseconds > 0:
        return milliseconds / 1000
    return None


async def _load(
    state: SdkState,
    key: str,
    stack: Any,
    identifier: str | None,
    channel: Channel,
    ttl: float | None,
) -> Any:
    if state.loader is None:
        raise LmsError(f"model {key!r} is not loaded, and this server does not load models",
                       suggestion="load it in llamaterm first")
    overrides = load_overrides(stack)
    await channel.send({"type": "resolved", "info": {"modelKey": key}})
    await channel.send({"type": "startLoading"})
    progress = _Progress(channel)
    served = await state.loader.load(key, overrides, identifier, progress, ttl)
    await progress.flush()
    return served


async def get_or_load(state: SdkState, parameter: Any, channel: Channel) -> None:
    params = parameter or {}
    key = params.get("identifier")
    if not isinstance(key, str) or not key:
        raise LmsError("getOrLoad needs an identifier")
    async with state.load_lock:
        served = state.find(key)
        loaded = state.loaded()
        if served is None and state.loader is None and len(loaded) == 1:
            # Scripts hard-code model names; a server that cannot load any serves the one
            # it has, as LM Studio's OpenAI endpoints do with one model loaded.
            served = loaded[0]
            LOG_BUS.emit("info", "server", f"LM Studio SDK asked for {key!r}: serving {served.id}")
        if served is not None:
            state.touch(served)
            await channel.send({"type": "alreadyLoaded", "info": protocol.instance_info(served)})
            return
        ttl = _ttl(params.get("loadTtlMs"))
        served = await _load(state, key, params.get("loadConfigStack"), None, channel, ttl)
    await channel.send({"type": "loadSuccess", "info": protocol.instance_info(served)})


async def load_model(state: SdkState, parameter: Any, channel: Channel) -> None:
    params = parameter or {}
    key = params.get("modelKey")
    if not isinstance(key, str) or not key:
        raise LmsError("loadModel needs a modelKey")
    identifier = params.get("identifier") or None
    ttl = _ttl(params.get("ttlMs"))
    async with state.load_lock:
        if identifier is not None and identifier in {m.id for m in state.loaded()}:
            raise LmsError(f"a model is already loaded as {identifier!r}")
        served = await _load(state, key, params.get("loadConfigStack"), identifier, channel, ttl)
    await channel.send({"type": "success", "info": protocol.instance_info(served)})


# --- predicting --------------------------------------------------------------------


class FragmentWriter:
    """Engine events as the predict channel's messages."""

    def __init__(self, open_tag: str, close_tag: str) -> None:
        self.open_tag = open_tag
        self.close_tag = close_tag
        self.in_reasoning = False
        self.started: set[int] = set()

    def on_event(self, event: Event) -> list[Message]:
        if isinstance(event, PromptProgress):
            return [protocol.prompt_progress(event.fraction)]
        if isinstance(event, ReasoningDelta) and event.text:
            out = []
            if not self.in_reasoning:
                self.in_reasoning = True
                out.append(protocol.fragment(self.open_tag, 0, "reasoningStartTag"))
            out.append(protocol.fragment(event.text, event.tokens_count, "reasoning"))
            return out
        if isinstance(event, ContentDelta) and event.text:
            return [*self._end_reasoning(), protocol.fragment(event.text, event.tokens_count)]
        if isinstance(event, ToolCallStarted):
            self.started.add(event.index)
            return [*self._end_reasoning(), {"type": "toolCallGenerationStart"},
                    {"type": "toolCallGenerationNameReceived", "name": event.name}]
        if isinstance(event, ToolCallArgumentsDelta) and event.text:
            return [{"type": "toolCallGenerationArgumentFragmentGenerated", "content": event.text}]
        if isinstance(event, ToolCallFinished):
            out = []
            if event.index not in self.started:
                out = [*self._end_reasoning(), {"type": "toolCallGenerationStart"}]
            request = protocol.tool_call_request(event.call)
            return [*out, {"type": "toolCallGenerationEnd", "toolCallRequest": request}]
        if isinstance(event, ToolCallParseError):
            # Not toolCallGenerationFailed: the SDK raises on it, ending a whole act().
            # The engine keeps the text as content, so the client still sees what came.
            LOG_BUS.emit(
                "warning", "server", f"LM Studio predict: tool call not parsed: {event.reason}"
            )
            return []
        if isinstance(event, Finished):
            return self._end_reasoning()
        return []

    def _end_reasoning(self) -> list[Message]:
        if not self.in_reasoning:
            return []
        self.in_reasoning = False
        return [protocol.fragment(self.close_tag, 0, "reasoningEndTag")]


async def _watch_for_cancel(channel: Channel, cancel: Callable[[], None]) -> None:
    while True:
        message = await channel.inbox.get()
        if message.get("type") == "cancel":
            cancel()
            return


async def predict(state: SdkState, parameter: Any, channel: Channel) -> None:
    params = parameter or {}
    served = state.resolve(params.get("modelSpecifier"))
    chat = chat_of(params.get("history"))
    settings = prediction_settings(params.get("predictionConfigStack"))
    config: PredictionConfig = settings.config.merged_over(served.defaults)
    model = served.model
    if settings.raw_completion:
        stream = model.complete_events(completion_prompt(chat), config)
    else:
        stream = respond_events(model, chat, config, defaults=served.defaults,
                                tools=settings.tools or None)
    markers = markers_for_template(getattr(model.chat_template, "source", None))
    open_tag, close_tag = (markers.open, markers.close) if markers else ("<think>", "</think>")
    writer = FragmentWriter(open_tag, close_tag)
    watcher = asyncio.ensure_future(_watch_for_cancel(channel, stream.cancel))
    # Busy while it runs: a TTL never unloads a model under a prediction.
    state.touch(served, +1)
    try:
        async for event in stream:
            for message in writer.on_event(event):
                await channel.send(message)
            if isinstance(event, Finished):
                await channel.send(protocol.success(served, event.result, config))
                return
            if isinstance(event, Failed):
                await channel.send(protocol.prediction_error(event.error))
                return
    except BaseException:
        # The client went away, or the server is stopping: the prediction must not run on.
        stream.cancel()
        raise
    finally:
        state.touch(served, -1)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


LLM: dict[str, ChannelHandler] = {
    "getOrLoad": get_or_load,
    "loadModel": load_model,
    "predict": predict,
}
