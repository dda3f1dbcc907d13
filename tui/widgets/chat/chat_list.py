"""The saved chats, newest first, with a search of their titles and messages.

A chat matches when each word of the search is in its title or in one of its messages
(reasoning and tool results included), in any case. A chat found inside a message
says where, on a second line: whose message, and the words around the match.
"""

from __future__ import annotations

from collections.abc import Callable
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

from tui.store.saved_chats import SearchMatch, search_chat

NO_MATCH = "no chats match"
"""What the list says when the search finds nothing (it would be blank otherwise)."""

LIST_WIDTH = 28
"""Columns of the list; titles longer than fits are cut with an ellipsis."""

ChatEntry = tuple[str, str]
"""(chat id, title)"""


ROLE_NAMES = {"user": "you", "assistant": "reply", "system": "system", "tool": "tool"}


def fit_title(title: str, width: int = LIST_WIDTH - 4) -> str:
    return title if len(title) <= width else title[: width - 1] + "…"


def where_matched(found: SearchMatch, width: int = LIST_WIDTH - 4) -> Content:
    """`you: …words around it` with the match stressed, cut to `width`."""
    label = f"{ROLE_NAMES.get(found.role, found.role)}: "
    room = width - len(label)
    snippet = found.snippet
    start, end = found.start, found.start + found.length
    if end > room:
        # Keep the match in view: cut the front.
        cut = end - room + 1
        snippet, start, end = "…" + snippet[cut + 1 :], start - cut, end - cut
    if len(snippet) > room:
        snippet = snippet[: room - 1] + "…"
    line = Content(label + snippet).stylize("dim")
    return line.stylize("bold reverse", len(label) + max(0, start), len(label) + min(end, room))


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
    text_of: Callable[[str], list[tuple[str, str]]] | None = None
    """The (role, text) of a chat's messages, by its id: what the search looks in
    besides the title (asked only while there is a search)."""

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
        return [entry for entry, _ in self._found()]

    def _found(self) -> list[tuple[ChatEntry, SearchMatch]]:
        query = self.search.value
        if not query.strip():
            return [(entry, SearchMatch()) for entry in self.entries]
        found = []
        for entry in self.entries:
            texts = self.text_of(entry[0]) if self.text_of is not None else []
            where = search_chat(entry[1], texts, query)
            if where is not None:
                found.append((entry, where))
        return found

    def _fill(self) -> None:
        found = self._found()
        visible = [entry for entry, _ in found]
        options = self.options

        def prompt(chat_id: str, title: str, where: SearchMatch) -> Content:
            line = Content.assemble(("● " if chat_id == self.current else "  "), fit_title(title))
            if not where.role:
                return line
            return Content.assemble(line, "\n  ", where_matched(where))

        options.set_options(
            Option(prompt(chat_id, title, where), id=chat_id) for (chat_id, title), where in found
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
