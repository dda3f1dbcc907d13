"""The conversation: messages top to bottom, following the end while a reply streams.

With the focus, Up and Down select a message; Ctrl+Y copies it (the screen's key) and
d deletes it (the screen asks first). The view knows which message of the chat each
widget shows (a reply's tool results are on its cards, not widgets of their own), so
a deletion names the message, not the widget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from engine.chat import AssistantResponse, SystemPrompt, ToolResultMessage, UserMessage
from tui.model_state import BASE_MODEL_NOTE as MODEL_NOTE
from tui.store.saved_chats import SavedChat, UnknownCall
from tui.widgets.chat.message_views import (
    AssistantMessageView,
    MessageView,
    SystemPromptView,
    UserMessageView,
)
from tui.widgets.chat.tool_card import ToolCard, format_arguments

EMPTY_HINT = (
    "A new chat. Write below: Enter sends, Ctrl+J starts a new line.\n"
    "Ctrl+O sets the system prompt, sampling and tools of this chat."
)

BASE_MODEL_NOTE = f"{MODEL_NOTE} (F2)"
"""Said in a new chat when the model has no chat template (its replies echo the prompt)."""


def without_unknown_calls(content: str, calls: list[UnknownCall]) -> str:
    """`content` as shown: the raw text of each call to an unknown tool is on a card."""
    for call in calls:
        content = content.replace(call.raw_text, "", 1)
    return content


def unknown_tool_card(call: UnknownCall) -> ToolCard:
    card = ToolCard(call.name)
    card.set_unknown(call.raw_text)
    return card


def build_messages(
    saved: SavedChat, show_reasoning: bool = True
) -> list[tuple[MessageView, int]]:
    """Widgets for a saved chat, each with the index of the message it shows: tool
    results go onto the cards of their calls, calls to unknown tools onto cards of
    their own."""
    views: list[tuple[MessageView, int]] = []
    cards: dict[str, ToolCard] = {}
    for index, message in enumerate(saved.chat.messages):
        match message:
            case SystemPrompt(content=text):
                views.append((SystemPromptView(text), index))
            case UserMessage(content=text):
                views.append((UserMessageView(text), index))
            case AssistantResponse():
                unknown = saved.unknown_calls.get(index, [])
                view = AssistantMessageView(
                    without_unknown_calls(message.content, unknown),
                    reasoning=message.reasoning,
                    stats=saved.stats.get(index),
                    show_reasoning=show_reasoning,
                )
                for position, call in enumerate(message.tool_calls):
                    card = ToolCard(call.name, call.id, arguments=format_arguments(call.arguments))
                    card.state = "called"
                    cards[call.id] = view.add_card(card, position)
                for unknown_call in unknown:
                    view.add_card(unknown_tool_card(unknown_call))
                views.append((view, index))
            case ToolResultMessage():
                known = cards.get(message.tool_call_id)
                if known is None:
                    # A result without its call (an imported chat): shown on a card of its own.
                    known = ToolCard(message.name or "tool", message.tool_call_id)
                    orphan = AssistantMessageView(show_reasoning=show_reasoning)
                    orphan.add_card(known)
                    views.append((orphan, index))
                run = saved.tool_runs.get(message.tool_call_id)
                known.set_result(
                    message.content,
                    is_error=run.is_error if run else False,
                    denied=run.denied if run else False,
                    duration_sec=run.duration_sec if run else 0.0,
                    exit_code=run.exit_code if run else None,
                )
    return views


class ChatView(VerticalScroll):
    """Messages of one chat. With the focus, Up and Down select a message to copy or
    delete; deleting goes up as `DeleteRequested`, and the screen does it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "up,k",
            "select(-1)",
            "Previous",
            id="chat.previous_message",
            tooltip="Select the message above (Ctrl+Y copies it)",
            show=False,
        ),
        Binding(
            "down,j",
            "select(1)",
            "Next",
            id="chat.next_message",
            tooltip="Select the message below (Ctrl+Y copies it)",
            show=False,
        ),
        Binding(
            "d,delete",
            "delete_message",
            "Delete",
            id="chat.delete_message",
            tooltip="Delete the selected message (asks first; a reply's tool results go with it)",
        ),
    ]

    @dataclass
    class DeleteRequested(Message):
        """Delete the message at `index` of the chat's messages."""

        index: int

    DEFAULT_CSS = """
    ChatView {
        height: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
        & > #chat-empty {
            color: $text-muted;
            padding: 1 2;
            width: 1fr;
        }
        & > #chat-note {
            color: $text-warning;
            padding: 0 2;
            width: 1fr;
        }
        & > #chat-note.-empty { display: none; }
        &:focus { background-tint: $foreground 3%; }
    }
    """

    selected: reactive[int | None] = reactive(None, init=False)
    """The index of the selected message among `messages()`, or None."""
    note: reactive[str] = reactive("", init=False)
    """A line about the model under the hint of a new chat (e.g. `BASE_MODEL_NOTE`)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._indices: dict[MessageView, int] = {}
        """The index in the chat's messages of what each message widget shows."""

    async def show(self, saved: SavedChat, show_reasoning: bool = True) -> None:
        """Replace what is shown by `saved`, scrolled to its end."""
        self.selected = None
        await self.remove_children()
        built = build_messages(saved, show_reasoning)
        self._indices = {view: index for view, index in built}
        if built:
            await self.mount_all([view for view, _ in built])
        else:
            await self.mount(
                Static(EMPTY_HINT, id="chat-empty"),
                Static(self.note, id="chat-note", classes="" if self.note else "-empty"),
            )
        self.anchor()

    def watch_note(self, note: str) -> None:
        for shown in self.query("#chat-note").results(Static):
            shown.update(note)
            shown.set_class(not note, "-empty")

    def set_index(self, view: MessageView, index: int) -> None:
        """`view` shows the message at `index` (a reply, once it is in the chat)."""
        self._indices[view] = index

    def message_index(self, view: MessageView) -> int | None:
        return self._indices.get(view)

    async def add(self, view: MessageView, index: int | None = None) -> None:
        """Add a message at the end (showing the chat's message at `index`, once it is
        one), and follow the end again."""
        if index is not None:
            self._indices[view] = index
        for hint in self.query("#chat-empty, #chat-note"):
            await hint.remove()
        await self.mount(view)
        self.anchor()

    def messages(self) -> list[MessageView]:
        return list(self.query_children(MessageView))

    def last_reply(self) -> AssistantMessageView | None:
        for view in reversed(self.messages()):
            if isinstance(view, AssistantMessageView):
                return view
        return None

    def selected_message(self) -> MessageView | None:
        views = self.messages()
        if self.selected is None or not 0 <= self.selected < len(views):
            return None
        return views[self.selected]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "delete_message":
            view = self.selected_message()
            return view is not None and self.message_index(view) is not None
        return True

    def action_delete_message(self) -> None:
        view = self.selected_message()
        index = self.message_index(view) if view is not None else None
        if index is not None:
            self.post_message(self.DeleteRequested(index))

    def action_select(self, step: int) -> None:
        views = self.messages()
        if not views:
            return
        if self.selected is None:
            self.selected = len(views) - 1 if step < 0 else 0
        else:
            self.selected = max(0, min(len(views) - 1, self.selected + step))

    def watch_selected(self, selected: int | None) -> None:
        self.refresh_bindings()
        for index, view in enumerate(self.messages()):
            view.set_class(index == selected, "-selected")
        chosen = self.selected_message()
        if chosen is not None:
            self.release_anchor()
            self.scroll_to_widget(chosen, animate=False)
