"""Keys typed together take effect in the order they were typed, in every input.

Over SSH or from `tmux send-keys`, keys arrive in one read; Textual forwarded each at
once, and an editing key (Backspace, Left, Ctrl+U), which runs as a binding only after
a trip up the DOM, came after the characters typed behind it (tui.keys_in_order).
`burst` sends keys as a terminal does, without waiting between them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chat_testing import open_chat, replies, send
from key_testing import burst
from textual.widgets import DataTable, Input, TextArea
from tui_testing import NARROW_SIZE, TERMINAL_SIZE, wait_for_model, wait_for_prediction, wait_until

import tui.app as app_module
from engine.chat import AssistantResponse, UserMessage
from engine.load_config import LoadConfig
from engine.models import catalog
from engine.prediction import PredictionConfig
from tui.app import LlamatermApp
from tui.screens.chat.chat_settings import ChatSettingsScreen
from tui.screens.dialogs import RenameChatScreen
from tui.screens.models.model_dialogs import LoadSettingsScreen
from tui.screens.models.models_screen import ModelsScreen

MakeApp = Callable[..., LlamatermApp]

LONG = PredictionConfig(temperature=0.0, seed=1, max_tokens=-1)
BIG_CONTEXT = LoadConfig(context_length=16384, threads=1)

BURSTS: list[tuple[tuple[str, ...], str]] = [
    (("abc", "backspace", "XY"), "abXY"),
    (("hello", "ctrl+u", "world"), "world"),
    (("abc", "left", "XY"), "abXYc"),
    (("abc", "home", "X", "end", "Y"), "XabcY"),
    (("one two", "ctrl+w", "three"), "one three"),
    (("abcd", "left", "left", "delete", "X", "right", "Y"), "abXdY"),
]
"""Bursts of mixed printable and editing keys, and what the field holds after each."""

NUMBER_BURSTS: list[tuple[tuple[str, ...], str]] = [
    (("123", "backspace", "45"), "1245"),
    (("4096", "ctrl+u", "2048"), "2048"),
    (("123", "left", "45"), "12453"),
]
"""The same for a field that takes only digits."""


async def type_bursts(  # type: ignore[no-untyped-def]
    pilot, field: Input | TextArea, bursts: list[tuple[tuple[str, ...], str]] = BURSTS
) -> None:
    for keys, expected in bursts:
        if isinstance(field, Input):
            field.value = ""
        else:
            field.load_text("")
        field.focus()
        await pilot.pause()
        await burst(pilot, *keys)
        text = field.value if isinstance(field, Input) else field.text
        assert text == expected, (keys, text)


async def test_bursts_in_the_chat_input(make_app: MakeApp) -> None:
    app = make_app(mode="chat", autoload=False)
    async with app.run_test(size=NARROW_SIZE) as pilot:
        screen = await open_chat(pilot, model=False)
        await type_bursts(pilot, screen.chat_input)


async def test_bursts_in_the_completion_area(make_app: MakeApp) -> None:
    app = make_app(mode="complete", autoload=False)
    async with app.run_test(size=NARROW_SIZE) as pilot:
        await pilot.pause()
        await type_bursts(pilot, app.screen.complete_area)  # type: ignore[attr-defined]


async def test_bursts_in_the_terminal_command_line(make_app: MakeApp) -> None:
    app = make_app(mode="complete", autoload=False)
    async with app.run_test(size=NARROW_SIZE) as pilot:
        await pilot.pause()
        await burst(pilot, "ctrl+t")
        await type_bursts(pilot, app.screen.command_input)  # type: ignore[attr-defined]


async def test_bursts_in_the_dialogs(make_app: MakeApp) -> None:
    app = make_app(mode="chat", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot, model=False)
        # The settings dialog opens on the key, and what follows it goes into it.
        await burst(pilot, "ctrl+o", "ctrl+u", "Be brief")
        assert isinstance(app.screen, ChatSettingsScreen)
        prompt = app.screen.query_one(TextArea)
        assert prompt.text == "Be brief"
        await type_bursts(pilot, prompt)
        await burst(pilot, "escape")
        assert app.screen is screen

        screen.on_chat_list_rename_requested(
            screen.chat_list.RenameRequested(screen.current.id)  # type: ignore[call-arg]
        )
        await wait_until(pilot, lambda: isinstance(app.screen, RenameChatScreen))
        await pilot.pause()
        await type_bursts(pilot, app.screen.query_one(Input))


@pytest.fixture
def local_models(
    isolated: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    models = isolated / "models"
    models.mkdir(parents=True)
    os.symlink(tiny_model_path, models / "tiny-test-model.gguf")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    monkeypatch.setattr(catalog, "lmstudio_dirs", list)
    return models


async def test_bursts_in_load_settings_and_the_hub_search(
    make_app: MakeApp, local_models: Path
) -> None:
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await wait_until(pilot, lambda: bool(screen.rows))
        screen.query_one("#models-table", DataTable).focus()
        await pilot.pause()
        # The case: Ctrl+U then a number, typed at once, in the dialog the key opened.
        await burst(pilot, "e", "ctrl+u", "2048")
        assert isinstance(app.screen, LoadSettingsScreen)
        context = app.screen.query_one("#ls-context", Input)
        assert context.value == "2048"
        await type_bursts(pilot, context, NUMBER_BURSTS)
        await burst(pilot, "escape")
        assert app.screen is screen

        await burst(pilot, "slash", "tinx", "backspace", "y")
        search = screen.query_one("#hub-search", Input)
        assert search.has_focus and search.value == "tiny"
        await type_bursts(pilot, search)


async def test_enter_then_typing_leaves_the_new_text_in_the_box(make_app: MakeApp) -> None:
    app = make_app(mode="chat")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await burst(pilot, "first", "enter", "second")
        assert screen.chat_input.text == "second"
        await wait_for_prediction(pilot)
        assert [m.role for m in screen.current.chat.messages] == ["user", "assistant"]
        assert screen.current.chat.messages[0].content == "first"  # type: ignore[union-attr]
        assert screen.chat_input.text == "second"


async def test_escape_new_chat_and_a_message_typed_at_once_keep_the_message(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app(mode="chat", prediction=LONG, load=BIG_CONTEXT)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Go on forever", wait=False)
        await wait_until(pilot, lambda: screen.status.phase == "generating")
        await wait_until(pilot, lambda: bool(replies(screen)) and bool(replies(screen)[-1].content))
        first = screen.current

        await burst(pilot, "escape", "ctrl+n", "Hello again", "enter")
        # The new chat got the message, and its reply runs (until stopped: it is long).
        await wait_until(
            pilot, lambda: screen.current is not first and screen.status.phase == "generating"
        )
        await burst(pilot, "escape")
        await wait_for_prediction(pilot)

        stopped = first.chat.messages[-1]
        assert isinstance(stopped, AssistantResponse)
        assert first.stats[1].stop_reason == "userStopped"
        second = screen.current
        assert isinstance(second.chat.messages[0], UserMessage)
        assert second.chat.messages[0].content == "Hello again"
        assert screen.chat_input.text == ""
        saved = json.loads((isolated / "chats" / f"{second.id}.json").read_text())
        assert saved["chat"]["messages"][0]["content"] == "Hello again"


async def test_a_message_sent_while_the_model_loads_is_answered_once_it_has(
    make_app: MakeApp, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    resolve = app_module.resolve_load

    def slow_resolve(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return resolve(*args, **kwargs)

    monkeypatch.setattr(app_module, "resolve_load", slow_resolve)
    app = make_app(mode="chat", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot, model=False)
        app.load_model(str(tiny_model_path))
        await wait_until(pilot, lambda: app.model_state.status == "loading")
        await burst(pilot, "Are you there?", "enter")
        assert screen.chat_input.text == ""
        assert [m.role for m in screen.current.chat.messages] == ["user"]
        assert any("loaded" in n.message for n in app._notifications)
        release.set()
        await wait_for_model(pilot)
        await wait_until(pilot, lambda: len(screen.current.chat.messages) == 2)
        await wait_for_prediction(pilot)
        assert screen.current.chat.messages[0].content == "Are you there?"  # type: ignore[union-attr]
