"""The Chat screen driven with the real tiny model: send, stop, regenerate, edit, switch,
restart, corrupt files, settings, rename and delete, copy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from chat_testing import open_chat, replies, send
from textual import events
from textual.message import Message
from tui_testing import NARROW_SIZE, TERMINAL_SIZE, wait_for_prediction, wait_until

from engine.chat import AssistantResponse, SystemPrompt, UserMessage
from engine.load_config import LoadConfig
from engine.prediction import PredictionConfig
from tui.screens.chat.chat_settings import ChatSettingsScreen
from tui.screens.chat.reply_stream import RoundEnded
from tui.screens.dialogs import ConfirmScreen, RenameChatScreen
from tui.store.saved_chats import ChatStore
from tui.widgets.chat.chat_list import NO_MATCH, ChatList
from tui.widgets.chat.message_views import UserMessageView

from tui.app import LlamatermApp  # isort: skip

MakeApp = Callable[..., LlamatermApp]

LONG = PredictionConfig(temperature=0.0, seed=1, max_tokens=-1)
"""Runs until the context is full: long enough to be stopped by hand."""
BIG_CONTEXT = LoadConfig(context_length=16384, threads=1)


def saved_files(data_dir: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((data_dir / "chats").glob("*.json"))]


async def test_send_streams_a_reply_and_saves_every_message(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await pilot.press(*"Hello", "ctrl+j", *"there", "enter")
        await wait_for_prediction(pilot)

        messages = screen.current.chat.messages
        assert isinstance(messages[0], UserMessage) and messages[0].content == "Hello\nthere"
        assert isinstance(messages[1], AssistantResponse) and messages[1].content
        [reply] = replies(screen)
        assert reply.content == messages[1].content
        # One final render with the whole text, after the stream.
        assert reply.markdown.source == reply.content
        assert reply.stats is not None
        assert reply.stats.predicted_tokens_count == 24
        assert reply.stats.stop_reason == "maxPredictedTokensReached"
        assert "24 tokens" in str(reply.query_one(".message--stats").render())
        assert screen.chat_input.text == ""
        [saved] = saved_files(isolated)
        assert [m["role"] for m in saved["chat"]["messages"]] == ["user", "assistant"]  # type: ignore[index]
        assert saved["stats"]["1"]["predicted_tokens_count"] == 24  # type: ignore[index]


async def test_escape_stops_at_once_and_typing_goes_on_meanwhile(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app(prediction=LONG, load=BIG_CONTEXT)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Go on forever", wait=False)
        await wait_until(pilot, lambda: screen.status.phase == "generating")
        # Saved as soon as it was sent, before the reply.
        [saved] = saved_files(isolated)
        assert [m["role"] for m in saved["chat"]["messages"]] == ["user"]  # type: ignore[index]
        assert saved["title"] == "Go on forever"
        # The person types the next message while the model writes.
        loop = asyncio.get_running_loop()
        for key in "next":
            started = loop.time()
            app._driver.send_message(events.Key(key, key))  # type: ignore[union-attr]
            while not screen.chat_input.text.endswith(key):
                assert loop.time() - started < 1.0, "typing lags behind the model"
                await asyncio.sleep(0.005)
        await wait_until(pilot, lambda: len(replies(screen)[-1].content) > 20)
        await pilot.press("escape")
        await wait_for_prediction(pilot)
        [reply] = replies(screen)
        assert reply.stats is not None and reply.stats.stop_reason == "userStopped"
        assert 0 < reply.stats.predicted_tokens_count < 16384 - 100
        assert screen.chat_input.text == "next"
        [saved] = saved_files(isolated)
        assert saved["chat"]["messages"][1]["content"] == reply.content  # type: ignore[index]


async def test_regenerate_replaces_the_last_reply(make_app: MakeApp) -> None:
    app = make_app()
    ended: list[Message] = []
    hook = lambda m: ended.append(m) if isinstance(m, RoundEnded) else None
    async with app.run_test(size=TERMINAL_SIZE, message_hook=hook) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hello")
        first = replies(screen)[0].content
        await pilot.press("ctrl+r")
        await wait_for_prediction(pilot)
        assert {m.tag for m in ended} == {"chat-1", "chat-2"}  # type: ignore[attr-defined]
        roles = [m.role for m in screen.current.chat.messages]
        assert roles == ["user", "assistant"]
        assert len(replies(screen)) == 1
        # Temperature 0 and a fixed seed: the same words again.
        assert replies(screen)[0].content == first
        assert set(screen.current.stats) == {1}


async def test_edit_the_last_message_and_send_it_again(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hello")
        await pilot.press(*"draft")
        await pilot.press("ctrl+t")
        assert screen.chat_input.editing and screen.chat_input.text == "Hello"
        # Escape gives the draft back.
        await pilot.press("escape")
        assert not screen.chat_input.editing and screen.chat_input.text == "draft"
        await pilot.press("ctrl+t")
        screen.chat_input.set_text("Goodbye")
        await pilot.press("enter")
        await wait_for_prediction(pilot)
        messages = screen.current.chat.messages
        assert [m.role for m in messages] == ["user", "assistant"]
        assert messages[0].content == "Goodbye"
        users = [v.text for v in screen.chat_view.messages() if isinstance(v, UserMessageView)]
        assert users == ["Goodbye"]
        assert screen.current.title == "Goodbye"


async def test_switch_chats_from_the_list_and_by_search(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "About llamas")
        first = screen.current
        await pilot.press("ctrl+n")
        assert screen.current is not first and screen.current.is_empty
        await send(pilot, "About alpacas")
        second = screen.current
        assert [title for _, title in screen.chat_list.entries] == ["About alpacas", "About llamas"]

        # Search by title, Enter opens the match.
        await pilot.press("ctrl+f", *"llam", "enter")
        assert screen.current is first
        assert [v.text for v in screen.chat_view.messages() if isinstance(v, UserMessageView)] == [
            "About llamas"
        ]
        assert screen.chat_input.has_focus

        # Arrows and Enter in the list.
        screen.chat_list.search.value = ""
        screen.chat_list.options.focus()
        await pilot.press("home", "enter")
        assert screen.current is second

        # A new chat while the last one is still empty stays that one chat.
        await pilot.press("ctrl+n")
        empty = screen.current
        await pilot.press("ctrl+n")
        assert screen.current is empty
        assert len(screen.chat_list.entries) == 3


async def test_switching_while_a_reply_runs_stops_it_first(make_app: MakeApp) -> None:
    app = make_app(prediction=LONG, load=BIG_CONTEXT)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "One", wait=False)
        await wait_until(pilot, lambda: screen.status.phase == "generating")
        await pilot.press("escape")
        await wait_for_prediction(pilot)
        first = screen.current
        await pilot.press("ctrl+n")
        await send(pilot, "Two", wait=False)
        await wait_until(pilot, lambda: screen.status.phase == "generating")
        screen.chat_list.post_message(ChatList.Opened(first.id))
        await wait_until(pilot, lambda: screen.current is first)
        assert not screen.generating
        two = next(c for c in screen.chats.values() if c.title == "Two")
        last = two.chat.messages[-1]
        assert isinstance(last, AssistantResponse)
        assert two.stats[1].stop_reason == "userStopped"


async def test_the_chats_are_restored_after_a_restart(make_app: MakeApp, isolated: Path) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await open_chat(pilot)
        screen = await send(pilot, "Remember me")
        await pilot.press("ctrl+n")
        await send(pilot, "Newest")
        reply = replies(screen)[0].content
        stats = replies(screen)[0].stats
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot, model=False)
        assert screen.current.title == "Newest", "the chat open at the end opens again"
        [view] = replies(screen)
        assert view.content == reply and view.stats == stats
        assert view.markdown.source == reply
        assert [title for _, title in screen.chat_list.entries] == ["Newest", "Remember me"]


async def test_a_corrupt_chat_file_is_set_aside_and_the_others_load(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await open_chat(pilot)
        await send(pilot, "Survivor")
    chats = isolated / "chats"
    (chats / "20200101-000000-bad000.json").write_text('{"schema_version": 1, "chat": ')
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot, model=False)
        notes = [n for n in app._notifications if "not loaded" in n.title]
        assert len(notes) == 1 and "20200101-000000-bad000.json" in notes[0].message
        assert notes[0].severity == "error"
        assert [title for _, title in screen.chat_list.entries] == ["Survivor"]
    assert (chats / "20200101-000000-bad000.json.corrupt-1").exists()


async def test_settings_modal_sets_the_system_prompt_and_sampling(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+o")
        modal = app.screen
        assert isinstance(modal, ChatSettingsScreen)
        modal.query_one("#system-prompt").load_text("You are a llama.")  # type: ignore[attr-defined]
        modal.query_one("#field-temperature").value = "x"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        assert app.screen is modal and "temperature" in str(
            modal.query_one("#settings-error").render()
        )
        modal.query_one("#field-temperature").value = "0.5"  # type: ignore[attr-defined]
        modal.query_one("#field-min_p").value = "0.1"  # type: ignore[attr-defined]
        modal.query_one("#thinking").value = False  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen
        saved = screen.current
        assert saved.system_prompt == "You are a llama."
        # Only what differs from the config file is kept with the chat.
        assert saved.prediction.model_dump(exclude_none=True) == {
            "temperature": 0.5,
            "min_p": 0.1,
            "enable_thinking": False,
        }
        assert screen.chat_view.query("SystemPromptView")
        await send(pilot, "Hi")
        assert isinstance(saved.chat.messages[0], SystemPrompt)
        [file] = saved_files(isolated)
        assert file["prediction"] == {"temperature": 0.5, "minPSampling": 0.1, "enableThinking": False}
        await pilot.press("ctrl+o", "escape")
        assert app.screen is screen


async def test_rename_delete_and_copy(make_app: MakeApp, isolated: Path) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Keep")
        await pilot.press("ctrl+y")
        assert app.clipboard == replies(screen)[0].content

        # The selected message instead, with the conversation focused.
        screen.chat_view.focus()
        await pilot.press("up", "up")
        await pilot.press("ctrl+y")
        assert app.clipboard == "Keep"

        screen.chat_list.options.focus()
        await pilot.press("r")
        assert isinstance(app.screen, RenameChatScreen)
        await pilot.press("ctrl+u", *"Renamed", "enter")
        assert screen.current.title == "Renamed" and screen.current.named
        await send(pilot, "More")
        assert screen.current.title == "Renamed", "a chosen title stays"
        assert saved_files(isolated)[0]["title"] == "Renamed"

        screen.chat_list.options.focus()
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert len(saved_files(isolated)) == 1
        await pilot.press("d")
        await pilot.press("y")
        await pilot.pause()
        assert saved_files(isolated) == []
        assert len(list((isolated / "chats" / "trash").glob("*.json"))) == 1
        assert screen.current.is_empty and screen.chats == {}
    assert ChatStore(isolated).load_all() == ([], [])


async def test_send_without_a_model_warns_and_keeps_the_text(make_app: MakeApp) -> None:
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot, model=False)
        await pilot.press(*"hi", "enter")
        assert not screen.generating
        assert any("No model" in n.title for n in app._notifications)
        assert screen.chat_input.text == "hi"
        assert screen.chats == {}


async def test_palette_commands_and_a_rebound_send_key(make_app: MakeApp) -> None:
    app = make_app(keymap={"chat.send": "ctrl+s", "chat.new": "f8"})
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in ("chat: new", "chat: regenerate", "chat: edit", "chat: copy",
                      "chat: settings", "chat: list", "chat: find", "chat: send"):
            assert title in titles, title
        assert "chat: stop" not in titles, "stop only while a reply runs"

        # Enter is a new line now; Ctrl+S sends.
        await pilot.press(*"one", "enter", *"two")
        assert screen.chat_input.text == "one\ntwo" and not screen.chats
        await pilot.press("ctrl+s")
        await wait_for_prediction(pilot)
        assert [m.role for m in screen.current.chat.messages] == ["user", "assistant"]
        first = screen.current
        await pilot.press("f8")
        assert screen.current is not first

        # "chat: open <title>" for every saved chat, from the screen's own provider.
        from textual.command import CommandPalette

        await pilot.press("ctrl+p")
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        await pilot.press(*"open one")
        await wait_until(pilot, lambda: palette._list_visible)  # type: ignore[attr-defined]
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.current is first)


def test_every_chat_binding_has_an_id_and_a_tooltip() -> None:
    from tui.screens.chat.chat_screen import ChatScreen
    from tui.screens.dialogs import ConfirmScreen, RenameChatScreen
    from tui.widgets.chat.chat_input import ChatInput
    from tui.widgets.chat.chat_view import ChatView
    from tui.widgets.chat.tool_card import ToolCard

    for cls in (ChatScreen, ChatList, ChatView, ChatInput, ToolCard, ChatSettingsScreen,
                RenameChatScreen, ConfirmScreen):
        for binding in cls.__dict__.get("BINDINGS", []):
            assert binding.id and "." in binding.id, (cls.__name__, binding)
            assert binding.tooltip, (cls.__name__, binding)


async def test_an_empty_search_says_no_chats_match(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "About llamas")
        await pilot.press("ctrl+f", *"zebra")
        options = screen.chat_list.options
        assert options.option_count == 1
        only = options.get_option_at_index(0)
        assert only.disabled and str(only.prompt).strip() == NO_MATCH
        assert screen.chat_list.highlighted_id() is None
        await pilot.press("enter")
        await pilot.press(*["backspace"] * 5)
        assert [str(options.get_option_at_index(0).prompt).strip()] == ["● About llamas"]


async def test_ctrl_l_shows_the_list_and_moves_the_focus_into_it(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=NARROW_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "About llamas")
        assert not screen.chat_list.display, "at 80 columns the list steps aside"
        await pilot.press("ctrl+l")
        assert screen.chat_list.display
        assert screen.chat_list.options.has_focus
        await pilot.press("ctrl+l")
        assert not screen.chat_list.display and screen.chat_input.has_focus


async def test_a_message_longer_than_the_context_is_refused_before_sending(
    make_app: MakeApp,
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot)
        long_text = "llama " * 600  # the tiny model loads with 512 tokens of context
        screen.chat_input.set_text(long_text)
        screen.chat_input.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert screen.current.chat.messages == [] and not screen.generating
        assert screen.chat_input.text == long_text, "the text stays to be shortened"
        (note,) = [n for n in app._notifications if n.title == "Message too long"]
        assert "the context holds 512" in note.message and "load settings" in note.message
