"""What every llamaterm screen has: the top bar with the model status, and the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Input, TextArea

from tui.model_state import ModelState
from tui.widgets.status.model_status import ModelStatus
from tui.widgets.status.top_bar import TopBar

if TYPE_CHECKING:
    from tui.app import LlamatermApp


class LlamatermScreen(Screen[None]):
    """A screen shown as one of the app's modes (see `LlamatermApp.MODES`)."""

    MODE = ""
    """The app mode this screen is shown in; the top bar highlights it."""

    @property
    def llamaterm(self) -> LlamatermApp:
        return cast("LlamatermApp", self.app)

    def compose(self) -> ComposeResult:
        yield TopBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.watch(self.app, "model_state", self._show_model_state)
        if not self.llamaterm.cursor_blink:
            # Snapshot tests need a cursor that stays put.
            for widget in self.query("Input, TextArea"):
                cast(Input | TextArea, widget).cursor_blink = False

    def _show_model_state(self, state: ModelState) -> None:
        self.query_one(ModelStatus).state = state
