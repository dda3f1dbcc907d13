"""The top line of every screen: the screens and their keys, and the model status."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from tui.widgets.status.model_status import ModelStatus

SCREENS: tuple[tuple[str, str], ...] = (
    ("chat", "Chat"),
    ("complete", "Complete"),
    ("models", "Models"),
    ("logs", "Logs"),
)
"""Modes in the order they are shown, with their titles; bindings are `screen.<mode>`."""


class ScreenTabs(Static):
    """`F1 Chat  F2 Complete  F3 Models  F4 Logs`, the current screen highlighted.

    The keys are read from the active bindings, so a keymap from the config shows here.
    """

    DEFAULT_CSS = """
    ScreenTabs {
        width: auto;
        height: 1;
    }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def on_mount(self) -> None:
        self.refresh_keys()

    def refresh_keys(self) -> None:
        keys: dict[str, str] = {}
        for active in self.screen.active_bindings.values():
            binding_id = active.binding.id or ""
            if binding_id.startswith("screen.") and binding_id not in keys:
                keys[binding_id] = self.app.get_key_display(active.binding)
        parts: list[Content | tuple[str, str] | str] = []
        for mode, title in SCREENS:
            key = keys.get(f"screen.{mode}", "")
            if mode == self.current:
                parts.append((f" {key} {title} ", "bold $block-cursor-foreground on $primary"))
            else:
                parts.append(Content.assemble(" ", (key, "$accent"), f" {title} "))
        self.update(Content.assemble(*parts))


class TopBar(Horizontal):
    DEFAULT_CSS = """
    TopBar {
        height: 1;
        dock: top;
        background: $panel;
        & > ModelStatus { width: 1fr; padding: 0 1; }
    }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield ScreenTabs(self.current)
        yield ModelStatus()
