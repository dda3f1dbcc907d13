"""A model without a chat template is called a base model where it matters: a new
chat, the model details, `llamaterm models info`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chat_testing import open_chat, send
from test_models_cli import parse, run, settings
from test_models_screen import local_models, open_models
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from tui_testing import NARROW_SIZE, TERMINAL_SIZE

from engine.settings import Settings
from tui.app import LlamatermApp
from tui.model_state import BASE_MODEL_NOTE
from tui.widgets.chat.chat_view import ChatView

__all__ = ["local_models", "settings"]  # fixtures, used by name

MakeApp = Callable[..., LlamatermApp]


@pytest.fixture
def base_model(make_tiny_model: Callable[..., Path]) -> Path:
    return make_tiny_model(filename="tiny-base.gguf", chat_template=None)


def note_of(view: ChatView) -> str:
    shown = view.query("#chat-note").results(Static)
    return "".join(str(note.render()) for note in shown if note.display)


async def test_a_new_chat_on_a_base_model_says_so(make_app: MakeApp, base_model: Path) -> None:
    app = make_app(model=str(base_model), mode="chat")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        assert app.model_state.base_model
        assert BASE_MODEL_NOTE in note_of(screen.chat_view)
        # Once the chat has a message, the hint and the note step aside.
        await send(pilot, "Hello")
        assert note_of(screen.chat_view) == ""
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert BASE_MODEL_NOTE in note_of(screen.chat_view)


async def test_a_chat_model_gets_no_note(make_app: MakeApp) -> None:
    app = make_app(mode="chat")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        assert not app.model_state.base_model
        assert note_of(screen.chat_view) == ""


async def test_the_model_details_say_base_model(
    make_app: MakeApp, local_models: Path, base_model: Path
) -> None:
    (local_models / "tiny-base.gguf").symlink_to(base_model)
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_models(pilot)
        keys = [row.key for row in screen.rows]
        table = screen.query_one("#models-table", DataTable)
        for key, wanted in (("tiny-base", True), ("tiny-test-model", False)):
            table.move_cursor(row=keys.index(key))
            await pilot.pause()
            shown = "\n".join(screen.query_one("#models-details").lines)  # type: ignore[attr-defined]
            assert (BASE_MODEL_NOTE in shown) is wanted, key


def test_models_info_says_base_model(
    settings: Settings,
    base_model: Path,
    tiny_model_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(parse("info", str(base_model)), settings, capsys)
    assert code == 0
    assert f"note  {BASE_MODEL_NOTE}" in out
    code, out, _ = run(parse("info", str(tiny_model_path)), settings, capsys)
    assert BASE_MODEL_NOTE not in out


def test_snapshot_new_chat_on_a_base_model(
    snap_compare: Callable[..., bool], make_app: MakeApp, base_model: Path
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)

    app = make_app(model=str(base_model), mode="chat")
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)
