"""The saved chats, newest first, with a search by title."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

NO_MATCH = "no chats match"
"""What the list says when the search finds nothing (it would be blank otherwise)."""

LIST_WIDTH = 28
"""Columns of the list; titles longer than fits are cut with an ellipsis."""

ChatEntry = tuple[str, str]
"""(chat id, title)"""


def fit_title(title: str, width: int = LIST_WIDTH - 4) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


class ChatList(Vertical):
    """The screen sets `entries` and `current`; choosing, renaming and deleting go up as
    messages, and the screen does them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rename", "Rename", id="chat.rename", tooltip="Rename the highlighted chat"),
        Binding(
            "d,delete",
            "delete",
            "Delete",
            id="chat.delete",
            tooltip="Move the highlighted chat to the trash (chats/trash/ in the data directory)",
        ),
    ]

    DEFAULT_CSS = """
    ChatList {
        width: 28;
        height: 1fr;
        background: $surface;
        border-right: vkey $panel;
        & > Input { margin: 0 0 1 0; }
        & > OptionList {
            height: 1fr;
            border: none;
            background: $surface;
            padding: 0;
        }
        & > OptionList:focus { background-tint: $foreground 3%; }
    }
    """

    entries: reactive[tuple[ChatEntry, ...]] = reactive((), init=False)
    current: reactive[str] = reactive("", init=False)
    """The id of the chat shown on the right."""

    @dataclass
    class Opened(Message):
        chat_id: str

    @dataclass
    class RenameRequested(Message):
        chat_id: str

    @dataclass
    class DeleteRequested(Message):
        chat_id: str

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.search = Input(placeholder="search chats (Ctrl+F)", id="chat-search", compact=True)
        self.options = OptionList(id="chat-options", compact=True)

    def compose(self) -> ComposeResult:
        yield self.search
        yield self.options

    def watch_entries(self) -> None:
        self._fill()

    def watch_current(self) -> None:
        self._fill()

    @on(Input.Changed, "#chat-search")
    def _search_changed(self) -> None:
        self._fill()

    @on(Input.Submitted, "#chat-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        # Enter in the search opens the best match.
        event.stop()
        option = self.options.highlighted_option
        if option is not None and option.id:
            self.post_message(self.Opened(option.id))

    def visible_entries(self) -> list[ChatEntry]:
        words = self.search.value.casefold().split()
        return [e for e in self.entries if all(w in e[1].casefold() for w in words)]

    def _fill(self) -> None:
        visible = self.visible_entries()
        options = self.options
        options.set_options(
            Option(
                Content.assemble(("● " if chat_id == self.current else "  "), fit_title(title)),
                id=chat_id,
            )
            for chat_id, title in visible
        )
        if not visible and self.search.value.strip():
            options.add_option(Option(Content.styled(f"  {NO_MATCH}", "dim"), disabled=True))
        ids = [chat_id for chat_id, _ in visible]
        if self.current in ids and not self.search.value:
            options.highlighted = ids.index(self.current)
        elif ids:
            options.highlighted = 0

    def on_key(self, event: events.Key) -> None:
        # Down from the search goes into the list.
        if event.key == "down" and self.search.has_focus and self.options.option_count:
            self.options.focus()
            event.stop()

    @on(OptionList.OptionSelected, "#chat-options")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Opened(event.option.id))

    def highlighted_id(self) -> str | None:
        option = self.options.highlighted_option
        return option.id if option is not None else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("rename", "delete"):
            return self.highlighted_id() is not None
        return True

    def action_rename(self) -> None:
        chat_id = self.highlighted_id()
        if chat_id:
            self.post_message(self.RenameRequested(chat_id))

    def action_delete(self) -> None:
        chat_id = self.highlighted_id()
        if chat_id:
            self.post_message(self.DeleteRequested(chat_id))

    def focus_search(self) -> None:
        self.search.focus()

    def focus_list(self) -> None:
        """Focus the chats, so that the arrows and Enter pick one (the search if none)."""
        if self.visible_entries():
            self.options.focus()
        else:
            self.search.focus()
