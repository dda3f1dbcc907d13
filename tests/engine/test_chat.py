"""Chat and messages: LM Studio's API, JSON round trip, the template message shape."""

from __future__ import annotations

import json

import pytest

import engine.chat as lms
from engine.chat import (
    CONVERTERS,
    SCHEMA_VERSION,
    AssistantResponse,
    Chat,
    ChatFormatError,
    SystemPrompt,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)


def call_of(chat: Chat, index: int) -> ToolCall:
    message = chat.messages[index]
    assert isinstance(message, AssistantResponse)
    return message.tool_calls[0]


def full_chat() -> Chat:
    chat = Chat("You are a resident AI philosopher.")
    chat.add_user_message("What is the weather in Zürich?")
    chat.add_assistant_response(
        "",
        reasoning="I should look it up.",
        tool_calls=[ToolCall(id="call_1", name="get_weather", arguments={"city": "Zürich"})],
    )
    chat.add_tool_result("call_1", '{"temp": 18}', name="get_weather")
    chat.add_assistant_response("It is 18 °C.", reasoning="The tool said 18.")
    return chat


# --- LM Studio's snippets -----------------------------------------------------------


def test_lmstudio_chat_context_snippet() -> None:
    # Create a chat with an initial system prompt.
    chat = lms.Chat("You are a resident AI philosopher.")
    # Build the chat context by adding messages of relevant types.
    chat.add_user_message("What is the meaning of life?")
    assert chat.messages == [
        SystemPrompt(content="You are a resident AI philosopher."),
        UserMessage(content="What is the meaning of life?"),
    ]


def test_lmstudio_multi_turn_snippet_appends_the_on_message_response() -> None:
    chat = lms.Chat("You are a task focused AI assistant")
    for user_input in ["Hi", "Tell me more"]:
        chat.add_user_message(user_input)
        # What respond_stream(..., on_message=chat.append) hands over at the end.
        on_message = chat.append
        on_message(AssistantResponse(content=f"reply to {user_input}", reasoning="hm"))
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert chat.messages[-1] == AssistantResponse(content="reply to Tell me more", reasoning="hm")


def test_chat_without_a_system_prompt() -> None:
    assert Chat().messages == []
    assert Chat(None).messages == []
    assert Chat().system_prompt is None
    assert Chat("be brief").system_prompt == "be brief"


# --- building -------------------------------------------------------------------------


def test_add_methods_return_the_message() -> None:
    chat = Chat()
    assert isinstance(chat.add_system_prompt("s"), SystemPrompt)
    assert isinstance(chat.add_user_message("u"), UserMessage)
    response = chat.add_assistant_response("a", reasoning="r")
    assert (response.content, response.reasoning, response.tool_calls) == ("a", "r", [])
    result = chat.add_tool_result("id1", "out", name="tool")
    assert result == ToolResultMessage(tool_call_id="id1", name="tool", content="out")
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "tool"]


def test_tool_calls_accept_dicts_in_our_shape_and_openai_shape() -> None:
    chat = Chat()
    response = chat.add_assistant_response(
        "",
        tool_calls=[
            {"id": "a", "name": "f", "arguments": {"x": 1}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y": 2}'}},
        ],
    )
    assert response.tool_calls == [
        ToolCall(id="a", name="f", arguments={"x": 1}),
        ToolCall(id="b", name="g", arguments={"y": 2}),
    ]


def test_bad_tool_call_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        ToolCall.model_validate({"name": "f", "arguments": "{oops"})
    with pytest.raises(ValueError, match="JSON object"):
        ToolCall.model_validate({"name": "f", "arguments": "[1]"})


def test_append_accepts_messages_and_dicts_and_keeps_a_copy() -> None:
    chat = Chat()
    message = UserMessage(content="hi")
    appended = chat.append(message)
    message.content = "changed"
    assert chat.messages[0].content == "hi"
    assert appended is chat.messages[0]
    chat.append({"role": "assistant", "content": "yo", "reasoning_content": "r"})
    assert chat.messages[1] == AssistantResponse(content="yo", reasoning="r")


def test_append_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError):
        Chat().append(42)
    with pytest.raises(ChatFormatError, match="invalid chat"):
        Chat().append({"role": "wizard", "content": "x"})


def test_from_history_dict() -> None:
    chat = Chat.from_history(
        {
            "messages": [
                {"role": "system", "content": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "multi"},
                        {"type": "text", "text": "part"},
                    ],
                },
                {"role": "assistant", "content": "ok"},
                {"role": "tool", "tool_call_id": "c", "content": "r"},
            ]
        }
    )
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "tool"]
    assert chat.messages[1].content == "multipart"


def test_from_history_string_is_one_user_message() -> None:
    assert Chat.from_history("hello").messages == [UserMessage(content="hello")]


def test_from_history_chat_is_a_copy() -> None:
    chat = full_chat()
    copied = Chat.from_history(chat)
    assert copied == chat and copied is not chat


@pytest.mark.parametrize("bad", [{"messages": [{"content": "no role"}]}, {"nope": []}, 3])
def test_from_history_refuses_bad_input(bad: object) -> None:
    with pytest.raises(ChatFormatError):
        Chat.from_history(bad)  # type: ignore[arg-type]


def test_copy_is_deep() -> None:
    chat = full_chat()
    copied = chat.copy()
    call_of(copied, 2).arguments["city"] = "Bern"
    copied.add_user_message("more")
    assert call_of(chat, 2).arguments == {"city": "Zürich"}
    assert len(chat.messages) == 5


# --- template messages --------------------------------------------------------------


def test_to_template_messages_shape() -> None:
    assert full_chat().to_template_messages() == [
        {"role": "system", "content": "You are a resident AI philosopher."},
        {"role": "user", "content": "What is the weather in Zürich?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "I should look it up.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Zürich"}},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "name": "get_weather",
            "content": '{"temp": 18}',
        },
        {"role": "assistant", "content": "It is 18 °C.", "reasoning_content": "The tool said 18."},
    ]


def test_to_template_messages_can_drop_reasoning() -> None:
    messages = full_chat().to_template_messages(keep_reasoning=False)
    assert all("reasoning_content" not in m for m in messages)


def test_template_messages_are_independent_of_the_chat() -> None:
    chat = full_chat()
    messages = chat.to_template_messages()
    messages[2]["tool_calls"][0]["function"]["arguments"]["city"] = "Bern"
    assert call_of(chat, 2).arguments == {"city": "Zürich"}


def test_str_is_readable() -> None:
    text = str(full_chat())
    assert text.splitlines() == [
        "system: You are a resident AI philosopher.",
        "user: What is the weather in Zürich?",
        "assistant (reasoning): I should look it up.",
        '  -> tool call get_weather({"city": "Zürich"}) id=call_1',
        'tool (get_weather, call_1): {"temp": 18}',
        "assistant (reasoning): The tool said 18.",
        "assistant: It is 18 °C.",
    ]
    assert str(Chat()) == "(empty chat)"


# --- JSON -----------------------------------------------------------------------------


def test_json_round_trip() -> None:
    chat = full_chat()
    text = chat.to_json()
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["messages"][2]["tool_calls"][0]["arguments"] == {"city": "Zürich"}
    assert "Zürich" in text  # not \u-escaped: chat files stay readable
    restored = Chat.from_json(text)
    assert restored == chat
    assert Chat.from_json(text.encode("utf-8")) == chat
    assert Chat.from_dict(chat.to_dict()) == chat


def test_json_of_every_message_type_keeps_its_type() -> None:
    restored = Chat.from_json(full_chat().to_json())
    types = [type(m) for m in restored.messages]
    assert types == [
        SystemPrompt,
        UserMessage,
        AssistantResponse,
        ToolResultMessage,
        AssistantResponse,
    ]


def test_a_newer_schema_version_is_a_clear_error() -> None:
    with pytest.raises(ChatFormatError, match="schema version 2, newer than this llamaterm reads"):
        Chat.from_json('{"schema_version": 2, "messages": []}')


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"messages": []}', "no valid schema_version"),
        ('{"schema_version": "1", "messages": []}', "no valid schema_version"),
        ('{"schema_version": 0, "messages": []}', "no valid schema_version"),
        ('{"schema_version": 1, "messages": [{"role": "user"}]}', "messages.0.user.content"),
        ("[1, 2]", "JSON object"),
        ('{"schema_version": 1, "messages": [', "not valid JSON"),
    ],
)
def test_bad_chat_files_are_clear_errors(text: str, match: str) -> None:
    with pytest.raises(ChatFormatError, match=match):
        Chat.from_json(text)


def test_converters_upgrade_old_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the current version is 2 and version 1 stored the text under "text".
    monkeypatch.setattr(lms, "SCHEMA_VERSION", 2)

    def v1_to_v2(data: dict[str, object]) -> dict[str, object]:
        messages = [{"role": m["role"], "content": m["text"]} for m in data["messages"]]  # type: ignore[attr-defined]
        return {**data, "messages": messages}

    monkeypatch.setitem(CONVERTERS, 1, v1_to_v2)
    chat = Chat.from_json('{"schema_version": 1, "messages": [{"role": "user", "text": "old"}]}')
    assert chat.messages == [UserMessage(content="old")]


def test_a_missing_converter_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lms, "SCHEMA_VERSION", 2)
    with pytest.raises(ChatFormatError, match="no converter from chat schema version 1"):
        Chat.from_json('{"schema_version": 1, "messages": []}')
