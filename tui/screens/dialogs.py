"""Small modals of the Chat screen: rename a chat, confirm a deletion, choose where an
export goes."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui.store.chat_export import ExportFormat, format_of, with_format

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


class ExportChatScreen(ModalScreen[Path | None]):
    """Where to write a chat: the path, proposed and editable; dismisses with it, or None.

    The name's ending chooses the format (.json: JSON, else Markdown); Ctrl+T switches
    it. The line under the path says which format, and whether a file would be replaced.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="export.cancel", tooltip="Export nothing"),
        Binding(
            "ctrl+t",
            "switch_format",
            "Format",
            id="export.format",
            tooltip="Switch between Markdown (.md) and JSON (.json)",
        ),
    ]

    DEFAULT_CSS = "ExportChatScreen {" + DIALOG_CSS + " & > Vertical { width: 76; } }"

    def __init__(self, title: str, path: Path) -> None:
        super().__init__()
        self.chat_title = title
        self.proposed = path

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = Content(f"Export “{self.chat_title}”")
            yield Input(str(self.proposed), id="export-path", compact=True)
            yield Static(id="export-format", classes="dialog--help")
            yield Static(
                "Enter exports · Ctrl+T Markdown/JSON · Escape cancels", classes="dialog--help"
            )

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = getattr(self.app, "cursor_blink", True)
        field.focus()
        self._describe(field.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._describe(event.value)

    def _describe(self, value: str) -> None:
        path = Path(value.strip()).expanduser() if value.strip() else None
        if path is None:
            text = "a path, please"
        else:
            chosen: ExportFormat = format_of(path)
            text = "as JSON" if chosen == "json" else "as Markdown"
            try:
                if path.is_dir():
                    text += ", into this folder"
                elif path.exists():
                    text += "; this file will be replaced"
            except (OSError, ValueError):
                pass  # a path that cannot be looked at: the export says why
        # The path is the person's text, not markup.
        self.query_one("#export-format", Static).update(Content(text))

    def action_switch_format(self) -> None:
        field = self.query_one(Input)
        path = Path(field.value.strip() or str(self.proposed))
        other: ExportFormat = "markdown" if format_of(path) == "json" else "json"
        field.value = str(with_format(path, other))
        field.cursor_position = len(field.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if value:
            self.dismiss(Path(value))

    def action_cancel(self) -> None:
        self.dismiss(None)
