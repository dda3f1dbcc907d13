"""Checkboxes read on or off without colour: `[x] on` / `[ ] off`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_models_screen import local_models, open_models
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_testing import NARROW_SIZE

from tui.app import LlamatermApp
from tui.screens.models.model_dialogs import LoadSettingsScreen
from tui.widgets.state_checkbox import StateCheckbox

__all__ = ["local_models"]  # a fixture, used by name

MakeApp = Callable[..., LlamatermApp]
SnapCompare = Callable[..., bool]


class Boxes(App[None]):
    def compose(self) -> ComposeResult:
        yield StateCheckbox(value=False, id="plain")
        yield StateCheckbox("tools", True, id="named")


def drawn(box: StateCheckbox) -> str:
    return str(box.render())


async def test_the_state_is_in_the_text() -> None:
    app = Boxes()
    async with app.run_test() as pilot:
        plain = app.query_one("#plain", StateCheckbox)
        named = app.query_one("#named", StateCheckbox)
        assert drawn(plain).strip() == "[ ] off"
        assert drawn(named).strip() == "[x] tools"
        plain.focus()
        await pilot.press("space")
        assert plain.value and drawn(plain).strip() == "[x] on"
        named.value = False
        await pilot.pause()
        assert drawn(named).strip() == "[ ] tools"


async def test_load_settings_say_which_switches_are_off(
    make_app: MakeApp, local_models: Path
) -> None:
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=NARROW_SIZE) as pilot:
        await open_models(pilot)
        await pilot.press("e")
        dialog = app.screen
        assert isinstance(dialog, LoadSettingsScreen)
        states = {box.id: drawn(box).strip() for box in dialog.query(StateCheckbox)}
        # The defaults: flash attention and mlock off, mmap on.
        assert states == {"ls-flash": "[ ] off", "ls-mmap": "[x] on", "ls-mlock": "[ ] off"}


def test_snapshot_load_settings_in_256_colours(
    snap_compare: SnapCompare, make_app: MakeApp, local_models: Path
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.theme = "llamaterm-256"
        await open_models(pilot)
        pilot.app.screen.query_one("#models-table", DataTable).move_cursor(row=0)
        await pilot.press("e")

    app = make_app(mode="models", autoload=False)
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)
