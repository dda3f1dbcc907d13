"""Text from people, files and models is shown as it is, never read as markup.

Rich and Textual read "[b]" and "[/]" in plain strings as style tags; "[/]" with
nothing to close raises MarkupError, which ends the app. The palette built its help
from key names (the `/` key), and model names, file names, chat titles, error
messages and log rows reached labels, tables, dialog titles and notifications as
markup. A file name cannot hold "/", but "[b]" in one was eaten, and
"[@click=app.quit]" made a link that quits.
"""


from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gguf_factory import write_tiny_gguf
from textual.command import CommandPalette
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_testing import TERMINAL_SIZE, wait_until

from engine.chat import Chat
from engine.models import catalog
from tui.app import LlamatermApp, known_binding_classes
from tui.palette import binding_help
from tui.screens.chat.chat_screen import ChatScreen
from tui.screens.dialogs import ConfirmScreen
from tui.screens.models.model_dialogs import LoadSettingsScreen
from tui.screens.models.models_screen import ModelsScreen
from tui.store.saved_chats import ChatStore, SavedChat, new_chat_id

MakeApp = Callable[..., LlamatermApp]

ODD_TITLE = "[/] odd [b]title"
ODD_FILE = "[@click=app.quit]y"
"""A file name that was a link to quitting the app."""


def screen_text(app: LlamatermApp) -> str:
    """What the terminal shows now, as plain text."""
    strips = app.screen._compositor.render_strips()  # noqa: SLF001
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


@pytest.fixture
def odd_models(isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Models whose file names and names look like markup, and a broken one."""
    models = isolated / "models"
    models.mkdir(parents=True)
    write_tiny_gguf(models / "[b]x.gguf", name="[b]bold name")
    write_tiny_gguf(models / f"{ODD_FILE}.gguf", name="[/]y name")
    (models / "[on]broken.gguf").write_bytes(b"GGUF but not really")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    monkeypatch.setattr(catalog, "lmstudio_dirs", list)
    return models


@pytest.fixture
def odd_chat(isolated: Path) -> SavedChat:
    saved = SavedChat(new_chat_id(), Chat(), title=ODD_TITLE, named=True)
    saved.chat.add_user_message("[/] a message [b]with tags")
    ChatStore(isolated).save(saved)
    return saved


async def open_palette(pilot: Pilot[Any], query: str = "") -> CommandPalette:
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
    palette = app.screen
    assert isinstance(palette, CommandPalette)
    if query:
        await pilot.press(*query)
    await wait_until(pilot, lambda: palette._list_visible)  # type: ignore[attr-defined]
    await pilot.pause(0.3)
    return palette


async def test_the_palette_opens_on_every_screen(
    make_app: MakeApp, odd_models: Path, odd_chat: SavedChat
) -> None:
    app = make_app(mode="chat", model=str(odd_models / f"{ODD_FILE}.gguf"))
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_until(pilot, lambda: app.model_state.status == "loaded")
        for mode in ("chat", "complete", "models", "logs"):
            app.switch_mode(mode)
            await pilot.pause(0.2)
            await open_palette(pilot)
            assert app.is_running
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, CommandPalette))

        # What comes from files and chats reads as it is, in titles and help.
        app.switch_mode("models")
        await pilot.pause(0.2)
        await open_palette(pilot, "load [")
        shown = screen_text(app)
        assert "model: load [b]x" in shown and f"model: load {ODD_FILE}" in shown, shown
        await pilot.press("escape")
        app.switch_mode("chat")
        await pilot.pause(0.2)
        await open_palette(pilot, "open")
        assert f"chat: open {ODD_TITLE}" in screen_text(app)
        await pilot.press("escape")


async def test_every_bindings_help_renders_as_written(make_app: MakeApp) -> None:
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE):
        for cls in known_binding_classes():
            for binding in cls.__dict__.get("BINDINGS", []):
                key = app.get_key_display(binding)
                help_text = binding_help(binding, key)
                written = f"{binding.tooltip or binding.description}  [{key}]"
                assert Content.from_markup(help_text).plain == written, (cls, binding)


async def test_model_files_named_like_markup_show_as_they_are(
    make_app: MakeApp, odd_models: Path
) -> None:
    app = make_app(mode="models", model=str(odd_models / f"{ODD_FILE}.gguf"))
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: app.model_state.status == "loaded")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await wait_until(pilot, lambda: len(screen.rows) >= 3)
        await pilot.pause()
        table = screen.query_one("#models-table", DataTable)
        table.focus()
        shown = screen_text(app)
        assert "[b]bold name" in shown and "[/]y name" in shown, shown
        assert "[/]y name" in shown.splitlines()[0], "the top bar names the model"
        for row, model in enumerate(screen.rows):
            table.move_cursor(row=row)
            await pilot.pause()
            assert model.key in screen_text(app), model.key

        # Their load settings dialogs, and the notification when they are saved.
        for key in ("[b]x", ODD_FILE):
            row = next(i for i, r in enumerate(screen.rows) if r.key == key)
            table.move_cursor(row=row)
            await pilot.pause()
            await pilot.press("e")
            await wait_until(pilot, lambda: isinstance(app.screen, LoadSettingsScreen))
            await pilot.pause()
            assert f"Load settings: {key}" in screen_text(app)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: app.screen is screen)
            await pilot.pause(0.2)
            assert f"Load settings for {key}" in screen_text(app)  # the toast wraps after it
            assert all(not note.markup for note in app._notifications)
            app.clear_notifications()
            await pilot.pause()

        # A file that will not load: the error names it as it is.
        row = next(i for i, r in enumerate(screen.rows) if r.key == "[on]broken")
        table.move_cursor(row=row)
        await pilot.pause()
        await pilot.press("l")
        await wait_until(pilot, lambda: app.model_state.status == "failed")
        await pilot.pause(0.2)
        assert "[on]broken" in screen_text(app)

        # The Logs screen's rows carry the model's name.
        app.switch_mode("logs")
        await pilot.pause(0.5)
        # Rows come in as plain text (the table would read str cells as markup); the
        # screen follows the newest rows, so look the row up in the table itself.
        table = app.screen.query_one(DataTable)
        cells = [str(c) for i in range(table.row_count) for c in table.get_row_at(i)]
        assert any("loaded [/]y name" in cell for cell in cells), cells[-12:]
        assert app.is_running


async def test_a_chat_titled_like_markup_shows_as_it_is(
    make_app: MakeApp, odd_chat: SavedChat
) -> None:
    app = make_app(mode="chat", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert ODD_TITLE[:12] in shown and "[/] a message [b]with tags" in shown, shown
        screen.on_chat_list_delete_requested(
            screen.chat_list.DeleteRequested(odd_chat.id)  # type: ignore[call-arg]
        )
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        assert ODD_TITLE in screen_text(app)
        await pilot.press("n")
