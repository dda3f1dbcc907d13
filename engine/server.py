"""An OpenAI-compatible HTTP server over the engine's event stream.

`GET /v1/models`, `POST /v1/chat/completions` and `POST /v1/completions`, served
by Starlette on uvicorn, so that any OpenAI client (the `openai` package, LM
Studio's and Xinference's example scripts, editors, agents) can use a loaded
model. Every reply is one engine prediction: the handlers only translate a
request into `respond_events`/`complete_events` and the events into OpenAI JSON
or server-sent-event chunks. Requests to one model are served in order by the
model's own thread; a client that goes away cancels its prediction.

Run it from the command line with `run_server`, or inside a running asyncio app
(the TUI) with `ServerHandle`.
"""

from __future__ import annotations

from engine.errors import ServerError

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import signal
import socket
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .chat import Chat
from .conversation import respond_events
from .logbus import LOG_BUS
from .prediction import (
    ContentDelta,
    Event,
    Failed,
    Finished,
    Log,
    LogRecord,
    PredictionConfig,
    PredictionConfigError,
    PredictionResult,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from .runtime import ENGINE_DEFAULTS, EventStream, LoadedModel

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1234
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_STOP_STRINGS = 16
CLIENT_CLOSED = 499
"""The status logged for a request whose client went away (nginx's convention)."""

_FINISH_REASONS = {
    "eosFound": "stop",
    "stopStringFound": "stop",
    "userStopped": "stop",
    "maxPredictedTokensReached": "length",
    "contextLengthReached": "length",
    "toolCalls": "tool_calls",
    "failed": "stop",
}
# Names the template's renderer passes itself; a client may not override them.
_RESERVED_TEMPLATE_KWARGS = frozenset({"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"})
_ROLES = {"system", "user", "assistant", "tool", "developer"}


# --- the models a server serves -------------------------------------------------------


@dataclass(slots=True)
class ServedModel:
    """A loaded model under the id clients name it by, with its prediction defaults."""

    id: str
    model: LoadedModel
    defaults: PredictionConfig = ENGINE_DEFAULTS
    """Used where a request says nothing (the config file's [prediction] over ours)."""
    created: int = field(default_factory=lambda: int(time.time()))


class ModelProvider(Protocol):
    """Where the server finds its models; the TUI's may change while the server runs."""

    def served_models(self) -> Sequence[ServedModel]: ...

    def get(self, model_id: str | None) -> ServedModel | None:
        """The model with this id; the default one for None; None when there is none."""
        ...


class ModelRegistry:
    """A ModelProvider over a mutable set of loaded models; the first added is the default."""

    def __init__(self, models: Iterable[ServedModel] = (), default: str | None = None) -> None:
        self._models: dict[str, ServedModel] = {m.id: m for m in models}
        self.default = default

    def add(self, served: ServedModel, *, make_default: bool = False) -> None:
        self._models[served.id] = served
        if make_default:
            self.default = served.id

    def remove(self, model_id: str) -> None:
        self._models.pop(model_id, None)
        if self.default == model_id:
            self.default = None

    def served_models(self) -> Sequence[ServedModel]:
        return [m for m in self._models.values() if m.model.is_loaded]

    def get(self, model_id: str | None) -> ServedModel | None:
        models = {m.id: m for m in self.served_models()}
        if model_id is None:
            if self.default in models:
                return models[self.default]
            return next(iter(models.values()), None)
        if model_id in models:
            return models[model_id]
        # Clients often name a model by a shorter key ("gemma-3-270m" for the q4 file).
        wanted = model_id.lower()
        matches = [m for key, m in models.items() if key.lower().startswith(wanted)]
        return matches[0] if len(matches) == 1 else None


# --- errors ----------------------------------------------------------------------------


class ApiError(Exception):
    """An error that becomes an OpenAI-shaped JSON response."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            },
            # Xinference's clients read the message from `detail` (FastAPI's shape).
            "detail": self.message,
        }


def _engine_error(error: BaseException) -> ApiError:
    """A failed prediction: ValueErrors (template refusals, bad grammars) are the request's fault."""
    message = str(error) or type(error).__name__
    if isinstance(error, ValueError):
        param = "grammar" if message.startswith("invalid grammar") else "messages"
        return ApiError(message, param=param, code="invalid_request")
    return ApiError(message, status=500, kind="server_error", code="prediction_failed")


def _param_of(loc: Sequence[int | str], data: Any, error_type: str) -> str:
    """The path of the field a pydantic error is about, as OpenAI writes it: messages[0].content.

    Parts that are not keys of the input (union members, discriminator tags) are left out,
    except the last part of a missing field, which is the field's name.
    """
    parts: list[str] = []
    node = data
    for n, part in enumerate(loc):
        is_key = isinstance(node, dict) and part in node
        is_index = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if is_key or is_index:
            node = node[part]
        elif not (n == len(loc) - 1 and error_type in ("missing", "extra_forbidden")):
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".")


def _validation_error(err: ValidationError, data: Any, prefix: str = "") -> ApiError:
    first = err.errors()[0]
    param = _param_of(first["loc"], data, first["type"])
    param = f"{prefix}{param}" if prefix else param
    message = first["msg"]
    if first["type"] == "missing":
        message = "is required"
    return ApiError(f"{param or 'body'}: {message}", param=param or None, code="invalid_value")


# --- requests --------------------------------------------------------------------------


class _Body(BaseModel):
    # Fields OpenAI defines that we do not use (user, metadata, store, ...) are ignored,
    # as other OpenAI-compatible servers do, so that ordinary clients just work.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class StreamOptions(_Body):
    include_usage: bool = False


class FunctionSpec(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(_Body):
    type: Literal["function"] = "function"
    function: FunctionSpec


class FunctionName(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"] = "function"
    function: FunctionName


class JsonSchemaSpec(_Body):
    name: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """llama.cpp's server takes a schema beside type json_object too."""


class _SamplingRequest(_Body):
    model: str | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    """Xinference's (and Hugging Face's) name for repeat_penalty."""
    stop: str | list[str] | None = None
    stop_token_ids: int | list[int] | None = None
    """Xinference's and vLLM's: stop at these tokens (as the stop strings of their text)."""
    seed: int | None = None
    grammar: str | None = None
    """A llama.cpp GBNF grammar, as llama.cpp's own server accepts."""
    logit_bias: dict[int, float] | None = None
    """OpenAI's: token id (a string in JSON) to a bias from -100 (banned) to 100."""
    n: int | None = 1

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        if any(s == "" for s in stops):
            raise ValueError("stop strings must not be empty")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias_range(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        for token, bias in (value or {}).items():
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"the bias of token {token} must be between -100 and 100")
        return value

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only n=1 is supported")
        return value

    def sampling(self) -> dict[str, Any]:
        values = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty
            if self.repeat_penalty is not None
            else self.repetition_penalty,
            "stop_strings": [self.stop] if isinstance(self.stop, str) else self.stop,
            "seed": self.seed,
            "grammar": self.grammar,
            # OpenAI's -100 means "never": llama.cpp needs -inf to be sure of that.
            "logit_bias": {t: (float("-inf") if b <= -100.0 else b) for t, b in self.logit_bias.items()}
            if self.logit_bias
            else None,
        }
        return {k: v for k, v in values.items() if v is not None}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingRequest):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None
    enable_thinking: bool | None = None
    """Xinference's request-level switch; `chat_template_kwargs.enable_thinking` works too."""
    chat_template_kwargs: dict[str, Any] | None = None


class CompletionRequest(_SamplingRequest):
    prompt: str | list[str]
    echo: bool | None = False
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("give one prompt (a string, or a list of one string)")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("echo is not supported")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("suffix (fill-in-the-middle) is not supported")
        return value

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


def _parse(model: type[_Body], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise _validation_error(err, data) from None


@dataclass(slots=True)
class ChatJob:
    """A chat request turned into what `respond_events` takes."""

    chat: Chat
    config: PredictionConfig
    tools: list[dict[str, Any]]
    tool_choice: Any
    template_kwargs: dict[str, Any]


def chat_job(request: ChatCompletionRequest) -> ChatJob:
    """Check what pydantic cannot (roles, tool choice, schemas) and build the engine's inputs."""
    chat = _chat_of(request.messages)
    tools = [t.model_dump(exclude_none=True) for t in request.tools or []]
    tool_choice = _tool_choice(request, tools)
    values = request.sampling()
    if request.max_completion_tokens is not None:
        values["max_tokens"] = request.max_completion_tokens
    grammar = _response_grammar(request.response_format)
    if grammar is not None:
        if "grammar" in values:
            raise ApiError("give either grammar or response_format, not both", param="grammar")
        values["grammar"] = grammar
    thinking, template_kwargs = _thinking(request)
    if thinking is not None:
        values["enable_thinking"] = thinking
    return ChatJob(chat, _config(values), tools, tool_choice, template_kwargs)


def _chat_of(messages: list[dict[str, Any]]) -> Chat:
    normalised = []
    for n, message in enumerate(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise ApiError(
                f"messages[{n}].role: must be one of system, user, assistant, tool (got {role!r})",
                param=f"messages[{n}].role",
                code="invalid_value",
            )
        # OpenAI's newer name for the system prompt.
        normalised.append({**message, "role": "system"} if role == "developer" else message)
    try:
        return Chat.model_validate({"messages": normalised})
    except ValidationError as err:
        raise _validation_error(err, {"messages": normalised}) from None


def _tool_choice(request: ChatCompletionRequest, tools: list[dict[str, Any]]) -> Any:
    choice = request.tool_choice
    if choice is None or choice == "auto" or choice == "none":
        return choice or "auto"
    if not tools:
        raise ApiError("tool_choice requires tools, and none were given", param="tool_choice")
    if choice == "required":
        return choice
    assert isinstance(choice, NamedToolChoice)
    names = [t["function"]["name"] for t in tools]
    if choice.function.name not in names:
        raise ApiError(
            f"tool_choice names {choice.function.name!r}, which is not among the tools "
            f"({', '.join(names)})",
            param="tool_choice.function.name",
        )
    return choice.model_dump()


def _response_grammar(response_format: ResponseFormat | None) -> str | None:
    """A GBNF grammar for a JSON response, through llama-cpp-python's schema converter."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_schema":
        if response_format.json_schema is None:
            raise ApiError(
                "response_format.json_schema: is required for type json_schema",
                param="response_format.json_schema",
            )
        schema = response_format.json_schema.schema_ or {}
        param = "response_format.json_schema.schema"
    else:
        schema = response_format.schema_ or {"type": "object"}
        param = "response_format.schema"
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as err:  # noqa: BLE001 - the converter raises anything on odd schemas
        raise ApiError(f"{param}: cannot turn this schema into a grammar: {err}", param=param) from None


def _thinking(request: ChatCompletionRequest) -> tuple[bool | None, dict[str, Any]]:
    """enable_thinking from the request, Xinference-style or inside chat_template_kwargs."""
    kwargs = dict(request.chat_template_kwargs or {})
    reserved = sorted(_RESERVED_TEMPLATE_KWARGS & kwargs.keys())
    if reserved:
        param = f"chat_template_kwargs.{reserved[0]}"
        raise ApiError(f"{param}: is set by the server and cannot be overridden", param=param)
    in_kwargs = kwargs.pop("enable_thinking", None)
    if in_kwargs is not None and not isinstance(in_kwargs, bool):
        param = "chat_template_kwargs.enable_thinking"
        raise ApiError(f"{param}: must be true or false", param=param)
    thinking = request.enable_thinking if request.enable_thinking is not None else in_kwargs
    # DeepSeek's templates call the switch `thinking`; honour it on its own too.
    if thinking is None and isinstance(kwargs.get("thinking"), bool):
        thinking = kwargs["thinking"]
    return thinking, kwargs


async def with_stop_tokens(
    config: PredictionConfig, served: ServedModel, ids: int | list[int] | None
) -> PredictionConfig:
    """`stop_token_ids` as stop strings: the text each token prints, special tokens included.

    The engine stops on text, so another token sequence spelling the same text stops too;
    end-of-generation tokens stop the model whatever is asked.
    """
    wanted = [ids] if isinstance(ids, int) else list(ids or [])
    if not wanted:
        return config
    model = served.model

    def texts(llama: Any) -> list[str] | int:
        n_vocab = llama.n_vocab()
        bad = next((t for t in wanted if not 0 <= t < n_vocab), None)
        if bad is not None:
            return bad
        pieces = model._pieces
        assert pieces is not None
        return [pieces(t).decode("utf-8", errors="replace") for t in wanted]

    found = await asyncio.wrap_future(model.run(texts))
    if isinstance(found, int):
        raise ApiError(f"stop_token_ids: token {found} is not in the model's vocabulary",
                       param="stop_token_ids", code="invalid_value")
    base = config.stop_strings if config.stop_strings is not None else served.defaults.stop_strings
    stops = list(base or ())
    stops += [text for text in dict.fromkeys(found) if text and text not in stops]
    return config.model_copy(update={"stop_strings": tuple(stops)}) if stops else config


def _config(values: dict[str, Any]) -> PredictionConfig:
    try:
        return PredictionConfig.parse(values)
    except PredictionConfigError as err:
        raise ApiError(str(err), code="invalid_value") from None


# --- responses -------------------------------------------------------------------------


def finish_reason(result: PredictionResult) -> str:
    if result.tool_calls and result.stats.stop_reason in ("eosFound", "stopStringFound"):
        return "tool_calls"
    return _FINISH_REASONS.get(result.stats.stop_reason, "stop")


def usage(result: PredictionResult) -> dict[str, Any]:
    stats = result.stats
    return {
        "prompt_tokens": stats.prompt_tokens_count,
        "completion_tokens": stats.predicted_tokens_count,
        "total_tokens": stats.total_tokens_count,
        "prompt_tokens_details": {
            "cached_tokens": max(0, stats.prompt_tokens_count - stats.prompt_tokens_evaluated)
        },
    }


def tool_call_json(call: Any) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
    }


@dataclass(slots=True)
class Reply:
    """The identity every object or chunk of one reply carries."""

    model: str
    object: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "chatcmpl" if self.object.startswith("chat") else "cmpl"
            self.id = f"{prefix}-{secrets.token_hex(12)}"

    def envelope(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "llamaterm",
            "choices": choices,
            **extra,
        }


def chat_completion(reply: Reply, result: PredictionResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    if result.tool_calls:
        message["tool_calls"] = [tool_call_json(call) for call in result.tool_calls]
        message["content"] = result.content or None
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(result)}
    return reply.envelope([choice], usage=usage(result))


def text_completion(reply: Reply, result: PredictionResult) -> dict[str, Any]:
    choice = {"index": 0, "text": result.content, "logprobs": None, "finish_reason": finish_reason(result)}
    return reply.envelope([choice], usage=usage(result))


class ChunkWriter(Protocol):
    """Turns engine events into the payloads of server-sent events."""

    def first(self) -> dict[str, Any] | None:
        """What to send as soon as the stream opens, if anything."""
        ...

    def on_event(self, event: Event) -> list[dict[str, Any]]: ...


class ChatChunks:
    """Chat events as `chat.completion.chunk` payloads, in the shape OpenAI's client accumulates:
    a tool call's first chunk has its index, id, type and name with empty arguments; later
    chunks carry only the index and argument fragments."""

    def __init__(self, reply: Reply, include_usage: bool) -> None:
        self.reply = reply
        self.include_usage = include_usage
        self._started: set[int] = set()
        self._streamed_arguments: set[int] = set()

    def first(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def on_event(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, ContentDelta) and event.text:
            return [self._chunk({"content": event.text})]
        if isinstance(event, ReasoningDelta) and event.text:
            return [self._chunk({"reasoning_content": event.text})]
        if isinstance(event, ToolCallStarted):
            return [self._call_start(event.index, event.id, event.name)]
        if isinstance(event, ToolCallArgumentsDelta) and event.text:
            self._streamed_arguments.add(event.index)
            return [self._call_arguments(event.index, event.text)]
        if isinstance(event, ToolCallFinished):
            return self._call_finished(event)
        if isinstance(event, Finished):
            return self._last(event.result)
        return []

    def _call_finished(self, event: ToolCallFinished) -> list[dict[str, Any]]:
        # A parser that recognises a call only once it closes never sent its start.
        chunks = []
        if event.index not in self._started:
            chunks.append(self._call_start(event.index, event.call.id, event.call.name))
        if event.index not in self._streamed_arguments:
            arguments = json.dumps(event.call.arguments, ensure_ascii=False)
            chunks.append(self._call_arguments(event.index, arguments))
            self._streamed_arguments.add(event.index)
        return chunks

    def _call_start(self, index: int, call_id: str, name: str) -> dict[str, Any]:
        self._started.add(index)
        call = {"index": index, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}
        return self._chunk({"tool_calls": [call]})

    def _call_arguments(self, index: int, text: str) -> dict[str, Any]:
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": text}}]})

    def _last(self, result: PredictionResult) -> list[dict[str, Any]]:
        chunks = [self._chunk({}, finish_reason(result))]
        if self.include_usage:
            # OpenAI's shape: one more chunk, with no choices and the whole request's usage.
            chunks.append(self.reply.envelope([], usage=usage(result)))
        return chunks

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        extra = {"usage": None} if self.include_usage else {}
        return self.reply.envelope([choice], **extra)


class TextChunks:
    """Completion events as `text_completion` payloads."""

    def __init__(self, reply: Reply, include_usage: bool) -> None:
        self.reply = reply
        self.include_usage = include_usage

    def first(self) -> dict[str, Any] | None:
        return None

    def on_event(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, ContentDelta) and event.text:
            return [self._chunk(event.text)]
        if isinstance(event, Finished):
            chunks = [self._chunk("", finish_reason(event.result))]
            if self.include_usage:
                chunks.append(self.reply.envelope([], usage=usage(event.result)))
            return chunks
        return []

    def _chunk(self, text: str, reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        extra = {"usage": None} if self.include_usage else {}
        return self.reply.envelope([choice], **extra)


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


# --- running a prediction for a client -------------------------------------------------


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _unless_disconnected(receive: Receive, work: Awaitable[Any]) -> tuple[bool, Any]:
    """Run `work` while watching the client; (True, None) if it went away first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        gone = not task.done()
        if gone:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return (True, None) if gone else (False, task.result())


async def _next_event(stream: EventStream) -> Event:
    """The next event that is not a log record (those already went to the log bus)."""
    async for event in stream:
        if not isinstance(event, Log):
            return event
    raise RuntimeError("the prediction ended without a result")


async def _drain(stream: EventStream) -> PredictionResult | None:
    """Let a cancelled prediction finish, for its stats; the engine stops within a token."""
    async for _ in stream:
        pass
    return stream.result


@dataclass(slots=True)
class RequestLog:
    """One record on the log bus per request, when it is answered (or abandoned)."""

    method: str
    path: str
    client: str
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    stream: bool = False
    done: bool = False

    def finish(self, status: int, result: PredictionResult | None = None, **extra: Any) -> None:
        if self.done:
            return
        self.done = True
        duration = time.perf_counter() - self.started
        data: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "status": status,
            "model": self.model,
            "duration": round(duration, 4),
            "client": self.client,
            "stream": self.stream,
            **extra,
        }
        summary = ""
        if result is not None:
            stats = result.stats
            data.update(
                stop_reason=stats.stop_reason,
                prompt_tokens=stats.prompt_tokens_count,
                completion_tokens=stats.predicted_tokens_count,
                tokens_per_second=stats.tokens_per_second,
            )
            summary = f" · {stats.predicted_tokens_count} tokens · {stats.stop_reason}"
        level = "info" if status < 400 else "warning" if status < 500 else "error"
        model = f" {self.model}" if self.model else ""
        message = f"{self.method} {self.path} {status}{model} {duration:.2f}s{summary}"
        LOG_BUS.emit(level, "server", message, **data)


def error_response(error: ApiError) -> Response:
    return JSONResponse(error.body(), status_code=error.status)


class EventStreamResponse:
    """Server-sent events from one prediction, sent as OpenAI sends them.

    Nothing goes out until the engine has built the prompt, so that a template that
    refuses the messages is still an ordinary JSON error. A client that disconnects
    cancels the prediction (the engine stops it with stop reason userStopped), and
    the request is logged with the prediction's stats either way.
    """

    done_marker = True
    """Whether `data: [DONE]` ends the stream (chat and completions; not the Responses API)."""

    def __init__(self, stream: EventStream, writer: ChunkWriter, log: RequestLog) -> None:
        self.stream = stream
        self.writer = writer
        self.log = log

    def encode(self, payload: dict[str, Any] | str) -> bytes:
        """One server-sent event; a protocol that names its events overrides this."""
        return sse(payload)

    def failure(self, error: BaseException) -> list[dict[str, Any]]:
        """What to send when the prediction fails after the stream has opened."""
        return [_engine_error(error).body()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            gone, status = await _unless_disconnected(receive, self._send_all(send))
        except (OSError, ClientDisconnect):
            gone, status = True, CLIENT_CLOSED
        except BaseException as err:
            # Shutdown cancelled us, or a bug: the prediction must not run on for nobody.
            self.stream.cancel()
            reason = "server shutdown" if isinstance(err, asyncio.CancelledError) else repr(err)
            self.log.finish(500, error=reason)
            raise
        if gone:
            self.stream.cancel()
            status = CLIENT_CLOSED
        result = self.stream.result if not gone else await _drain(self.stream)
        if self.stream.error is not None and status < 400:
            status = 500
        error = str(self.stream.error) if self.stream.error is not None else None
        self.log.finish(status, result, **({"error": error} if error else {}))

    async def _send_all(self, send: Send) -> int:
        first = await _next_event(self.stream)
        if isinstance(first, Failed):
            error = _engine_error(first.error)
            await _send_json(send, error.status, error.body())
            return error.status
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        opening = self.writer.first()
        if opening is not None:
            await _send_body(send, self.encode(opening))
        event: Event | None = first
        while event is not None:
            if isinstance(event, Failed):
                for payload in self.failure(event.error):
                    await _send_body(send, self.encode(payload))
                break
            for payload in self.writer.on_event(event):
                await _send_body(send, self.encode(payload))
            if isinstance(event, Finished):
                break
            event = await _next_event(self.stream)
        if self.done_marker:
            await _send_body(send, sse("[DONE]"))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200


async def _send_body(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


# --- the application -------------------------------------------------------------------

Endpoint = Callable[[Request, "RequestLog"], Awaitable["Response | EventStreamResponse"]]


@dataclass(slots=True)
class ServerOptions:
    api_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class _Api:
    """The endpoints, over a model provider."""

    def __init__(self, models: ModelProvider, options: ServerOptions) -> None:
        self.models = models
        self.options = options
        # Weak: a prediction leaves the set when nothing refers to its stream any more.
        self._active: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def _track(self, stream: EventStream) -> EventStream:
        self._active.add(stream)
        return stream

    def cancel_all(self) -> None:
        """Stop every prediction still running, so that a server stops at once."""
        for stream in list(self._active):
            stream.cancel()

    # -- plumbing shared by the endpoints

    def _check_key(self, request: Request) -> None:
        key = self.options.api_key
        if not key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise ApiError(
                "invalid or missing API key: send it as 'Authorization: Bearer <key>'",
                status=401,
                code="invalid_api_key",
            )

    async def _json_body(self, request: Request) -> dict[str, Any]:
        limit = self.options.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _too_large(len(body), limit)
        except ClientDisconnect:
            raise ApiError("the client closed the connection", status=CLIENT_CLOSED) from None
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(
                f"the request body is not valid JSON: {err}", code="invalid_json"
            ) from None
        if not isinstance(data, dict):
            raise ApiError("the request body must be a JSON object", code="invalid_json")
        return data

    def _model(self, model_id: str | None) -> ServedModel:
        served = self.models.get(model_id)
        if served is not None:
            return served
        known = [m.id for m in self.models.served_models()]
        if not known:
            raise ApiError("no model is loaded", status=503, kind="server_error", code="no_model")
        raise ApiError(
            f"model {model_id!r} is not loaded here (loaded: {', '.join(known)})",
            param="model",
            code="model_not_found",
        )

    async def handle(self, request: Request, endpoint: Endpoint) -> Response | EventStreamResponse:
        client = f"{request.client.host}:{request.client.port}" if request.client else ""
        log = RequestLog(request.method, request.url.path, client)
        try:
            self._check_key(request)
            response = await endpoint(request, log)
        except ApiError as err:
            log.finish(err.status, error=err.message)
            return error_response(err)
        except Exception as err:  # noqa: BLE001 - nothing a request does may crash the server
            LOG_BUS.emit("error", "server", f"internal error: {err!r}", path=request.url.path)
            error = ApiError(f"internal server error: {err}", status=500, kind="server_error")
            log.finish(500, error=repr(err))
            return error_response(error)
        if not isinstance(response, EventStreamResponse):
            log.finish(response.status_code)
        return response

    # -- endpoints

    async def list_models(self, request: Request, log: RequestLog) -> Response:
        data = [_model_json(m) for m in self.models.served_models()]
        return JSONResponse({"object": "list", "data": data})

    async def get_model(self, request: Request, log: RequestLog) -> Response:
        model_id = request.path_params["model_id"]
        served = next((m for m in self.models.served_models() if m.id == model_id), None)
        if served is None:
            raise ApiError(f"model {model_id!r} is not loaded here", status=404,
                           param="model", code="model_not_found")
        return JSONResponse(_model_json(served))

    async def chat_completions(
        self, request: Request, log: RequestLog
    ) -> Response | EventStreamResponse:
        raw = await self._json_body(request)
        parsed: ChatCompletionRequest = _parse(ChatCompletionRequest, raw)
        served = self._model(parsed.model)
        log.model, log.stream = served.id, bool(parsed.stream)
        job = chat_job(parsed)
        job.config = await with_stop_tokens(job.config, served, parsed.stop_token_ids)
        stream = self._track(respond_events(
            served.model,
            job.chat,
            job.config,
            defaults=served.defaults,
            tools=job.tools or None,
            tool_choice=job.tool_choice,
            template_kwargs=job.template_kwargs,
        ))
        reply = Reply(served.id, "chat.completion.chunk" if parsed.stream else "chat.completion")
        if parsed.stream:
            return EventStreamResponse(stream, ChatChunks(reply, parsed.include_usage), log)
        result = await self._result(request, stream, log)
        return JSONResponse(chat_completion(reply, result))

    async def completions(self, request: Request, log: RequestLog) -> Response | EventStreamResponse:
        raw = await self._json_body(request)
        parsed: CompletionRequest = _parse(CompletionRequest, raw)
        served = self._model(parsed.model)
        log.model, log.stream = served.id, bool(parsed.stream)
        config = _config(parsed.sampling())
        config = (await with_stop_tokens(config, served, parsed.stop_token_ids)).merged_over(
            served.defaults
        )
        stream = self._track(served.model.complete_events(parsed.text, config))
        reply = Reply(served.id, "text_completion")
        if parsed.stream:
            return EventStreamResponse(stream, TextChunks(reply, parsed.include_usage), log)
        result = await self._result(request, stream, log)
        return JSONResponse(text_completion(reply, result))

    async def _result(self, request: Request, stream: EventStream, log: RequestLog) -> PredictionResult:
        """The whole prediction, cancelled if the client stops waiting for it."""
        try:
            gone, _ = await _unless_disconnected(request.receive, _drain(stream))
        except BaseException:
            stream.cancel()
            raise
        if gone:
            stream.cancel()
            result = await _drain(stream)
            log.finish(CLIENT_CLOSED, result)
            raise ApiError("the client closed the connection", status=CLIENT_CLOSED)
        if stream.error is not None:
            raise _engine_error(stream.error)
        assert stream.result is not None
        log.finish(200, stream.result)
        return stream.result

    async def health(self, request: Request, log: RequestLog) -> Response:
        return JSONResponse({"status": "ok"})


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        f"the request body is {size} bytes, more than the server's limit of {limit}",
        code="request_too_large",
    )


def _model_json(served: ServedModel) -> dict[str, Any]:
    info = served.model.info
    entry: dict[str, Any] = {
        "id": served.id,
        "object": "model",
        "created": served.created,
        "owned_by": "llamaterm",
    }
    if info is not None:
        entry["context_length"] = info.context_length
        entry["architecture"] = info.architecture
    from .serve.xinference import model_fields  # late: that module imports this one

    entry.update(model_fields(served))
    return entry


def create_app(
    models: ModelProvider,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app: OpenAI's endpoints over the provider's loaded models."""
    api = _Api(models, ServerOptions(api_key=api_key or None, max_body_bytes=max_body_bytes))

    def route(path: str, endpoint: Endpoint, method: str) -> Route:
        async def handler(request: Request) -> Any:
            # An EventStreamResponse is an ASGI app, which is all Starlette calls it as.
            return await api.handle(request, endpoint)

        return Route(path, handler, methods=[method])

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "unknown_endpoint", 405: "method_not_allowed"}.get(status, "http_error")
        message = f"{code.replace('_', ' ')}: {request.method} {request.url.path}"
        return error_response(ApiError(message, status=status, code=code))

    routes = [
        route("/v1/models", api.list_models, "GET"),
        route("/v1/models/{model_id:path}", api.get_model, "GET"),
        route("/v1/chat/completions", api.chat_completions, "POST"),
        route("/v1/completions", api.completions, "POST"),
        route("/health", api.health, "GET"),
    ]
    # Late imports: those modules build on this one.
    from .serve import responses, xinference

    routes += responses.routes(api) + xinference.routes(api)
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.api = api
    return app


# --- serving ---------------------------------------------------------------------------




class _LogBusHandler(logging.Handler):
    """uvicorn's own messages go to the log bus, never to a terminal the TUI draws on."""

    def emit(self, record: logging.LogRecord) -> None:
        level = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}.get(
            record.levelno, "error"
        )
        LOG_BUS.emit(level, "server", record.getMessage(), logger=record.name)


_bridge: _LogBusHandler | None = None


def _bridge_uvicorn_logs() -> None:
    global _bridge
    if _bridge is not None:
        return
    _bridge = _LogBusHandler(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [_bridge]
        logger.propagate = False
        logger.setLevel(logging.WARNING)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ServerError(f"cannot resolve host {host!r}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


class ServerHandle:
    """The server inside an already-running asyncio app: `await start()`, `await stop()`.

    Port 0 picks a free port; `url` is then the real one. Signals are left to the app.
    """

    def __init__(
        self,
        models: ModelProvider,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        api_key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        shutdown_timeout: float = 3.0,
    ) -> None:
        self.models = models
        self.host = host
        self.port = port
        self.api_key = api_key or None
        self.max_body_bytes = max_body_bytes
        self.shutdown_timeout = shutdown_timeout
        self._server: Any = None
        self._app: Starlette | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def url(self) -> str:
        """The base URL for OpenAI clients, e.g. http://127.0.0.1:1234/v1."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def start(self) -> None:
        if self.running:
            return
        import uvicorn

        _bridge_uvicorn_logs()
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        app = self._app = create_app(
            self.models, api_key=self.api_key, max_body_bytes=self.max_body_bytes
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(self.shutdown_timeout)),
        )
        self._server = _embedded_server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                sock.close()
                error = self._task.exception()
                raise ServerError(f"the server did not start: {error!r}")
            await asyncio.sleep(0.01)
        LOG_BUS.emit("info", "server", f"serving at {self.url}", url=self.url)

    async def stop(self) -> None:
        if self._task is None:
            return
        server, task = self._server, self._task
        # Streams in flight end now (finish_reason "stop") instead of holding shutdown up.
        if self._app is not None:
            self._app.state.api.cancel_all()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), self.shutdown_timeout + 2)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception as err:  # noqa: BLE001 - stopping must always succeed
            LOG_BUS.emit("warning", "server", f"server stopped with an error: {err!r}")
        self._task = None
        LOG_BUS.emit("info", "server", f"stopped serving at {self.url}", url=self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _embedded_server(config: Any) -> Any:
    """A uvicorn server that leaves signals alone: the host app owns Ctrl+C and SIGTERM."""
    import uvicorn

    class EmbeddedServer(uvicorn.Server):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return EmbeddedServer(config)


def run_server(
    settings: Any,
    model: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    *,
    out: TextIO | None = None,
) -> int:
    """Load a model and serve it until Ctrl+C or SIGTERM; requests are printed to `out`."""
    out = out if out is not None else sys.stderr
    from .api import llm
    from .catalog import ModelNotFoundError
    from .runtime import ModelLoadError

    try:
        handle = llm(model, settings=settings)
    except (ModelLoadError, ModelNotFoundError, ValueError) as err:
        print(f"llamaterm: {err}", file=out)
        return 1
    served = ServedModel(handle.identifier, handle.loaded_model, settings.prediction_defaults())
    server = ServerHandle(ModelRegistry([served]), host=host, port=port, api_key=api_key)
    try:
        return asyncio.run(_serve_until_signal(server, out))
    finally:
        handle.unload()


async def _serve_until_signal(server: ServerHandle, out: TextIO) -> int:
    try:
        await server.start()
    except ServerError as err:
        print(f"llamaterm: {err}", file=out)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    unsubscribe = LOG_BUS.subscribe(_printer(out))
    for line in _banner(server):
        print(line, file=out, flush=True)
    try:
        await stop.wait()
    finally:
        unsubscribe()
        print("stopping", file=out, flush=True)
        await server.stop()
    return 0


def _banner(server: ServerHandle) -> list[str]:
    ids = ", ".join(m.id for m in server.models.served_models())
    lines = [f"serving {ids} at {server.url}"]
    lines.append("API key required" if server.api_key else "no API key required")
    if not _is_loopback(server.host) and not server.api_key:
        lines.append(f"warning: {server.host} is reachable from other machines and no --api-key is set")
    lines.append("Ctrl+C stops the server")
    return lines


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _printer(out: TextIO) -> Callable[[LogRecord], None]:
    def show(record: LogRecord) -> None:
        if record.kind == "server" or record.level == "error":
            print(f"[{record.level}] {record.message}", file=out, flush=True)

    return show
