"""Where the tools come from, said everywhere it matters; [chat] sets new chats' tools."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from chat_testing import NOTE_TOOL, open_chat
from textual.widgets import Static
from tui_testing import PREDICTION, TERMINAL_SIZE

from engine.load_config import LoadConfig
from engine.settings import ChatSettings
from tui.app import LlamatermApp
from tui.cli.main import main
from tui.config import AppSettings
from tui.screens.chat.chat_settings import ChatSettingsScreen

MakeApp = Callable[..., LlamatermApp]

WARNED_TOOL = """
[[tool]]
name = "echo"
description = "Say it back."
command = ["echo", "{text}"]

[tool.parameters]
type = "object"
required = ["text"]

[tool.parameters.properties.text]
type = "string"
"""
"""A valid tool with a warning: its placeholder could take an option."""


def app_with(tiny_model_path: Path, **chat: object) -> LlamatermApp:
    settings = AppSettings(
        prediction=PREDICTION,
        load=LoadConfig(context_length=512, threads=1),
        chat=ChatSettings.model_validate(chat),
    )
    app = LlamatermApp(
        settings, model=str(tiny_model_path), mode="chat", cursor_blink=False, autoload=False
    )
    app.animation_level = "none"
    return app


async def test_chat_section_sets_new_chats_tools_and_system_prompt(
    isolated: Path, tiny_model_path: Path
) -> None:
    app = app_with(
        tiny_model_path, tools=True, tool_choice="required", system_prompt="Use tools."
    )
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot, model=False)
        assert screen.current.tools.enabled and screen.current.tools.choice == "required"
        assert screen.current.system_prompt == "Use tools."


async def test_by_default_new_chats_have_no_tools(make_app: MakeApp) -> None:
    app = make_app(autoload=False, mode="chat")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot, model=False)
        assert not screen.current.tools.enabled and screen.current.tools.choice == "auto"


async def test_the_dialog_names_the_file_read_and_warnings_are_warnings(
    make_app: MakeApp, isolated: Path, tmp_path: Path
) -> None:
    config_tools = tmp_path / "config" / "llamaterm" / "tools.toml"
    config_tools.parent.mkdir(parents=True)
    config_tools.write_text(WARNED_TOOL)
    isolated.mkdir(parents=True, exist_ok=True)
    (isolated / "tools.toml").write_text(NOTE_TOOL.format(python=sys.executable))
    app = make_app(autoload=False, mode="chat")
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await open_chat(pilot, model=False)
        await pilot.press("ctrl+o")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ChatSettingsScreen)
        shown = str(dialog.query_one("#tools-file", Static).render())
        assert shown == f"tools from {config_tools}", "the config's directory comes first"
        notes = list(app._notifications)
        assert not [n for n in notes if n.severity == "error"]
        (warning,) = [n for n in notes if n.severity == "warning"]
        assert warning.title == "Tools file warnings"
        assert "{text}" in warning.message
        assert f"{isolated / 'tools.toml'}: not read" in warning.message


def test_help_names_the_tools_file(
    isolated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert f"tools        {isolated / 'tools.toml'}" in out
    assert f"config       {tmp_path / 'config' / 'llamaterm' / 'config.toml'}" in out
