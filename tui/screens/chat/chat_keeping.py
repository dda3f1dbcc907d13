"""The saved chats on the Chat screen: which one is shown, saving, opening, renaming
and deleting them, deleting one message of one, the chat list beside the
conversation, and "chat: open" in the palette.

Every message ends in `_save`, which writes the chat's file at once. Opening another
chat or starting a new one while a reply runs stops the reply first (`_stop_then`),
and empties the message box when asked, not later, so what is typed meanwhile stays.

This mixin declares below what it uses of the rest of the screen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from engine.prediction import PredictionStats
from tui.palette import highlight_plain
from tui.screens.base import LlamatermScreen
from tui.screens.dialogs import ConfirmScreen, ExportChatScreen, RenameChatScreen
from tui.store.app_state import LAST_CHAT_KEY
from tui.store.chat_export import (
    ExportError,
    ExportFormat,
    default_path,
    export_chat,
    format_of,
)
from tui.store.saved_chats import (
    ChatStore,
    SavedChat,
    ToolOptions,
    chat_text,
    new_chat_id,
    newest_first,
)
from tui.widgets.chat.chat_list import ChatList
from tui.widgets.chat.chat_view import ChatView
from tui.wording import plural

if TYPE_CHECKING:
    from tui.screens.chat.reply_stream import ReplyInProgress
    from tui.widgets.chat.chat_input import ChatInput
    from tui.widgets.chat.chat_status import ChatStatus

WIDE = 100
"""From this many columns the chat list shows unless the person hid it."""


class ChatCommands(Provider):
    """ "chat: open <title>" for every saved chat."""

    def _chats(self) -> list[SavedChat]:
        screen = self.screen
        return newest_first(screen.chats.values()) if isinstance(screen, ChatKeeping) else []

    def _open(self, chat_id: str) -> Callable[[], Any]:
        screen = self.screen
        assert isinstance(screen, ChatKeeping)
        return partial(screen.open_chat, chat_id)

    def _commands(self) -> list[tuple[str, Callable[[], Any], str | None]]:
        screen = self.screen
        if not isinstance(screen, ChatKeeping):
            return []
        formats: list[tuple[str, ExportFormat, str]] = [
            ("Markdown", "markdown", "Write this chat to a .md file (asks where)"),
            ("JSON", "json", "Write this chat to a .json file (asks where)"),
        ]
        exports: list[tuple[str, Callable[[], Any], str | None]] = [
            (f"chat: export as {name}", partial(screen.action_export, format), help_text)
            for name, format, help_text in formats
        ]
        opens = [
            (f"chat: open {saved.title}", self._open(saved.id), None) for saved in self._chats()
        ]
        return [*exports, *opens]

    async def discover(self) -> Hits:
        for title, run, help_text in self._commands():
            yield DiscoveryHit(Content(title), run, text=title, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, run, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                # A title is the person's text, not markup.
                yield Hit(score, highlight_plain(matcher, title), run, text=title, help=help_text)


class ChatKeeping(LlamatermScreen):
    """The Chat screen's saved chats (a mixin of `ChatScreen`)."""

    if TYPE_CHECKING:
        chats: dict[str, SavedChat]
        current: SavedChat
        store: ChatStore
        chat_list: ChatList
        chat_view: ChatView
        chat_input: ChatInput
        status: ChatStatus
        show_list: bool | None
        _search_texts: dict[str, tuple[str, int, list[tuple[str, str]]]]
        """Each chat's search text, with the (updated, message count) it was taken at."""
        _reply: ReplyInProgress | None

        def _stop_then(self, then: Callable[[], Any], *, clears_input: bool = False) -> None: ...
        def _end_editing(self, *, restore: bool) -> None: ...
        def _show_context(self, stats: PredictionStats | None) -> None: ...

    def _new_chat(self) -> SavedChat:
        """An empty chat with the config's [chat] defaults: system prompt and tools."""
        saved = SavedChat(new_chat_id())
        chat = self.context.settings.chat
        if chat.system_prompt:
            saved.system_prompt = chat.system_prompt
        saved.tools = ToolOptions(enabled=chat.tools, choice=chat.tool_choice)
        return saved

    def is_saved(self, saved: SavedChat) -> bool:
        return saved.id in self.chats

    async def _show(self, saved: SavedChat, *, keep_input: bool = False) -> None:
        """Show `saved`; the message box is emptied, unless `keep_input` (an action
        that waited for a reply to stop emptied it when it was asked for: what was
        typed after it stays)."""
        self.current = saved
        self._end_editing(restore=False)
        if not keep_input:
            self.chat_input.clear()
        await self.chat_view.show(saved, self.context.settings.ui.show_reasoning)
        last = saved.stats.get(max(saved.stats)) if saved.stats else None
        self.status.error = ""
        self._show_context(last)
        self._refresh_list()
        if self.is_saved(saved):
            self._remember(saved)

    def _texts_of(self, chat_id: str) -> list[tuple[str, str]]:
        """What the list's search looks in for a chat; kept until the chat changes."""
        saved = self.chats.get(chat_id) or (self.current if self.current.id == chat_id else None)
        if saved is None:
            return []
        cache = self._search_texts
        stamp = (saved.updated, len(saved.chat.messages))
        known = cache.get(chat_id)
        if known is None or known[:2] != stamp:
            known = (*stamp, chat_text(saved))
            cache[chat_id] = known
        return known[2]

    def _refresh_list(self) -> None:
        ordered = newest_first(self.chats.values())
        if not self.is_saved(self.current):
            ordered.insert(0, self.current)
        self.chat_list.text_of = self._texts_of
        self.chat_list.entries = tuple((saved.id, saved.title) for saved in ordered)
        self.chat_list.current = self.current.id

    def _remember(self, saved: SavedChat) -> None:
        try:
            self.context.state.remember(LAST_CHAT_KEY, saved.id)
        except (OSError, TypeError):
            pass  # only a convenience: the newest chat opens instead

    def _save(self, saved: SavedChat) -> bool:
        """Write the chat's file; every message ends here. False (and said) if it failed."""
        new = not self.is_saved(saved)
        try:
            self.store.save(saved)
        except OSError as err:
            self.notify(f"could not save the chat: {err}", title="Not saved", severity="error")
            return False
        self.chats[saved.id] = saved
        if new:
            self._remember(saved)
        self._refresh_list()
        return True

    async def open_chat(self, chat_id: str) -> None:
        """Show a saved chat; a running reply is stopped first."""
        saved = self.chats.get(chat_id)
        if saved is None or saved is self.current:
            return
        if self._reply is not None:
            self._stop_then(partial(self._open_after_stop, chat_id), clears_input=True)
            return
        await self._show(saved)

    async def _open_after_stop(self, chat_id: str) -> None:
        saved = self.chats.get(chat_id)
        if saved is not None and saved is not self.current:
            await self._show(saved, keep_input=True)

    async def on_chat_list_opened(self, message: ChatList.Opened) -> None:
        await self.open_chat(message.chat_id)
        self.chat_input.focus()

    def on_chat_list_rename_requested(self, message: ChatList.RenameRequested) -> None:
        saved = self.chats.get(message.chat_id) or (
            self.current if self.current.id == message.chat_id else None
        )
        if saved is None:
            return

        def rename(title: str | None) -> None:
            if title:
                saved.title = title
                saved.named = True
                self._save(saved)

        self.app.push_screen(RenameChatScreen(saved.title), rename)

    def on_chat_list_delete_requested(self, message: ChatList.DeleteRequested) -> None:
        saved = self.chats.get(message.chat_id)
        if saved is None:
            return
        if self._reply is not None and self._reply.saved is saved:
            self.notify("Stop the reply first (Esc).", severity="warning")
            return

        async def delete(yes: bool | None) -> None:
            if yes:
                await self._delete(saved)

        self.app.push_screen(
            ConfirmScreen("Delete chat", f"Move “{saved.title}” to the trash?"), delete
        )

    async def _delete(self, saved: SavedChat) -> None:
        try:
            self.store.delete(saved)
        except OSError as err:
            self.notify(f"could not delete the chat: {err}", severity="error")
            return
        self.chats.pop(saved.id, None)
        self.notify(f"“{saved.title}” moved to chats/trash.", title="Chat deleted")
        if saved is self.current:
            remaining = newest_first(self.chats.values())
            await self._show(remaining[0] if remaining else self._new_chat())
        else:
            self._refresh_list()

    # --- export -----------------------------------------------------------------------

    def action_export(self, format: ExportFormat = "markdown") -> None:
        saved = self.current
        if saved.is_empty:
            self.notify("Nothing to export yet: this chat has no messages.", severity="warning")
            return

        async def export(path: Path | None) -> None:
            if path is not None:
                await self._export(saved, path)

        proposed = default_path(self.context.data_dir, saved, format)
        self.app.push_screen(ExportChatScreen(saved.title, proposed), export)

    async def _export(self, saved: SavedChat, path: Path) -> None:
        # A copy: a reply may add to the chat while the file is written off the loop.
        snapshot = replace(
            saved, chat=saved.chat.copy(), stats=dict(saved.stats), tool_runs=dict(saved.tool_runs)
        )
        try:
            written = await asyncio.to_thread(export_chat, snapshot, path)
        except ExportError as err:
            self.notify(str(err), title="Not exported", severity="error", timeout=15)
            return
        kind = "JSON" if format_of(written) == "json" else "Markdown"
        self.notify(str(written), title=f"Chat exported as {kind}", timeout=10)

    # --- one message ------------------------------------------------------------------

    def on_chat_view_delete_requested(self, message: ChatView.DeleteRequested) -> None:
        saved = self.current
        index = message.index
        if self._reply is not None:
            self.notify("Stop the reply first (Esc).", severity="warning")
            return
        if not 0 <= index < len(saved.chat.messages):
            return
        doomed = saved.chat.messages[index]
        calls = len(getattr(doomed, "tool_calls", ()))
        what = {"system": "the system prompt", "user": "your message"}.get(
            doomed.role, f"this {doomed.role} message"
        )
        also = f" Its {plural(calls, 'tool call')} and their results go with it." if calls else ""
        preview = " ".join(getattr(doomed, "content", "").split())
        preview = preview if len(preview) <= 60 else preview[:59] + "…"

        async def delete(yes: bool | None) -> None:
            if yes and saved is self.current and self._reply is None:
                await self._delete_message(saved, index)

        self.app.push_screen(
            ConfirmScreen(
                "Delete message",
                f"Delete {what}{f' “{preview}”' if preview else ''}?{also}",
            ),
            delete,
        )

    async def _delete_message(self, saved: SavedChat, index: int) -> None:
        position = self.chat_view.selected
        gone = saved.delete_message(index)
        saved.retitle()
        saved_ok = self._save(saved) if self.is_saved(saved) else True
        await self.chat_view.show(saved, self.context.settings.ui.show_reasoning)
        self._show_context(saved.stats.get(max(saved.stats)) if saved.stats else None)
        if position is not None and self.chat_view.messages():
            self.chat_view.selected = min(position, len(self.chat_view.messages()) - 1)
        if saved_ok:
            self.notify(
                f"Deleted {plural(len(gone), 'message')}; the chat is saved.",
                title="Message deleted",
            )

    async def action_new_chat(self) -> None:
        if self._reply is not None:
            self._stop_then(self._new_chat_after_stop, clears_input=True)
            return
        if not self.current.is_empty or self.is_saved(self.current):
            await self._show(self._new_chat())
        self.chat_input.focus()

    async def _new_chat_after_stop(self) -> None:
        if not self.current.is_empty or self.is_saved(self.current):
            await self._show(self._new_chat(), keep_input=True)
        self.chat_input.focus()

    def action_toggle_list(self) -> None:
        self.show_list = not self.chat_list.display
        # Shown, the list takes the keys; hidden, they go back to the message box.
        if self.chat_list.display:
            self.chat_list.focus_list()
        else:
            self.chat_input.focus()

    def action_find(self) -> None:
        self.show_list = True
        self.chat_list.focus_search()

    def watch_show_list(self) -> None:
        self._apply_list_visibility()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_list_visibility()

    def _apply_list_visibility(self) -> None:
        wanted = self.show_list
        self.chat_list.display = wanted if wanted is not None else self.size.width >= WIDE
