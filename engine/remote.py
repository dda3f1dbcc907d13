"""Models served by another OpenAI-compatible server, as a model source of kind "remote".

llama.cpp's `llama-server`, vLLM, LM Studio, Ollama, Xinference or llamaterm's own
server: anything that speaks `/v1/chat/completions` with server-sent events. A
`RemoteModel` streams a reply and turns the chunks into the engine's own events
(`ContentDelta`, `ReasoningDelta`, `ToolCallStarted`/`ArgumentsDelta`/`Finished`,
then `Finished` with stats, or `Failed`): it is a `ChatModel` (engine.contract), so
its consumers cannot tell it from a `LoadedModel`. Cancelling a stream closes the connection, which a good server
takes as a cancellation.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from engine.errors import RemoteError

from .chat import Chat, ToolCall
from .formatting.conversation import as_chat
from .llama.channels import EventStream
from .logbus import LOG_BUS
from .prediction import (
    ContentDelta,
    Event,
    Failed,
    Finished,
    FirstToken,
    Log,
    ModelInfo,
    PredictionConfig,
    PredictionResult,
    PredictionStats,
    PromptProgress,
    ReasoningDelta,
    StopReason,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)

DEFAULT_TIMEOUT = 600.0
"""Seconds to wait for the next byte: a busy server may queue a request for a while."""

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "eosFound",
    "length": "maxPredictedTokensReached",
    "tool_calls": "toolCalls",
    "function_call": "toolCalls",
}
_ID_ALPHABET = string.ascii_letters + string.digits




def api_base(base_url: str) -> str:
    """The URL that `/chat/completions` hangs off: a bare host gets OpenAI's `/v1`."""
    url = base_url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url if urlsplit(url).path else f"{url}/v1"


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _describe_http_error(status: int, body: bytes) -> str:
    """The server's own error message when it sent an OpenAI-shaped (or similar) body."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return f"HTTP {status}: {text[:300] or 'no details'}"
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = error.get("message") or json.dumps(error)
        param = f" (param: {error['param']})" if error.get("param") else ""
        return f"HTTP {status}: {message}{param}"
    return f"HTTP {status}: {error}"


@dataclass(frozen=True, slots=True)
class RemoteModelEntry:
    """One model a remote server lists."""

    id: str
    owned_by: str = ""
    context_length: int = 0


async def list_remote_models(
    base_url: str, api_key: str | None = None, *, timeout: float = 10.0
) -> list[RemoteModelEntry]:
    """`GET /models` on the server; raises RemoteError with the server's reason."""
    import httpx

    url = f"{api_base(base_url)}/models"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url, headers=_headers(api_key))
    except httpx.HTTPError as err:
        raise RemoteError(f"cannot reach {url}: {err or type(err).__name__}") from None
    if response.status_code != 200:
        raise RemoteError(_describe_http_error(response.status_code, response.content))
    try:
        entries = response.json()["data"]
        return [
            RemoteModelEntry(
                id=str(e["id"]),
                owned_by=str(e.get("owned_by", "")),
                context_length=int(e.get("context_length") or 0),
            )
            for e in entries
        ]
    except (ValueError, KeyError, TypeError) as err:
        raise RemoteError(f"{url} did not return a model list: {err!r}") from None


@dataclass(frozen=True, slots=True)
class RemoteSource:
    """A server the Models screen lists models from, as it lists local files."""

    base_url: str
    api_key: str | None = None
    name: str = ""
    kind: Literal["remote"] = "remote"

    async def list_models(self) -> list[RemoteModel]:
        entries = await list_remote_models(self.base_url, self.api_key)
        return [RemoteModel(self.base_url, e.id, self.api_key, context_length=e.context_length)
                for e in entries]


class RemoteModel:
    """A model on an OpenAI-compatible server, as a `ChatModel` (engine.contract)."""

    kind: Literal["remote"] = "remote"
    is_remote = True
    placement = "remote"

    def __init__(
        self,
        base_url: str,
        model_id: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        context_length: int = 0,
    ) -> None:
        self.base_url = api_base(base_url)
        self.model_id = model_id
        self.api_key = api_key or None
        self.timeout = timeout
        self.key = model_id
        self.info = ModelInfo(
            display_name=model_id,
            path=self.base_url,
            architecture="remote",
            context_length=context_length,
            model_key=model_id,
            chat_template="the server's",
            chat_template_reason=f"rendered by the server at {self.base_url}",
        )
        self._streams: weakref.WeakSet[RemoteEventStream] = weakref.WeakSet()

    @property
    def is_loaded(self) -> bool:
        return True

    @property
    def location(self) -> str:
        return self.base_url

    def cancel(self) -> None:
        """Close every open stream of this model (each finishes as userStopped)."""
        for stream in list(self._streams):
            stream.cancel()

    def unload(self) -> None:
        """The server keeps the model: only this model's open streams are closed."""
        self.cancel()

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids from the server's `/tokenize` (llama.cpp's `llama-server` has one;
        OpenAI's API and llamaterm's server do not, which is a RemoteError).
        Blocks: call it off the event loop."""
        import httpx

        url = f"{self.base_url.removesuffix('/v1')}/tokenize"
        body = {"content": text, "add_special": add_special, "model": self.model_id}
        try:
            response = httpx.post(url, json=body, headers=_headers(self.api_key), timeout=30.0)
        except httpx.HTTPError as err:
            raise RemoteError(f"cannot reach {url}: {err or type(err).__name__}") from None
        if response.status_code != 200:
            raise RemoteError(
                f"{url} cannot tokenise: "
                + _describe_http_error(response.status_code, response.content)
            )
        try:
            return [int(t) for t in response.json()["tokens"]]
        except (ValueError, KeyError, TypeError) as err:
            raise RemoteError(f"{url} did not return tokens: {err!r}") from None

    def __repr__(self) -> str:
        return f"RemoteModel({self.base_url!r}, {self.model_id!r})"

    async def list_models(self) -> list[str]:
        """The ids of the models the same server offers."""
        return [e.id for e in await list_remote_models(self.base_url, self.api_key)]

    def respond_events(
        self,
        chat: Chat | dict[str, Any] | str,
        config: PredictionConfig | dict[str, Any] | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = "auto",
        template_kwargs: dict[str, Any] | None = None,
    ) -> EventStream:
        """One assistant reply as an async stream of engine events. Call from a running loop."""
        parsed = PredictionConfig.parse(config)
        body: dict[str, Any] = {
            "messages": openai_messages(as_chat(chat)),
            **_sampling(parsed),
        }
        if parsed.top_logprobs is not None:
            body.update(logprobs=True, top_logprobs=parsed.top_logprobs)
        if tools:
            body["tools"] = tools
            body["tool_choice"] = _openai_tool_choice(tool_choice)
        kwargs = dict(template_kwargs or {})
        if parsed.enable_thinking is not None:
            kwargs["enable_thinking"] = parsed.enable_thinking
        if kwargs:
            body["chat_template_kwargs"] = kwargs
        return self._start("/chat/completions", body, ChatReader())

    def complete_events(
        self, prompt: str, config: PredictionConfig | dict[str, Any] | None = None
    ) -> EventStream:
        """Raw completion of `prompt` as an async stream of engine events."""
        parsed = PredictionConfig.parse(config)
        body = {"prompt": prompt, **_sampling(parsed)}
        if parsed.top_logprobs is not None:
            body["logprobs"] = parsed.top_logprobs  # the completions API's spelling
        return self._start("/completions", body, TextReader())

    def _start(self, path: str, body: dict[str, Any], reader: ChunkReader) -> EventStream:
        body = {"model": self.model_id, "stream": True,
                "stream_options": {"include_usage": True}, **body}
        request = _Request(f"{self.base_url}{path}", body, _headers(self.api_key), self.timeout)
        stream = RemoteEventStream(asyncio.get_running_loop(), self, request, reader)
        self._streams.add(stream)
        return stream


def openai_messages(chat: Chat) -> list[dict[str, Any]]:
    """The chat as OpenAI's API takes it: tool call arguments as JSON text."""
    messages = []
    for message in chat.to_template_messages():
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "function": {**call["function"],
                                      "arguments": json.dumps(call["function"]["arguments"])}}
                for call in message["tool_calls"]
            ]
            if not message.get("content"):
                message["content"] = None
        if message["role"] == "tool" and not message.get("name"):
            message.pop("name", None)
        messages.append(message)
    return messages


def _openai_tool_choice(choice: Any) -> Any:
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": choice}}
    return choice


def _sampling(config: PredictionConfig) -> dict[str, Any]:
    """Only what the caller set: the server keeps its own defaults for the rest.

    top_k, min_p, repeat_penalty and grammar are extensions that llama.cpp's server (and
    llamaterm's) accept; they are only sent when set, since a strict server may refuse them.
    """
    values: dict[str, Any] = {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": config.top_k,
        "min_p": config.min_p,
        "repeat_penalty": config.repeat_penalty,
        "presence_penalty": config.presence_penalty,
        "frequency_penalty": config.frequency_penalty,
        "seed": config.seed if config.seed is not None and config.seed >= 0 else None,
        "stop": list(config.stop_strings) if config.stop_strings else None,
        "grammar": config.grammar,
        # JSON has no -inf: OpenAI's -100 means "banned".
        "logit_bias": {str(t): max(-100.0, min(100.0, b)) for t, b in config.logit_bias}
        if config.logit_bias
        else None,
    }
    if config.max_tokens is not None and config.max_tokens > 0:
        values["max_tokens"] = config.max_tokens
    if config.reasoning_parsing is not None and not config.reasoning_parsing.enabled:
        values["reasoning_format"] = "none"  # llama-server's (and llamaterm's) spelling
    return {k: v for k, v in values.items() if v is not None}


@dataclass(slots=True)
class _Request:
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    timeout: float


# --- chunks to events -------------------------------------------------------------------


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""
    started: bool = False


@dataclass
class ChunkReader:
    """What a stream of OpenAI chunks has said so far, and the engine events it amounts to."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    pieces: int = 0
    """Chunks that carried generated text: the token count when the server reports none."""

    def read(self, chunk: dict[str, Any]) -> list[Event]:
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            events.extend(self.read_choice(choice))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def read_choice(self, choice: dict[str, Any]) -> list[Event]:
        raise NotImplementedError

    def _text(self, text: Any, reasoning: bool = False) -> list[Event]:
        if not isinstance(text, str) or not text:
            return []
        self.pieces += 1
        if reasoning:
            self.reasoning.append(text)
            return [ReasoningDelta(text)]
        self.content.append(text)
        return [ContentDelta(text)]

    def finish(self) -> tuple[list[Event], list[ToolCall]]:
        """Events owed at the end of the stream, and the tool calls it made."""
        return [], []


class TextReader(ChunkReader):
    def read_choice(self, choice: dict[str, Any]) -> list[Event]:
        return self._text(choice.get("text"))


class ChatReader(ChunkReader):
    """Chat chunks: content, reasoning (`reasoning_content`, or vLLM's `reasoning`) and
    tool calls accumulated by index as OpenAI's client does."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[int, _PendingCall] = {}

    def read_choice(self, choice: dict[str, Any]) -> list[Event]:
        delta = choice.get("delta") or {}
        events = self._text(delta.get("reasoning_content") or delta.get("reasoning"), True)
        events += self._text(delta.get("content"))
        for call in delta.get("tool_calls") or []:
            events += self._tool_call_delta(call)
        return events

    def _tool_call_delta(self, delta: dict[str, Any]) -> list[Event]:
        index = int(delta.get("index", len(self._calls)))
        call = self._calls.setdefault(index, _PendingCall())
        function = delta.get("function") or {}
        call.id += delta.get("id") or ""
        call.name += function.get("name") or ""
        fragment = function.get("arguments") or ""
        if isinstance(fragment, dict):  # a few servers send the arguments as an object
            fragment = json.dumps(fragment)
        call.arguments += fragment
        events: list[Event] = []
        if not call.started and call.name:
            call.started = True
            call.id = call.id or _new_call_id()
            self.pieces += 1
            events.append(ToolCallStarted(index, call.id, call.name))
            # Fragments that came before the name are owed now.
            fragment = call.arguments
        if call.started and fragment:
            self.pieces += 1
            events.append(ToolCallArgumentsDelta(index, fragment))
        return events

    def finish(self) -> tuple[list[Event], list[ToolCall]]:
        events: list[Event] = []
        calls: list[ToolCall] = []
        for index in sorted(self._calls):
            pending = self._calls[index]
            try:
                call = ToolCall.model_validate(
                    {"id": pending.id, "name": pending.name, "arguments": pending.arguments}
                )
            except ValueError as err:
                raw = json.dumps({"name": pending.name, "arguments": pending.arguments})
                events.append(ToolCallParseError(raw, f"tool call {index}: {err}"))
                continue
            calls.append(call)
            events.append(ToolCallFinished(index, call))
        return events, calls


def _new_call_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


async def server_sent_events(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event (multi-line data joined, comments skipped)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


# --- the stream -------------------------------------------------------------------------


class RemoteEventStream(EventStream):
    """An EventStream fed by an HTTP stream instead of a model thread.

    `cancel()` closes the connection and finishes the stream with stop reason
    userStopped and what arrived until then.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        model: RemoteModel,
        request: _Request,
        reader: ChunkReader,
    ) -> None:
        super().__init__(loop)
        self._model = model
        self._request = request
        self._reader = reader
        self._started = time.perf_counter()
        self._first_token: float | None = None
        self._ended = False
        self._task = loop.create_task(self._run())
        self._task.add_done_callback(self._on_task_done)

    def cancel(self) -> None:
        super().cancel()
        if not self._task.done():
            self._task.cancel()

    def _emit(self, event: Event) -> None:
        if isinstance(event, (Finished, Failed)):
            self._ended = True
        self._queue.put_nowait(event)

    async def _run(self) -> None:
        try:
            await self._exchange()
        except RemoteError as err:
            self._fail(err)
        except Exception as err:  # noqa: BLE001 - every failure reaches the consumer as an event
            self._fail(RemoteError(f"{self._request.url}: {err!r}"))

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        # Cancelled (perhaps before it even started): the consumer still gets its end.
        if not self._ended:
            self._emit(Finished(self._result("userStopped")))

    def _fail(self, error: BaseException) -> None:
        record = LOG_BUS.emit("error", "remote", f"remote prediction failed: {error}",
                              url=self._request.url)
        self._emit(Log(record))
        self._emit(Failed(error))

    async def _exchange(self) -> None:
        import httpx

        request = self._request
        record = LOG_BUS.emit(
            "info", "remote", f"POST {request.url} ({self._model.model_id})",
            url=request.url, model=self._model.model_id, body=_loggable(request.body),
        )
        self._emit(Log(record))
        self._emit(PromptProgress(0.0))
        timeout = httpx.Timeout(request.timeout, connect=10.0)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client, client.stream(
                "POST", request.url, json=request.body, headers=request.headers
            ) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    raise RemoteError(_describe_http_error(response.status_code, body))
                await self._read(server_sent_events(response.aiter_lines()))
        except httpx.HTTPError as err:
            raise RemoteError(f"cannot reach {request.url}: {err or type(err).__name__}") from None
        events, calls = self._reader.finish()
        for event in events:
            self._emit(event)
        self._emit(Finished(self._result(self._stop_reason(calls), calls)))

    async def _read(self, events: AsyncIterator[str]) -> None:
        async for data in events:
            if data.strip() == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise RemoteError(f"the server sent a chunk that is not JSON: {data[:200]!r}") from None
            if isinstance(chunk, dict) and chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise RemoteError(f"the server failed mid-stream: {message}")
            for event in self._reader.read(chunk if isinstance(chunk, dict) else {}):
                self._on_generated()
                self._emit(event)

    def _on_generated(self) -> None:
        if self._first_token is None:
            self._first_token = time.perf_counter()
            self._emit(PromptProgress(1.0))
            self._emit(FirstToken(self._first_token - self._started))

    def _stop_reason(self, calls: list[ToolCall]) -> StopReason:
        reason = _STOP_REASONS.get(self._reader.finish_reason or "stop", "eosFound")
        if calls and reason == "eosFound":
            return "toolCalls"
        return reason

    def _result(self, stop_reason: StopReason, calls: list[ToolCall] | None = None) -> PredictionResult:
        ended = time.perf_counter()
        reader = self._reader
        usage = reader.usage or {}
        predicted = int(usage.get("completion_tokens") or reader.pieces)
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        first = self._first_token
        generation = ended - first if first is not None else 0.0
        stats = PredictionStats(
            stop_reason=stop_reason,
            prompt_tokens_count=prompt_tokens,
            predicted_tokens_count=predicted,
            time_to_first_token_sec=(first - self._started) if first is not None else None,
            # The first token arrived at `first`; the rate is over the ones after it.
            tokens_per_second=(predicted - 1) / generation if predicted > 1 and generation > 0 else None,
            prompt_tokens_evaluated=max(0, prompt_tokens - cached),
            total_time_sec=ended - self._started,
        )
        content = "".join(reader.content)
        return PredictionResult(
            content=content,
            reasoning="".join(reader.reasoning),
            stats=stats,
            model_info=self._model.info,
            raw_text=content,
            tool_calls=tuple(calls or ()),
        )


def _loggable(body: dict[str, Any]) -> dict[str, Any]:
    """The request as logged: everything but the messages' bulk, which the chat shows."""
    logged = {k: v for k, v in body.items() if k not in ("messages", "prompt", "tools")}
    if "messages" in body:
        logged["messages"] = len(body["messages"])
    if "tools" in body:
        logged["tools"] = [t.get("function", {}).get("name") for t in body["tools"]]
    return logged

