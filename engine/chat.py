"""Chats and their messages, shaped like LM Studio's Python SDK.

```python
chat = Chat("You are a task focused AI assistant")
chat.add_user_message("Hi")
stream = model.respond_stream(chat, on_message=chat.append)
```

A chat saves to JSON with a schema version, and turns into the HF/OpenAI message
list that Jinja chat templates expect.
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
            return cls.model_validate({"messages": history["messages"]})
        except ValidationError as err:
            raise ChatFormatError(_describe(err)) from None

    def add_system_prompt(self, content: str) -> SystemPrompt:
        return self._add(SystemPrompt(content=content))

    def add_user_message(self, content: str) -> UserMessage:
        return self._add(UserMessage(content=content))

    def add_assistant_response(
        self,
        content: str,
        *,
        reasoning: str = "",
        tool_calls: Iterable[ToolCall | dict[str, Any]] = (),
    ) -> AssistantResponse:
        calls = [ToolCall.model_validate(c) if isinstance(c, dict) else c for c in tool_calls]
        return self._add(AssistantResponse(content=content, reasoning=reasoning, tool_calls=calls))

    def add_tool_result(self, tool_call_id: str, content: str, name: str = "") -> ToolResultMessage:
        return self._add(ToolResultMessage(tool_call_id=tool_call_id, name=name, content=content))

    def append(self, message: Any) -> Any:
        """Add a message object (e.g. the AssistantResponse `on_message` hands over) or a
        dict with a `role`. The chat keeps its own copy."""
        if isinstance(message, _MESSAGE_TYPES):
            return self._add(message.model_copy(deep=True))
        if isinstance(message, dict):
            try:
                return self._add(_message_adapter().validate_python(message))
            except ValidationError as err:
                raise ChatFormatError(_describe(err)) from None
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

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **self.model_dump(mode="json")}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chat:
        data = _upgrade(data)
        try:
            return cls.model_validate({"messages": data.get("messages", [])})
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
