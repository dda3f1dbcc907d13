"""Sending a message on the Chat screen, and what waits to be sent.

Enter sends the message box's text: the message joins the chat, is saved, and the
reply starts. A key that cannot act at once does not drop the text: Enter while a
reply stops queues the send (run in order, after the reply has ended, with any other
action asked for meanwhile: `_stop_then`); Enter while the model loads saves the
message and the reply starts once the model is loaded; a message longer than the
whole context is refused, with what to do, and stays in the box. Editing the last
message (Ctrl+T) and regenerating the last reply (Ctrl+R) are sends too.

The reply's life, once started, is the screen's (chat_screen); this mixin holds only
the way there, and declares below what it uses of the rest of the screen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from engine.chat import UserMessage
from tui.screens.base import LlamatermScreen
from tui.store.saved_chats import SavedChat
from tui.widgets.chat.message_views import UserMessageView
from tui.wording import plural

if TYPE_CHECKING:
    from tui.screens.chat.reply_stream import ReplyInProgress
    from tui.widgets.chat.chat_input import ChatInput
    from tui.widgets.chat.chat_view import ChatView


class ChatSending(LlamatermScreen):
    """The Chat screen's sending and queueing (a mixin of `ChatScreen`)."""

    if TYPE_CHECKING:
        current: SavedChat
        chat_input: ChatInput
        chat_view: ChatView
        _reply: ReplyInProgress | None
        _draft: str
        _after_stop: list[Callable[[], Any]]
        _reply_when_loaded: SavedChat | None

        def _save(self, saved: SavedChat) -> bool: ...
        def _start_reply(self) -> None: ...
        def _no_model(self) -> None: ...
        def action_stop(self) -> None: ...

    def _stop_then(self, then: Callable[[], Any], *, clears_input: bool = False) -> None:
        """Stop the reply, and run `then` once it has ended, after what was asked before.

        Keys typed meanwhile take effect in order: an action that will empty the
        message box (a new chat, another chat) empties it now, and does not later,
        so a message typed after it is still there (or queued, see `_send_later`).
        """
        self._after_stop.append(then)
        if clears_input:
            self._end_editing(restore=False)
            self.chat_input.clear()
        self.action_stop()

    async def on_chat_input_submitted(self, message: ChatInput.Submitted) -> None:
        text = message.text
        if not text.strip():
            return
        reply = self._reply
        if reply is not None and reply.stopping:
            # Enter right after Esc: the message goes as soon as the reply has stopped.
            self._send_later(text)
            return
        if reply is not None:
            self.notify(
                "A reply is running: your message stays in the box. "
                "Send it once the reply ends, or stop the reply with Esc.",
                severity="warning",
            )
            return
        if self.context.model is None and self.context.model_state.status != "loading":
            self._no_model()
            return
        await self._send(text)

    def _send_later(self, text: str) -> None:
        editing = self.chat_input.editing
        self._end_editing(restore=False)
        self.chat_input.clear()
        self._after_stop.append(partial(self._send_after_stop, text, editing))
        self.notify("Your message goes as soon as the reply has stopped.", title="Queued")

    async def _send_after_stop(self, text: str, editing: bool) -> None:
        if self.context.model is None and self.context.model_state.status != "loading":
            # Nothing to send it to: give the text back, in front of what was typed since.
            typed = self.chat_input.text
            self.chat_input.set_text(f"{text}\n{typed}" if typed else text)
            self._no_model()
            return
        self.chat_input.editing = editing
        await self._send(text, keep_input=True)

    async def _send(self, text: str, *, keep_input: bool = False) -> None:
        """Add the person's message to the chat, save it, and start the reply; while the
        model loads, the reply starts once it has loaded."""
        if await self._longer_than_the_context(text):
            return
        saved = self.current
        if self.chat_input.editing:
            index = self._last_user_index()
            if index is not None:
                saved.truncate(index)
                await self._remove_views_from_last_user(include_it=True)
            self._end_editing(restore=False)
        saved.chat.add_user_message(text)
        saved.retitle()
        self._save(saved)
        if not keep_input:
            self.chat_input.clear()
        await self.chat_view.add(UserMessageView(text), len(saved.chat.messages) - 1)
        if self.context.model is None:
            self._reply_when_loaded = saved
            self.notify(
                "Your message is saved; the reply starts once the model has loaded.",
                title="Model loading",
            )
            return
        self._start_reply()

    async def _longer_than_the_context(self, text: str) -> bool:
        """Refuse (with what to do) a message that cannot fit the context at all: sent,
        it would come back as 0 tokens and `contextLengthReached`. The text stays."""
        model = self.context.model
        if model is None or model.is_remote:
            return False  # a server counts its own tokens
        length = model.info.context_length
        # A token is at least a character: a shorter text fits, no need to count.
        if not length or len(text) < length:
            return False
        try:
            count = len(await asyncio.to_thread(model.tokenize, text, False))
        except Exception:  # noqa: BLE001 - an unloaded model: the send reports it
            return False
        if count < length:
            return False
        self.notify(
            f"This message is {plural(count, 'token')}; the context holds {length}. "
            "Shorten it, or raise the context length in the model's load settings "
            "(Models screen, e), then load it again.",
            title="Message too long",
            severity="warning",
            timeout=15,
        )
        return True

    def _last_user_index(self) -> int | None:
        messages = self.current.chat.messages
        for index in range(len(messages) - 1, -1, -1):
            if isinstance(messages[index], UserMessage):
                return index
        return None

    async def _remove_views_from_last_user(self, *, include_it: bool) -> None:
        views = self.chat_view.messages()
        users = [i for i, view in enumerate(views) if isinstance(view, UserMessageView)]
        if not users:
            return
        start = users[-1] if include_it else users[-1] + 1
        for view in views[start:]:
            await view.remove()
        self.chat_view.selected = None

    async def action_regenerate(self) -> None:
        if self._reply is not None:
            return
        if self.context.model is None:
            self._no_model()
            return
        index = self._last_user_index()
        if index is None:
            self.notify("Nothing to regenerate yet: send a message first.", severity="warning")
            return
        self.current.truncate(index + 1)
        self._save(self.current)
        await self._remove_views_from_last_user(include_it=False)
        self._start_reply()

    def action_edit_last(self) -> None:
        if self._reply is not None:
            return
        index = self._last_user_index()
        if index is None:
            self.notify("No message of yours to edit yet.", severity="warning")
            return
        message = self.current.chat.messages[index]
        assert isinstance(message, UserMessage)
        if not self.chat_input.editing:
            self._draft = self.chat_input.text
        self.chat_input.set_text(message.content)
        self.chat_input.editing = True
        self.chat_input.focus()
        self.refresh_bindings()

    def _end_editing(self, *, restore: bool) -> None:
        if not self.chat_input.editing:
            return
        self.chat_input.editing = False
        if restore:
            self.chat_input.set_text(self._draft)
        self._draft = ""
        self.refresh_bindings()
