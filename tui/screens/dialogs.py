"""Small modals of the Chat screen: rename a chat, confirm a deletion."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

DIALOG_CSS = """
    align: center middle;
    & > Vertical {
        width: 60;
        max-width: 100%;
        height: auto;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    .dialog--help { color: $text-muted; }
"""


class RenameChatScreen(ModalScreen[str | None]):
    """Dismisses with the new title, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="rename.cancel", tooltip="Keep the old title"),
    ]

    DEFAULT_CSS = "RenameChatScreen {" + DIALOG_CSS + "}"

    def __init__(self, title: str) -> None:
        super().__init__()
        self.old_title = title

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Rename chat"
            yield Input(self.old_title, id="rename-title", compact=True)
            yield Static("Enter saves · Escape cancels", classes="dialog--help")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = getattr(self.app, "cursor_blink", True)
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        title = event.value.strip()
        self.dismiss(title or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y or Enter says yes, n or Escape says no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", id="confirm.yes", tooltip="Yes, do it"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="No, leave it"),
    ]

    DEFAULT_CSS = "ConfirmScreen {" + DIALOG_CSS + "}"

    def __init__(self, title: str, question: str) -> None:
        super().__init__()
        self.title_text = title
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = Content(self.title_text)
            # The question names a chat: its title is the person's text, not markup.
            yield Static(Content(self.question))
            yield Static("y yes · n no", classes="dialog--help")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
