"""The message box: several lines, Enter sends, Ctrl+J (or Shift/Alt+Enter) starts a new line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import TextArea

OWN_ACTIONS = ("submit", "newline")

PLACEHOLDER = "Message the model · Enter sends · Ctrl+J new line"


class ChatInput(TextArea):
    """Posts `ChatInput.Submitted` with the text on Enter; the screen decides what to do.

    Ctrl+J is the new-line key that works everywhere (it is the terminal's line
    feed, so tmux and SSH pass it through); Shift+Enter and Alt+Enter work too in
    terminals that report them.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # Both are run by `_on_key` (see there); the bindings give them their place in
        # the footer and the palette, and an id for the keymap.
        Binding(
            "enter",
            "submit",
            "Send",
            id="chat.send",
            tooltip="Send the message (while editing: resend it in place of the old one)",
        ),
        Binding(
            "ctrl+j,shift+enter,alt+enter",
            "newline",
            "New line",
            id="chat.newline",
            tooltip="Start a new line in the message",
            show=False,
        ),
    ]

    DEFAULT_CSS = """
    ChatInput {
        height: auto;
        min-height: 3;
        max-height: 10;
        border: round $panel-lighten-2;
        border-title-color: $accent;
        padding: 0 1;
        &:focus { border: round $primary; }
        &.-editing { border: round $accent; }
    }
    """

    editing: reactive[bool] = reactive(False, init=False)
    """The person is editing their last message, to send it again."""

    @dataclass
    class Submitted(Message):
        chat_input: ChatInput
        text: str

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("show_line_numbers", False)
        kwargs.setdefault("placeholder", PLACEHOLDER)
        kwargs.setdefault("tab_behavior", "focus")
        super().__init__(**kwargs)

    async def _on_key(self, event: events.Key) -> None:
        # Sending and new lines happen here: TextArea's own key handler would take
        # Enter as a new line before any binding saw it. (That keys typed behind it
        # wait their turn is the app's doing: tui.keys_in_order.)
        active = self.screen.active_bindings.get(event.key)
        if active is not None and active.node is self and active.binding.action in OWN_ACTIONS:
            event.stop()
            event.prevent_default()
            await self.run_action(active.binding.action)

    def watch_editing(self, editing: bool) -> None:
        self.set_class(editing, "-editing")
        self.border_title = "editing your last message · Enter resends · Esc cancels" if editing else ""

    def action_submit(self) -> None:
        self.post_message(self.Submitted(self, self.text))

    def action_newline(self) -> None:
        if not self.read_only:
            self.replace("\n", *self.selection, maintain_selection_offset=False)

    def set_text(self, text: str) -> None:
        """Replace the text, with the cursor at its end."""
        self.load_text(text)
        self.move_cursor(self.document.end)
