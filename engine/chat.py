"""Chats and their messages, shaped like LM Studio's Python SDK.

```python
chat = Chat("You are a task focused AI assistant")
chat.add_user_message("Hi")
stream = model.respond_stream(chat, on_message=chat.append)
```

A chat saves to JSON with a schema version, and turns into the HF/OpenAI message
list that Jinja chat templates expect. It also reads and writes LM Studio's history
shape (`{"messages": [{"role", "content": [parts]}]}` with `text`, `toolCallRequest`
and `toolCallResult` parts): `Chat.from_history(...)` and `chat.to_history()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.errors import ChatFormatError

SCHEMA_VERSION = 1




def _text_of(content: Any) -> Any:
    """OpenAI-style content may be a list of parts; we keep the text parts."""
    if content is None:
        return ""
    if isinstance(content, list):
        parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
        return "".join(parts)
    return content


class ToolCall(BaseModel):
    """A call the assistant asked for. `arguments` is already parsed JSON."""

    id: str = ""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_openai_shape(cls, data: Any) -> Any:
        # Accept {"id", "type": "function", "function": {"name", "arguments"}} too,
        # with arguments as a JSON string, as OpenAI-style histories store them.
        if isinstance(data, dict) and isinstance(data.get("function"), dict):
            function = data["function"]
            data = {"id": data.get("id", ""), **function}
        if isinstance(data, dict) and isinstance(data.get("arguments"), str):
            data = {**data, "arguments": _parse_arguments(data["arguments"])}
        return data

    def to_template(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": dict(self.arguments)},
        }


def _parse_arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"tool call arguments are not JSON: {err}") from None
    if not isinstance(value, dict):
        # ValueError, not TypeError: pydantic reports only ValueError as a validation error.
        raise ValueError("tool call arguments must be a JSON object")  # noqa: TRY004
    return value


class _Message(BaseModel):
    @field_validator("content", mode="before", check_fields=False)
    @classmethod
    def _content_text(cls, value: Any) -> Any:
        return _text_of(value)


class SystemPrompt(_Message):
    role: Literal["system"] = "system"
    content: str

    def to_template(self, keep_reasoning: bool = True) -> dict[str, Any]:
        return {"role": "system", "content": self.content}


class UserMessage(_Message):
    role: Literal["user"] = "user"
    content: str

    def to_template(self, keep_reasoning: bool = True) -> dict[str, Any]:
        return {"role": "user", "content": self.content}


class AssistantResponse(_Message):
    role: Literal["assistant"] = "assistant"
    content: str = ""
    # OpenAI-style histories (and llama.cpp) call it reasoning_content.
    reasoning: str = Field(
        default="", validation_alias=AliasChoices("reasoning", "reasoning_content")
    )
    tool_calls: list[ToolCall] = Field(default_factory=list)

    def to_template(self, keep_reasoning: bool = True) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning and keep_reasoning:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [call.to_template() for call in self.tool_calls]
        return message


class ToolResultMessage(_Message):
    role: Literal["tool"] = "tool"
    tool_call_id: str = ""
    name: str = ""
    content: str

    def to_template(self, keep_reasoning: bool = True) -> dict[str, Any]:
        return {
            "role": "tool",
            "tool_call_id": self.tool_call_id,
            "name": self.name,
            "content": self.content,
        }


ChatMessage: TypeAlias = Annotated[
    SystemPrompt | UserMessage | AssistantResponse | ToolResultMessage,
    Field(discriminator="role"),
]


@lru_cache(maxsize=1)
def _message_adapter() -> TypeAdapter[Any]:
    return TypeAdapter(ChatMessage)


_MESSAGE_TYPES = (SystemPrompt, UserMessage, AssistantResponse, ToolResultMessage)

# One converter per old schema version: converts a chat dict of version N to N + 1.
Converter: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]
CONVERTERS: dict[int, Converter] = {}


def _sdk_text(parts: list[Any], where: str) -> str:
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "file":
            raise ChatFormatError(
                f"{where} holds a file (an image?): llamaterm's models have no vision"
            )
    return "".join(
        str(p.get("text", "")) if isinstance(p, dict) else str(p)
        for p in parts
        if not (isinstance(p, dict) and p.get("type") in ("toolCallRequest", "toolCallResult"))
    )


def _sdk_request(part: dict[str, Any]) -> Any:
    """A toolCallRequest part's call: `{"type": "toolCallRequest", "toolCallRequest":
    {...}}`, or the request itself (`{"id", "name", "arguments"}`, OpenAI's form)."""
    request = part.get("toolCallRequest", part) if isinstance(part, dict) else part
    if isinstance(request, dict):
        request = {k: v for k, v in request.items() if k != "type" or "function" in request}
    return request


def normalize_messages(messages: list[Any]) -> list[Any]:
    """Messages in LM Studio's shape (content as a list of parts) as ours: text parts
    joined, toolCallRequest parts as `tool_calls`, and each toolCallResult part of a
    `tool` message as a tool message of its own (named after the call it answers).
    Messages already in our shape (or OpenAI's) pass through."""
    out: list[Any] = []
    names: dict[str, str] = {}
    for n, message in enumerate(messages):
        where = f"messages.{n}"
        if not isinstance(message, dict) or not isinstance(message.get("content"), list):
            if isinstance(message, dict):
                for call in message.get("tool_calls") or []:
                    if isinstance(call, dict) and call.get("id"):
                        function = call.get("function", call)
                        names[str(call["id"])] = str(function.get("name", ""))
            out.append(message)
            continue
        parts = message["content"]
        role = message.get("role")
        if role == "tool":
            results = [p for p in parts if isinstance(p, dict) and p.get("type") == "toolCallResult"]
            if results:
                for part in results:
                    call_id = str(part.get("toolCallId") or part.get("tool_call_id") or "")
                    content = part.get("content", "")
                    out.append({
                        "role": "tool",
                        "tool_call_id": call_id,
                        "name": part.get("name") or names.get(call_id, ""),
                        "content": content if isinstance(content, str)
                        else json.dumps(content, ensure_ascii=False),
                    })
                continue
        converted = {k: v for k, v in message.items() if k != "content"}
        converted["content"] = _sdk_text(parts, where)
        if role == "assistant":
            requests = [
                _sdk_request(p) for p in parts
                if isinstance(p, dict) and p.get("type") == "toolCallRequest"
            ]
            if requests:
                converted["tool_calls"] = [*converted.get("tool_calls", []), *requests]
                for request in requests:
                    if isinstance(request, dict) and request.get("id"):
                        names[str(request["id"])] = str(request.get("name", ""))
        out.append(converted)
    return out


def _call_of(request: Any) -> ToolCall:
    """A ToolCall from what LM Studio's `add_assistant_response` takes as a request."""
    if isinstance(request, ToolCall):
        return request
    if isinstance(request, dict):
        try:
            return ToolCall.model_validate(_sdk_request(request))
        except ValidationError as err:
            raise ChatFormatError(_describe(err)) from None
    raise ChatFormatError(f"not a tool call request: {request!r}")


def _response_parts(response: Any) -> tuple[str, str, list[Any]]:
    """(content, reasoning, tool calls) of what `add_assistant_response` takes: text, a
    `{"text": ...}` part, or a PredictionResult (or anything with `content`)."""
    if isinstance(response, str):
        return response, "", []
    if isinstance(response, dict) and isinstance(response.get("text"), str):
        return response["text"], "", []
    content = getattr(response, "content", None)
    if isinstance(content, str):
        return content, str(getattr(response, "reasoning", "") or ""), list(
            getattr(response, "tool_calls", ()) or ()
        )
    raise ChatFormatError(f"cannot read an assistant response from {response!r}")


def _text_input(content: Any, what: str) -> str:
    """The text of a system prompt or user message: a string, a `{"text": ...}` part, or
    a list of those (joined); files and images are refused (no vision)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type") == "file" or "identifier" in content:
            raise ChatFormatError(f"{what}: files and images are not supported (no vision)")
        if isinstance(content.get("text"), str):
            return content["text"]
    if isinstance(content, (list, tuple)):
        return "".join(_text_input(part, what) for part in content)
    raise ChatFormatError(f"{what}: cannot read {content!r}")


class Chat(BaseModel):
    """A conversation: an optional system prompt, then user, assistant and tool turns."""

    messages: list[ChatMessage] = Field(default_factory=list)

    def __init__(self, initial_prompt: str | None = None, /, **data: Any) -> None:
        super().__init__(**data)
        if initial_prompt is not None:
            self.add_system_prompt(initial_prompt)

    # --- building -------------------------------------------------------------------

    @classmethod
    def from_history(cls, history: Chat | dict[str, Any] | str) -> Chat:
        """A chat from `{"messages": [{"role": ..., "content": ...}, ...]}`, or a plain
        string taken as one user message."""
        if isinstance(history, Chat):
            return history.copy()
        if isinstance(history, str):
            chat = cls()
            chat.add_user_message(history)
            return chat
        if not isinstance(history, dict) or not isinstance(history.get("messages"), list):
            raise ChatFormatError('a chat history is a string or {"messages": [...]}')
        try:
            return cls.model_validate({"messages": normalize_messages(history["messages"])})
        except ValidationError as err:
            raise ChatFormatError(_describe(err)) from None

    def add_system_prompt(self, content: Any) -> SystemPrompt:
        """A system prompt: text, or LM Studio's `{"text": ...}` part."""
        return self._add(SystemPrompt(content=_text_input(content, "system prompt")))

    def add_user_message(self, content: Any, *, images: Iterable[Any] = ()) -> UserMessage:
        """A user message: text, a `{"text": ...}` part, or a list of them (joined)."""
        if list(images):
            raise ChatFormatError("user message: images are not supported (no vision)")
        return self._add(UserMessage(content=_text_input(content, "user message")))

    def add_assistant_response(
        self,
        response: Any,
        tool_call_requests: Iterable[Any] = (),
        *,
        reasoning: str = "",
        tool_calls: Iterable[ToolCall | dict[str, Any]] = (),
    ) -> AssistantResponse:
        """The assistant's turn: text, or a PredictionResult (its content, reasoning and
        tool calls), plus the tool calls it made (`tool_call_requests`, LM Studio's
        argument; `tool_calls`, ours: ToolCalls or dicts in either shape)."""
        content, result_reasoning, result_calls = _response_parts(response)
        calls = [_call_of(c) for c in (*tool_call_requests, *tool_calls)] or [
            _call_of(c) for c in result_calls
        ]
        return self._add(
            AssistantResponse(
                content=content, reasoning=reasoning or result_reasoning, tool_calls=calls
            )
        )

    def add_tool_result(
        self, result: str | dict[str, Any], content: str | None = None, name: str = ""
    ) -> ToolResultMessage:
        """A tool's result: LM Studio's `{"toolCallId": ..., "content": ...}`, or ours,
        `add_tool_result(tool_call_id, content, name)`. Without a name, the name of the
        call it answers (if the chat holds that call)."""
        if isinstance(result, dict):
            if content is not None:
                raise TypeError("add_tool_result takes a result dict or (id, content), not both")
            call_id = result.get("toolCallId", result.get("tool_call_id"))
            if call_id is None or "content" not in result:
                raise ChatFormatError(
                    f'a tool result is {{"toolCallId": ..., "content": ...}}; got {result!r}'
                )
            text = result["content"]
            name = name or str(result.get("name", ""))
        else:
            if content is None:
                raise TypeError("add_tool_result(tool_call_id, content): content is missing")
            call_id, text = result, content
        call_id = str(call_id)
        if not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        return self._add(
            ToolResultMessage(
                tool_call_id=call_id, name=name or self._call_name(call_id), content=text
            )
        )

    def add_tool_results(self, results: Iterable[dict[str, Any]]) -> list[ToolResultMessage]:
        """Several tool results, one message each (LM Studio keeps them in one message)."""
        return [self.add_tool_result(result) for result in results]

    def add_entry(self, role: str, content: Any) -> Any:
        """A message by role name (system, user, assistant, tool), LM Studio's way: content
        is text, a part, or a list of parts (an assistant's text then its tool call
        requests; a tool message's results)."""
        if role == "system":
            return self.add_system_prompt(content)
        if role == "user":
            return self.add_user_message(content)
        if role == "assistant":
            if isinstance(content, (list, tuple)):
                message = normalize_messages([{"role": "assistant", "content": list(content)}])[0]
                return self.append(message)
            return self.add_assistant_response(content)
        if role == "tool":
            parts = content if isinstance(content, (list, tuple)) else [content]
            added = [self.add_tool_result(p) for p in parts]
            return added[-1] if added else None
        raise ChatFormatError(f"unknown history role: {role!r}")

    def _call_name(self, call_id: str) -> str:
        for message in reversed(self.messages):
            if isinstance(message, AssistantResponse):
                for call in message.tool_calls:
                    if call.id == call_id:
                        return call.name
        return ""

    def append(self, message: Any) -> Any:
        """Add a message object (e.g. the AssistantResponse `on_message` hands over) or a
        dict with a `role`, in our shape or LM Studio's. The chat keeps its own copy."""
        if isinstance(message, _MESSAGE_TYPES):
            return self._add(message.model_copy(deep=True))
        if isinstance(message, dict):
            added = None
            for item in normalize_messages([message]):
                try:
                    added = self._add(_message_adapter().validate_python(item))
                except ValidationError as err:
                    raise ChatFormatError(_describe(err)) from None
            return added
        raise TypeError(f"cannot add a {type(message).__name__} to a chat")

    def _add(self, message: Any) -> Any:
        self.messages.append(message)
        return message

    def copy(self) -> Chat:  # type: ignore[override]
        return self.model_copy(deep=True)

    # --- reading --------------------------------------------------------------------

    @property
    def system_prompt(self) -> str | None:
        for message in self.messages:
            if isinstance(message, SystemPrompt):
                return message.content
        return None

    def to_template_messages(self, keep_reasoning: bool = True) -> list[dict[str, Any]]:
        """The HF/OpenAI message list that Jinja chat templates expect."""
        return [message.to_template(keep_reasoning) for message in self.messages]

    def __str__(self) -> str:
        return "\n".join(_describe_message(m) for m in self.messages) or "(empty chat)"

    # --- JSON -----------------------------------------------------------------------

    def to_history(self) -> dict[str, Any]:
        """The chat in LM Studio's history shape (what `Chat.from_history` reads back):
        content as parts; each tool result a message with one `toolCallResult` part."""
        messages: list[dict[str, Any]] = []
        for message in self.messages:
            parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
            if isinstance(message, AssistantResponse):
                parts += [
                    {
                        "type": "toolCallRequest",
                        "toolCallRequest": {
                            "type": "function", "id": c.id, "name": c.name,
                            "arguments": dict(c.arguments),
                        },
                    }
                    for c in message.tool_calls
                ]
            if isinstance(message, ToolResultMessage):
                parts = [
                    {
                        "type": "toolCallResult", "toolCallId": message.tool_call_id,
                        "content": message.content,
                        **({"name": message.name} if message.name else {}),
                    }
                ]
            messages.append({"role": message.role, "content": parts})
        return {"messages": messages}

    _get_history = to_history

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **self.model_dump(mode="json")}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chat:
        data = _upgrade(data)
        messages = data.get("messages", [])
        try:
            return cls.model_validate(
                {"messages": normalize_messages(messages) if isinstance(messages, list) else messages}
            )
        except ValidationError as err:
            raise ChatFormatError(_describe(err)) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> Chat:
        # ValueError: bad bytes or bad JSON; RecursionError: JSON nested too deeply.
        try:
            data = json.loads(text)
        except (ValueError, RecursionError, MemoryError) as err:
            raise ChatFormatError(f"chat file is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ChatFormatError("chat file must hold a JSON object")
        return cls.from_dict(data)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ChatFormatError(f"chat has no valid schema_version (found {version!r})")
    if version > SCHEMA_VERSION:
        raise ChatFormatError(
            f"chat was saved with schema version {version}, newer than this llamaterm "
            f"reads ({SCHEMA_VERSION}); upgrade llamaterm to open it"
        )
    while version < SCHEMA_VERSION:
        converter = CONVERTERS.get(version)
        if converter is None:
            raise ChatFormatError(f"no converter from chat schema version {version}")
        data = converter(data)
        version += 1
        data["schema_version"] = version
    return data


def _describe(err: ValidationError) -> str:
    problems = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "chat"
        problems.append(f"{where}: {item['msg']}")
    return "invalid chat: " + "; ".join(problems)


def _describe_message(message: Any) -> str:
    if isinstance(message, ToolResultMessage):
        label = ", ".join(p for p in (message.name, message.tool_call_id) if p)
        return f"tool ({label}): {message.content}" if label else f"tool: {message.content}"
    lines = [f"{message.role}: {message.content}"]
    if isinstance(message, AssistantResponse):
        if message.tool_calls and not message.content:
            lines = []
        if message.reasoning:
            lines.insert(0, f"assistant (reasoning): {message.reasoning}")
        for call in message.tool_calls:
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            lines.append(f"  -> tool call {call.name}({arguments}) id={call.id}")
    return "\n".join(lines)
