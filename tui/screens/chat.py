"""The Chat screen: a placeholder until the chat screen lands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Middle
from textual.widgets import Static

from .base import LlamatermScreen


class ChatScreen(LlamatermScreen):
    MODE = "chat"

    def compose_body(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(
                "The chat screen is coming.\n"
                "Meanwhile: Complete for raw completion and terminal simulation,\n"
                "Models to load a model, Logs for what the model really saw.\n"
                "Ctrl+P opens the command palette.",
                id="chat-placeholder",
            )
