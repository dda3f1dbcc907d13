"""Between OpenAI's JSON and the engine: a request into engine inputs, results and events back.

Requests: `chat_job` checks what pydantic cannot (roles, tool choice, response formats,
template switches) and builds what `respond_events` takes; `with_stop_tokens` adds the
text of `stop_token_ids` to the stop strings. Replies: a whole result as a
`chat.completion` or `text_completion`, and events as the chunks OpenAI streams
(`ChatChunks`, `TextChunks`, both `streaming.ChunkWriter`s).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.chat import Chat
from engine.prediction import (
    ContentDelta,
    Event,
    Finished,
    PredictionConfig,
    PredictionConfigError,
    PredictionResult,
    ReasoningDelta,
    TokenLogprob,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)

from .errors import ApiError, validation_error
from .schemas import ChatCompletionRequest, NamedToolChoice, ResponseFormat

if TYPE_CHECKING:
    from .models import ServedModel

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


# --- requests into engine inputs --------------------------------------------------------


@dataclass(slots=True)
class ChatJob:
    """A chat request turned into what `respond_events` takes."""

    chat: Chat
    config: PredictionConfig
    tools: list[dict[str, Any]]
    tool_choice: Any
    template_kwargs: dict[str, Any]
    parallel_tool_calls: bool = True


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
    if request.reasoning_format == "none":
        values["reasoning_parsing"] = {"enabled": False}
    parallel = request.parallel_tool_calls is not False
    return ChatJob(chat, prediction_config(values), tools, tool_choice, template_kwargs, parallel)


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
        _check_text_parts(n, message.get("content"))
        # OpenAI's newer name for the system prompt.
        normalised.append({**message, "role": "system"} if role == "developer" else message)
    try:
        return Chat.model_validate({"messages": normalised})
    except ValidationError as err:
        raise validation_error(err, {"messages": normalised}) from None


# Content parts a model without vision (or hearing) cannot take: refused, not dropped.
_MEDIA_PARTS = {"image_url": "image", "input_image": "image", "image": "image",
                "input_audio": "audio", "file": "file"}


def _check_text_parts(n: int, content: Any) -> None:
    """Text parts must hold text (the chat's own validator would fail on them unnamed);
    image, audio and file parts are refused, since no model here has vision."""
    if not isinstance(content, list):
        return
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _MEDIA_PARTS:
            param = f"messages[{n}].content[{k}]"
            raise ApiError(
                f"{param}: the model has no vision: {_MEDIA_PARTS[kind]} input is not supported",
                param=param,
                code="unsupported_content",
            )
        if isinstance(part, dict) and not isinstance(part.get("text", ""), str):
            param = f"messages[{n}].content[{k}].text"
            raise ApiError(f"{param}: must be a string", param=param, code="invalid_value")


def _tool_choice(request: ChatCompletionRequest, tools: list[dict[str, Any]]) -> Any:
    choice = request.tool_choice
    if choice is None or choice == "auto" or choice == "none":
        return choice or "auto"
    if not tools:
        raise ApiError("tool_choice requires tools, and none were given", param="tool_choice")
    names = [t["function"]["name"] for t in tools]
    if choice == "required":
        _check_forced_schemas(tools, set(names))
        return choice
    assert isinstance(choice, NamedToolChoice)
    if choice.function.name not in names:
        raise ApiError(
            f"tool_choice names {choice.function.name!r}, which is not among the tools "
            f"({', '.join(names)})",
            param="tool_choice.function.name",
        )
    _check_forced_schemas(tools, {choice.function.name})
    return choice.model_dump()


def _check_forced_schemas(tools: list[dict[str, Any]], chosen: set[str]) -> None:
    """A forced call is generated under a grammar built from its tool's schema: refuse a
    schema the converter cannot take, naming the tool, before any prediction starts."""
    from engine.toolcalls.grammar import tool_call_grammar

    for n, tool in enumerate(tools):
        if tool["function"]["name"] not in chosen:
            continue
        try:
            # The JSON wrapper every JSON format shares; only the schema can fail here.
            tool_call_grammar([tool], "required", "default")
        except Exception as err:  # noqa: BLE001 - the converter raises anything on odd schemas
            param = f"tools[{n}].function.parameters"
            raise ApiError(
                f"{param}: cannot turn this schema into a grammar: {err}",
                param=param,
                code="invalid_value",
            ) from None


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


# The request's name for an engine setting, where the two differ.
_REQUEST_NAMES = {"stop_strings": "stop"}


def prediction_config(values: dict[str, Any]) -> PredictionConfig:
    """The engine's config from the request's sampling values; a refusal names the field."""
    try:
        return PredictionConfig.parse(values)
    except PredictionConfigError as err:
        field = _first_field(values)
        param = _REQUEST_NAMES.get(field, field) if field else None
        raise ApiError(str(err), param=param, code="invalid_value") from None


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


def _first_field(values: dict[str, Any]) -> str | None:
    """The first field PredictionConfig refuses (its error message has every one)."""
    try:
        PredictionConfig.model_validate(values)
    except ValidationError as err:
        loc = err.errors()[0]["loc"]
        return str(loc[0]) if loc else None
    return None


# --- results and events into OpenAI JSON -----------------------------------------------


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


def _chat_token(token: bytes, logprob: float) -> dict[str, Any]:
    return {"token": token.decode("utf-8", errors="replace"), "logprob": logprob,
            "bytes": list(token)}


def chat_logprobs(scored: Sequence[TokenLogprob]) -> dict[str, Any]:
    """Chat's `logprobs`: each token with its alternatives."""
    content = [
        {**_chat_token(s.token, s.logprob), "top_logprobs": [_chat_token(t, lp) for t, lp in s.top]}
        for s in scored
    ]
    return {"content": content, "refusal": None}


def text_logprobs(scored: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """Completions' `logprobs`: parallel lists, the alternatives as {token: logprob}."""
    tokens = [s.text for s in scored]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [s.logprob for s in scored],
        "top_logprobs": [{t.decode("utf-8", errors="replace"): lp for t, lp in s.top} for s in scored],
        "text_offset": offsets,
    }


def chat_completion(reply: Reply, result: PredictionResult, logprobs: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    if result.tool_calls:
        message["tool_calls"] = [tool_call_json(call) for call in result.tool_calls]
        message["content"] = result.content or None
    choice = {"index": 0, "message": message,
              "logprobs": chat_logprobs(result.logprobs) if logprobs else None,
              "finish_reason": finish_reason(result)}
    return reply.envelope([choice], usage=usage(result))


def text_completion(reply: Reply, result: PredictionResult, logprobs: bool = False) -> dict[str, Any]:
    choice = {"index": 0, "text": result.content,
              "logprobs": text_logprobs(result.logprobs) if logprobs else None,
              "finish_reason": finish_reason(result)}
    return reply.envelope([choice], usage=usage(result))


class ChatChunks:
    """Chat events as `chat.completion.chunk` payloads, in the shape OpenAI's client accumulates:
    a tool call's first chunk has its index, id, type and name with empty arguments; later
    chunks carry only the index and argument fragments."""

    def __init__(self, reply: Reply, include_usage: bool, logprobs: bool = False) -> None:
        self.reply = reply
        self.include_usage = include_usage
        self.logprobs = logprobs
        self._scored: list[TokenLogprob] = []
        """Tokens scored since the last content chunk; they ride on the next one."""
        self._started: set[int] = set()
        self._streamed_arguments: set[int] = set()
        self._wire: dict[int, int] = {}
        """The chunks' index of each call the engine numbers: a call that fails gives its
        index to the next one, but a client joins the pieces of one index into one call,
        so each call streamed gets an index of its own."""
        self._open: int | None = None
        """The call started and not finished yet."""
        self._next_wire = 0

    def first(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def on_event(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TokenLogprob):
            self._scored.append(event)
            return []
        if isinstance(event, ContentDelta) and event.text:
            return [self._chunk({"content": event.text}, scored=True)]
        if isinstance(event, ReasoningDelta) and event.text:
            return [self._chunk({"reasoning_content": event.text})]
        if isinstance(event, ToolCallStarted):
            self._open = event.index
            return [self._call_start(event.index, event.id, event.name)]
        if isinstance(event, ToolCallArgumentsDelta) and event.text:
            self._streamed_arguments.add(event.index)
            return [self._call_arguments(event.index, event.text)]
        if isinstance(event, ToolCallParseError):
            self._call_failed()
            return []
        if isinstance(event, ToolCallFinished):
            return self._call_finished(event)
        if isinstance(event, Finished):
            return self._last(event.result)
        return []

    def _call_failed(self) -> None:
        """The open call failed: the next call at its index starts afresh."""
        index, self._open = self._open, None
        if index is not None:
            self._started.discard(index)
            self._streamed_arguments.discard(index)
            self._wire.pop(index, None)

    def _wire_index(self, index: int) -> int:
        if index not in self._wire:
            self._wire[index] = self._next_wire
            self._next_wire += 1
        return self._wire[index]

    def _call_finished(self, event: ToolCallFinished) -> list[dict[str, Any]]:
        self._open = None
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
        call = {"index": self._wire_index(index), "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}
        return self._chunk({"tool_calls": [call]})

    def _call_arguments(self, index: int, text: str) -> dict[str, Any]:
        wire = self._wire_index(index)
        return self._chunk({"tool_calls": [{"index": wire, "function": {"arguments": text}}]})

    def _last(self, result: PredictionResult) -> list[dict[str, Any]]:
        chunks = [self._chunk({}, finish_reason(result), scored=True)]
        if self.include_usage:
            # OpenAI's shape: one more chunk, with no choices and the whole request's usage.
            chunks.append(self.reply.envelope([], usage=usage(result)))
        return chunks

    def _chunk(
        self, delta: dict[str, Any], reason: str | None = None, scored: bool = False
    ) -> dict[str, Any]:
        logprobs = None
        if scored and self.logprobs and self._scored:
            logprobs, self._scored = chat_logprobs(self._scored), []
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
        extra = {"usage": None} if self.include_usage else {}
        return self.reply.envelope([choice], **extra)


class TextChunks:
    """Completion events as `text_completion` payloads."""

    def __init__(self, reply: Reply, include_usage: bool, logprobs: bool = False) -> None:
        self.reply = reply
        self.include_usage = include_usage
        self.logprobs = logprobs
        self._scored: list[TokenLogprob] = []
        self._offset = 0
        """Where the next token starts in the completion's text (`text_offset`)."""

    def first(self) -> dict[str, Any] | None:
        return None

    def on_event(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, TokenLogprob):
            self._scored.append(event)
            return []
        if isinstance(event, ContentDelta) and event.text:
            return [self._chunk(event.text)]
        if isinstance(event, Finished):
            chunks = [self._chunk("", finish_reason(event.result))]
            if self.include_usage:
                chunks.append(self.reply.envelope([], usage=usage(event.result)))
            return chunks
        return []

    def _chunk(self, text: str, reason: str | None = None) -> dict[str, Any]:
        logprobs = None
        if self.logprobs and self._scored:
            logprobs = text_logprobs(self._scored, self._offset)
            self._offset += sum(len(s.text) for s in self._scored)
            self._scored = []
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": reason}
        extra = {"usage": None} if self.include_usage else {}
        return self.reply.envelope([choice], **extra)
