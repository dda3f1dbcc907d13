"""One message of a chat: deleting it (asked first, saved at once, its tool results
with it), and a reopened chat's call to a tool it does not have (a card, not raw text).

Keys are typed in bursts, as a terminal over SSH delivers them; the chat's file is read
back to check what was saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from chat_testing import TOOL_LOAD, cards, open_chat, replies, send, write_tools_file
from key_testing import burst
from tui_testing import TERMINAL_SIZE, wait_until

from engine.chat import AssistantResponse, Chat, ToolCall, ToolResultMessage, UserMessage
from engine.prediction import PredictionConfig, PredictionStats
from tui.app import LlamatermApp
from tui.screens.dialogs import ConfirmScreen
from tui.store.saved_chats import ChatStore, SavedChat, ToolOptions, ToolRun, UnknownCall
from tui.widgets.chat.message_views import AssistantMessageView, UserMessageView

MakeApp = Callable[..., LlamatermApp]

UNKNOWN_CALL = '[TOOL_REQUEST]{"name": "launch_rocket", "arguments": {}}[END_TOOL_REQUEST]'
UNKNOWN_GRAMMAR = 'root ::= "Let me try. " ' + json.dumps(UNKNOWN_CALL)


def saved_file(data_dir: Path) -> dict[str, object]:
    (path,) = sorted((data_dir / "chats").glob("*.json"))
    return json.loads(path.read_text())


def roles(data: dict[str, object]) -> list[str]:
    chat = data["chat"]
    assert isinstance(chat, dict)
    return [message["role"] for message in chat["messages"]]


def stats(stop: str) -> PredictionStats:
    return PredictionStats(stop_reason=stop, predicted_tokens_count=3)  # type: ignore[arg-type]


def chat_with_a_tool_call(data_dir: Path) -> SavedChat:
    """A saved chat: a question, a reply that called a tool, its result, the answer."""
    chat = Chat()
    chat.add_user_message("Note that llamas hum.")
    call = ToolCall(id="call-1", name="take_note", arguments={"note": "llamas hum"})
    chat.messages.append(AssistantResponse(content="Noting it.", tool_calls=[call]))
    chat.messages.append(
        ToolResultMessage(tool_call_id="call-1", name="take_note", content="noted: 10 characters")
    )
    chat.messages.append(AssistantResponse(content="Done: noted."))
    saved = SavedChat("20260101-000000-abcdef", chat=chat, title="Llamas hum")
    saved.stats = {1: stats("toolCalls"), 3: stats("eosFound")}
    saved.tool_runs = {"call-1": ToolRun(duration_sec=0.1, exit_code=0)}
    ChatStore(data_dir).save(saved)
    return saved


async def test_deleting_a_message_asks_then_saves_at_once(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Keep this")
        await send(pilot, "Drop this")
        before = saved_file(isolated)
        assert roles(before) == ["user", "assistant", "user", "assistant"]
        assert sorted(before["stats"]) == ["1", "3"]  # type: ignore[arg-type]

        # Into the conversation, up to "Drop this", d: asked first; n keeps it.
        await burst(pilot, "shift+tab", "up", "up", "d")
        assert screen.chat_view.has_focus or isinstance(app.screen, ConfirmScreen)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Drop this" in str(app.screen.question)
        await burst(pilot, "n")
        assert app.screen is screen
        assert roles(saved_file(isolated)) == ["user", "assistant", "user", "assistant"]

        await burst(pilot, "d", "y")
        await wait_until(pilot, lambda: len(screen.chat_view.messages()) == 3)
        after = saved_file(isolated)
        assert roles(after) == ["user", "assistant", "assistant"]
        texts = [m["content"] for m in after["chat"]["messages"]]  # type: ignore[index]
        assert "Drop this" not in texts and "Keep this" in texts
        # The second reply's stats moved with it.
        assert sorted(after["stats"]) == ["1", "2"]  # type: ignore[arg-type]
        shown = [type(v) for v in screen.chat_view.messages()]
        assert shown == [UserMessageView, AssistantMessageView, AssistantMessageView]

        # Reopened, the chat is as it was left.
        loaded, errors = ChatStore(isolated).load_all()
        assert errors == [] and len(loaded[0].chat.messages) == 3


async def test_deleting_a_reply_with_tool_calls_takes_their_results(
    make_app: MakeApp, isolated: Path
) -> None:
    chat_with_a_tool_call(isolated)
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        assert len(screen.chat_view.messages()) == 3  # the result is on the card
        # Up from the end: the answer, then the reply that called the tool.
        await burst(pilot, "shift+tab", "up", "up", "delete")
        assert isinstance(app.screen, ConfirmScreen)
        assert "1 tool call and their results" in str(app.screen.question)
        await burst(pilot, "enter")
        await wait_until(pilot, lambda: len(screen.chat_view.messages()) == 2)
        after = saved_file(isolated)
        assert roles(after) == ["user", "assistant"]
        assert after["tool_runs"] == {}
        assert sorted(after["stats"]) == ["1"]  # type: ignore[arg-type]
        # The history that is left is one a model can be sent again.
        saved = screen.current
        assert [type(m) for m in saved.chat.messages] == [UserMessage, AssistantResponse]
        assert not cards(screen)


async def test_the_delete_key_waits_for_a_selected_message_and_a_stopped_reply(
    make_app: MakeApp, isolated: Path
) -> None:
    chat_with_a_tool_call(isolated)
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        screen.chat_view.focus()
        await burst(pilot, "d")  # nothing selected yet: nothing to delete
        assert app.screen is screen
        assert len(saved_file(isolated)["chat"]["messages"]) == 4  # type: ignore[index]
        # In the message box, d is a letter.
        await burst(pilot, "tab", "d")
        assert screen.chat_input.text == "d"


async def test_a_reopened_chat_shows_a_call_to_an_unknown_tool_as_a_card(
    make_app: MakeApp, isolated: Path
) -> None:
    write_tools_file(isolated)
    prediction = PredictionConfig(temperature=0.0, seed=1, max_tokens=400, grammar=UNKNOWN_GRAMMAR)
    app = make_app(prediction=prediction, load=TOOL_LOAD)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        screen.current.tools = ToolOptions(enabled=True)
        await send(pilot, "Launch it.")
        assert [card.state for card in cards(screen)] == ["unknown"]

    data = saved_file(isolated)
    ((index, [call]),) = data["unknown_calls"].items()  # type: ignore[attr-defined]
    assert index == "1" and call["name"] == "launch_rocket"
    assert call["raw_text"].strip() == UNKNOWN_CALL

    again = make_app(prediction=prediction, load=TOOL_LOAD)
    async with again.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        (reply,) = replies(screen)
        (card,) = cards(screen)
        assert card.state == "unknown" and card.tool_name == "launch_rocket"
        status = str(card.query_one(".tool-card--status").render())
        assert status.startswith("unknown tool launch_rocket")
        assert "TOOL_REQUEST" not in reply.markdown.source
        assert reply.markdown.source.strip() == "Let me try."
        # What the model wrote stays in the chat it is sent.
        message = screen.current.chat.messages[-1]
        assert isinstance(message, AssistantResponse) and UNKNOWN_CALL in message.content


def test_unknown_calls_move_with_their_message() -> None:
    saved = SavedChat("x")
    saved.chat.add_user_message("a")
    saved.chat.messages.append(AssistantResponse(content="b " + UNKNOWN_CALL))
    saved.unknown_calls = {1: [UnknownCall("launch_rocket", UNKNOWN_CALL)]}
    saved.system_prompt = "Be brief."
    assert list(saved.unknown_calls) == [2]
    assert saved.delete_message(1) == [1]
    assert list(saved.unknown_calls) == [1]
    saved.delete_message(1)
    assert saved.unknown_calls == {}
