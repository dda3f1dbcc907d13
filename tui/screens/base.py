"""What every llamaterm screen has: the top bar with the model status, and the footer."""

from __future__ import annotations

from typing import cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Input, TextArea

from tui.context import AppContext
from tui.model_state import ModelState
from tui.widgets.status.model_status import ModelStatus
from tui.widgets.status.top_bar import TopBar


class LlamatermScreen(Screen[None]):
    """A screen shown as one of the app's modes, built with the app's context.

    It reads what it needs from `context` and posts requests (tui.app_messages) for
    what the app owns; it never calls into the app.
    """

    MODE = ""
    """The app mode this screen is shown in; the top bar highlights it."""

    def __init__(self, context: AppContext) -> None:
        super().__init__()
        self.context = context

    def compose(self) -> ComposeResult:
        yield TopBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.watch(self.app, "model_state", self._show_model_state)
        if not self.context.cursor_blink:
            # Snapshot tests need a cursor that stays put.
            for widget in self.query("Input, TextArea"):
                cast(Input | TextArea, widget).cursor_blink = False

    async def wind_down(self) -> None:
        """The app is quitting: stop what runs and keep what it made. The app waits for
        this (a while at most) before it exits."""

    def _show_model_state(self, state: ModelState) -> None:
        self.query_one(ModelStatus).state = state
