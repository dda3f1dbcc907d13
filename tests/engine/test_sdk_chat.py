"""Chat history in LM Studio's shape and ours: tool parts kept, the SDK's methods, round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import engine as lms
from engine.chat import AssistantResponse, ToolResultMessage

SDK_HISTORY: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": ""},
                {
                    "type": "toolCallRequest",
                    "toolCallRequest": {
                        "type": "function", "id": "call-1", "name": "get_weather",
                        "arguments": {"city": "Paris"},
                    },
                },
                {
                    "type": "toolCallRequest",
                    "toolCallRequest": {
                        "type": "function", "id": "call-2", "name": "get_weather",
                        "arguments": {"city": "Rome"},
                    },
                },
            ],
        },
        {
            "role": "tool",
            "content": [
                {"type": "toolCallResult", "toolCallId": "call-1", "content": "sunny"},
                {"type": "toolCallResult", "toolCallId": "call-2", "content": "rain"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Paris sunny, Rome rain."}]},
    ]
}


def test_from_history_keeps_tool_call_requests_and_results() -> None:
    chat = lms.Chat.from_history(SDK_HISTORY)
    roles = [m.role for m in chat.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant"]
    calls = chat.messages[2].tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call-1", "get_weather", {"city": "Paris"}),
        ("call-2", "get_weather", {"city": "Rome"}),
    ]
    results = [(m.tool_call_id, m.name, m.content) for m in chat.messages[3:5]]
    assert results == [("call-1", "get_weather", "sunny"), ("call-2", "get_weather", "rain")]


def test_sdk_shape_round_trips_and_the_sdk_reads_ours() -> None:
    chat = lms.Chat.from_history(SDK_HISTORY)
    again = lms.Chat.from_history(chat.to_history())
    assert again.messages == chat.messages
    # The real SDK reads what we write, tool parts included.
    import lmstudio

    theirs = lmstudio.Chat.from_history(chat.to_history())
    parts = theirs._get_history()["messages"][2]["content"]
    assert [p["type"] for p in parts] == ["text", "toolCallRequest", "toolCallRequest"]
    # ...and we read what the SDK writes.
    back = lms.Chat.from_history(theirs._get_history())
    assert back.messages[2].tool_calls == chat.messages[2].tool_calls


def test_saved_chat_json_stays_our_schema() -> None:
    chat = lms.Chat.from_history(SDK_HISTORY)
    data = json.loads(chat.to_json())
    assert data["schema_version"] == 1
    assert data["messages"][3] == {
        "role": "tool", "tool_call_id": "call-1", "name": "get_weather", "content": "sunny",
    }
    assert lms.Chat.from_json(chat.to_json()).messages == chat.messages


def test_add_tool_result_in_the_sdks_form_and_ours() -> None:
    chat = lms.Chat()
    chat.add_user_message("hi")
    chat.add_assistant_response("", [{"id": "c1", "name": "f", "arguments": {}}])
    sdk = chat.add_tool_result({"toolCallId": "c1", "content": "one"})
    ours = chat.add_tool_result("c1", "two")
    assert isinstance(sdk, ToolResultMessage) and sdk.name == "f" and sdk.content == "one"
    assert ours.tool_call_id == "c1" and ours.name == "f"
    many = chat.add_tool_results([{"toolCallId": "c1", "content": {"n": 3}}])
    assert many[0].content == '{"n": 3}'
    with pytest.raises(lms.ChatFormatError, match="toolCallId"):
        chat.add_tool_result({"content": "x"})


def test_add_assistant_response_takes_a_prediction_result(tiny_model_path: Path) -> None:
    model = lms.llm(str(tiny_model_path))
    try:
        result = model.respond("hi", config={"maxTokens": 4, "seed": 1})
    finally:
        model.unload()
    chat = lms.Chat()
    chat.add_user_message("hi")
    message = chat.add_assistant_response(result)
    assert isinstance(message, AssistantResponse) and message.content == result.content


def test_add_entry_and_append_in_the_sdks_shape() -> None:
    chat = lms.Chat()
    chat.add_entry("system", "S")
    chat.add_entry("user", [{"type": "text", "text": "U"}])
    chat.add_entry("assistant", [
        {"type": "text", "text": "A"},
        {"type": "toolCallRequest", "toolCallRequest": {"id": "c", "name": "g", "arguments": {}}},
    ])
    chat.add_entry("tool", [{"type": "toolCallResult", "toolCallId": "c", "content": "R"}])
    chat.append({"role": "assistant", "content": [{"type": "text", "text": "done"}]})
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "S"), ("user", "U"), ("assistant", "A"), ("tool", "R"), ("assistant", "done"),
    ]
    assert chat.messages[3].name == "g"
    with pytest.raises(lms.ChatFormatError, match="unknown history role"):
        chat.add_entry("robot", "x")
    with pytest.raises(lms.ChatFormatError, match="no vision"):
        chat.add_user_message("look", images=["cat.png"])
