"""The Chat screen: saved chats on the left, the conversation, the message box.

A reply runs the engine's act loop (with no tools it is one plain reply) in an
async worker that only fills buffers and posts messages (see `reply_stream`); the
handlers here own every change: widgets, the chat, and its file, which is saved
after every message. One reply runs at a time; switching chats while it runs
stops it first.

Over 600 lines on purpose: it is one screen's handlers for the life of a reply
(rounds, tool calls, approvals, the end), which share the reply in progress and
its widgets; split across mixins, who changes a widget would be harder to see.
What is not a handler lives beside it (reply_stream, chat_settings, the widgets).
Sending (queued while a reply stops or a model loads, refused past the context) added
to it; the next split takes sending and queueing out into a module of its own, leaving
this one the reply's life.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.reactive import reactive

from engine.agent import ActRun, act_events
from engine.chat import AssistantResponse, UserMessage
from engine.contract import ChatModel
from engine.prediction import PredictionConfig, PredictionStats
from engine.tools import ToolDefinition, read_configured_tools, tools_path
from tui.app_messages import PredictionFailed, PredictionFirstToken, PredictionProgress
from tui.context import AppContext
from tui.model_state import ModelState
from tui.palette import highlight_plain
from tui.screens.base import LlamatermScreen
from tui.screens.chat.chat_settings import ChatOptions, ChatSettingsScreen
from tui.screens.chat.reply_stream import (
    ApprovalGate,
    ApprovalRequested,
    ReplyEnded,
    RoundBegan,
    RoundBuffers,
    RoundEnded,
    Run,
    ToolCallBegan,
    ToolCallParsed,
    ToolCallUnparsed,
    ToolRunBegan,
    ToolRunEnded,
    pump_reply,
    unknown_tool_name,
)
from tui.screens.dialogs import ConfirmScreen, RenameChatScreen
from tui.store.app_state import LAST_CHAT_KEY
from tui.store.saved_chats import (
    ChatStore,
    SavedChat,
    ToolOptions,
    ToolRun,
    new_chat_id,
    newest_first,
)
from tui.stream_buffer import flush_interval
from tui.widgets.chat.chat_input import ChatInput
from tui.widgets.chat.chat_list import ChatList
from tui.widgets.chat.chat_status import ChatStatus
from tui.widgets.chat.chat_view import BASE_MODEL_NOTE, ChatView
from tui.widgets.chat.message_views import AssistantMessageView, UserMessageView
from tui.widgets.chat.tool_card import ToolCard
from tui.wording import plural

WIDE = 100
"""From this many columns the chat list shows unless the person hid it."""

MAX_ROUNDS = 8
"""Model turns per message when tools are on (each tool result gets one)."""


@dataclass
class ReplyInProgress:
    """The reply being generated, and where its parts go."""

    tag: str
    saved: SavedChat
    run: Run
    gate: ApprovalGate
    view: AssistantMessageView | None = None
    buffers: RoundBuffers = field(default_factory=RoundBuffers)
    stopping: bool = False


class ChatCommands(Provider):
    """ "chat: open <title>" for every saved chat."""

    def _chats(self) -> list[SavedChat]:
        screen = self.screen
        return newest_first(screen.chats.values()) if isinstance(screen, ChatScreen) else []

    def _open(self, chat_id: str) -> Callable[[], Any]:
        screen = self.screen
        assert isinstance(screen, ChatScreen)
        return partial(screen.open_chat, chat_id)

    async def discover(self) -> Hits:
        for saved in self._chats():
            title = f"chat: open {saved.title}"
            yield DiscoveryHit(Content(title), self._open(saved.id), text=title)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for saved in self._chats():
            title = f"chat: open {saved.title}"
            score = matcher.match(title)
            if score > 0:
                # A title is the person's text, not markup.
                yield Hit(score, highlight_plain(matcher, title), self._open(saved.id), text=title)


class ChatScreen(LlamatermScreen):
    MODE = "chat"

    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {ChatCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape",
            "stop",
            "Stop",
            id="chat.stop",
            tooltip="Stop the reply at once (what was written stays); or stop editing",
        ),
        Binding("ctrl+n", "new_chat", "New", id="chat.new", tooltip="Start a new chat"),
        Binding(
            "ctrl+r",
            "regenerate",
            "Retry",
            id="chat.regenerate",
            tooltip="Replace the last reply with a new one",
        ),
        Binding(
            "ctrl+t",
            "edit_last",
            "Edit",
            id="chat.edit",
            tooltip="Edit your last message and send it again (the replies after it go)",
        ),
        # Priority: the message box would take Ctrl+Y as redo.
        Binding(
            "ctrl+y",
            "copy_message",
            "Copy",
            id="chat.copy",
            tooltip="Copy the selected message (Up/Down in the conversation), else the last reply",
            priority=True,
        ),
        Binding(
            "ctrl+o",
            "settings",
            "Settings",
            id="chat.settings",
            tooltip="System prompt, sampling, thinking and tools of this chat",
        ),
        Binding(
            "ctrl+l",
            "toggle_list",
            "Chats",
            id="chat.list",
            tooltip="Show or hide the list of saved chats",
        ),
        Binding(
            "ctrl+f",
            "find",
            "Find",
            id="chat.find",
            tooltip="Search the saved chats by title",
            show=False,
        ),
    ]

    DEFAULT_CSS = """
    ChatScreen {
        #chat-body { height: 1fr; }
        #conversation { width: 1fr; height: 1fr; }
    }
    """

    generating: reactive[bool] = reactive(False, bindings=True)
    show_list: reactive[bool | None] = reactive(None, init=False)
    """The person's choice; None shows the list when the terminal is wide enough."""

    def __init__(self, context: AppContext) -> None:
        super().__init__(context)
        self.chats: dict[str, SavedChat] = {}
        """The saved chats by id (a new chat joins once it has a message)."""
        self.current = SavedChat(new_chat_id())
        self.chat_list = ChatList()
        self.chat_view = ChatView()
        self.chat_input = ChatInput(id="chat-input")
        self.status = ChatStatus()
        self._defaults = PredictionConfig()
        self._reply: ReplyInProgress | None = None
        self._tags = count(1)
        self._draft = ""
        self._after_stop: list[Callable[[], Any]] = []
        """What the person asked for while a reply was stopping, run in order once it ends."""
        self._reply_when_loaded: SavedChat | None = None
        """A chat whose last message was sent while the model loaded: it is answered then."""
        self._winding_down = False
        self._flush_lock = asyncio.Lock()
        self._tools: list[ToolDefinition] = []
        self._tool_errors: list[str] = []
        self._tool_warnings: list[str] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-body"):
            yield self.chat_list
            with Vertical(id="conversation"):
                yield self.chat_view
                yield self.status
                yield self.chat_input

    @on(events.Mount)
    async def _load_chats(self) -> None:
        # Textual calls the base class's on_mount too: the top bar and cursors are its.
        context = self.context
        self._defaults = context.settings.prediction_defaults()
        self.store = ChatStore(context.data_dir)
        self._flush_timer = self.set_interval(
            flush_interval(self.context.settings.ui.stream_refresh_rate), self._flush, pause=True
        )
        self._reload_tools()
        chats, errors = self.store.load_all()
        if errors:
            count_ = len(errors)
            self.notify(
                "\n".join(errors),
                title=f"{plural(count_, 'chat file')} not loaded",
                severity="error",
                timeout=15,
            )
        self.chats = {saved.id: saved for saved in chats}
        last = context.state.get_text(LAST_CHAT_KEY)
        start = self.chats.get(last) if last is not None else None
        await self._show(start or (chats[0] if chats else self._new_chat()))
        self.watch(self.app, "model", self._model_changed, init=False)
        self.watch(self.app, "model_state", self._model_state_changed)
        self._apply_list_visibility()
        self.chat_input.focus()

    async def wind_down(self) -> None:
        """Quitting: stop the reply, and wait until what it wrote is saved, marked as
        stopped (as Esc does); what was queued to run after it is dropped."""
        self._winding_down = True
        self._after_stop.clear()
        self._reply_when_loaded = None
        if self._reply is not None:
            self.action_stop()
        while self._reply is not None:
            await asyncio.sleep(0.01)

    def on_unmount(self) -> None:
        if self._reply is not None:
            self._reply.run.cancel()
            self._reply.gate.deny_all()

    # --- chats ----------------------------------------------------------------------

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

    def _refresh_list(self) -> None:
        ordered = newest_first(self.chats.values())
        if not self.is_saved(self.current):
            ordered.insert(0, self.current)
        self.chat_list.entries = tuple((saved.id, saved.title) for saved in ordered)
        self.chat_list.current = self.current.id

    def _remember(self, saved: SavedChat) -> None:
        try:
            self.context.state.remember(LAST_CHAT_KEY, saved.id)
        except (OSError, TypeError):
            pass  # only a convenience: the newest chat opens instead

    def _save(self, saved: SavedChat) -> None:
        """Write the chat's file; every message ends here."""
        new = not self.is_saved(saved)
        try:
            self.store.save(saved)
        except OSError as err:
            self.notify(f"could not save the chat: {err}", title="Not saved", severity="error")
            return
        self.chats[saved.id] = saved
        if new:
            self._remember(saved)
        self._refresh_list()

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

    # --- sending --------------------------------------------------------------------

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
        await self.chat_view.add(UserMessageView(text))
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

    def open_run(
        self,
        model: ChatModel,
        saved: SavedChat,
        tools: list[ToolDefinition],
        gate: ApprovalGate,
    ) -> Run:
        """Start the act loop on a copy of the chat (the handlers add to the chat itself).
        Tests replace this to pause a reply at a chosen point."""
        run: ActRun = act_events(
            model,
            saved.chat.copy(),
            tools,
            config=saved.prediction,
            defaults=self._defaults,
            approve=gate.ask,
            max_rounds=MAX_ROUNDS,
            tool_choice=saved.tools.choice if tools else "auto",
            allowed_roots=self.context.settings.tools.allowed_roots,
        )
        return run

    def _start_reply(self) -> None:
        model = self.context.model
        if model is None:
            self._no_model()
            return
        saved = self.current
        tools = self._tools_for(saved)
        gate = ApprovalGate()
        run = self.open_run(model, saved, tools, gate)
        reply = ReplyInProgress(f"chat-{next(self._tags)}", saved, run, gate)
        self._reply = reply
        self.generating = True
        self.status.start()
        self._flush_timer.resume()
        self.run_worker(
            pump_reply(run, self, reply.tag),
            name="chat reply",
            group="chat-reply",
            exclusive=True,
            exit_on_error=False,
        )

    def has_pending_text(self) -> bool:
        """Text of the running reply not drained to the screen yet (tests wait on it)."""
        reply = self._reply
        if reply is None:
            return False
        buffers = reply.buffers
        return bool(buffers.content or buffers.reasoning or any(buffers.arguments.values()))

    def _live(self, tag: str) -> ReplyInProgress | None:
        reply = self._reply
        return reply if reply is not None and reply.tag == tag else None

    # --- the reply's events ---------------------------------------------------------

    async def _flush(self) -> None:
        # Serialised: text taken from a buffer must reach its widget before newer text.
        async with self._flush_lock:
            await self._drain()

    async def _drain(self) -> None:
        reply = self._reply
        if reply is None or reply.view is None:
            return
        view, buffers = reply.view, reply.buffers
        if not reply.stopping and self.status.phase == "generating":
            self.status.show_rate(buffers.rate)
        await view.append_reasoning(buffers.reasoning.take())
        await view.append_content(buffers.content.take())
        for index, buffer in buffers.arguments.items():
            card = view.card_at(index)
            if card is not None and buffer:
                card.append_arguments(buffer.take())

    async def on_round_began(self, message: RoundBegan) -> None:
        reply = self._live(message.tag)
        if reply is None:
            return
        async with self._flush_lock:
            view = AssistantMessageView(
                streaming=True, show_reasoning=self.context.settings.ui.show_reasoning
            )
            reply.view, reply.buffers = view, message.buffers
            await self.chat_view.add(view)
        if message.index > 0:
            self.status.start()

    async def on_tool_call_began(self, message: ToolCallBegan) -> None:
        reply = self._live(message.tag)
        if reply is None or reply.view is None:
            return
        async with self._flush_lock:
            await self._drain()
            await reply.view.begin_tool_call(message.index, message.call_id, message.name)

    async def on_tool_call_parsed(self, message: ToolCallParsed) -> None:
        reply = self._live(message.tag)
        if reply is None or reply.view is None:
            return
        async with self._flush_lock:
            await self._drain()
            card = await reply.view.begin_tool_call(
                message.index, message.call.id, message.call.name
            )
            card.set_call(message.call.id, message.call.arguments)

    async def on_tool_call_unparsed(self, message: ToolCallUnparsed) -> None:
        reply = self._live(message.tag)
        unknown = unknown_tool_name(message.reason)
        if unknown is not None and reply is not None and reply.view is not None:
            # A call to a tool the chat does not have: a card, not raw text.
            async with self._flush_lock:
                await self._drain()
                await reply.view.show_unknown_tool(unknown, message.raw_text)
            return
        # A call cut short by Esc is not worth a warning.
        if reply is not None and not reply.stopping:
            self.notify(
                f"{message.reason}. It stays in the reply as text; the Logs screen has the raw output.",
                title="A tool call did not parse",
                severity="warning",
            )

    def on_prediction_progress(self, message: PredictionProgress) -> None:
        if self._live(message.tag) is not None:
            self.status.show_prompt_progress(message.fraction, message.done, message.total)

    def on_prediction_first_token(self, message: PredictionFirstToken) -> None:
        reply = self._live(message.tag)
        if reply is not None and not reply.stopping:
            self.status.progress = 1.0
            self.status.phase = "generating"

    async def on_round_ended(self, message: RoundEnded) -> None:
        reply = self._live(message.tag)
        if reply is None:
            return
        result = message.result
        async with self._flush_lock:
            await self._drain()
            if reply.view is not None:
                await reply.view.finish(result)
        saved = reply.saved
        saved.chat.append(
            AssistantResponse(
                content=result.content,
                reasoning=result.reasoning,
                tool_calls=list(result.tool_calls),
            )
        )
        saved.stats[len(saved.chat.messages) - 1] = result.stats
        self._save(saved)
        self._show_context(result.stats)
        if not reply.stopping:
            self.status.phase = "running tools" if result.tool_calls else ""

    def _card(self, reply: ReplyInProgress, call_id: str) -> ToolCard | None:
        return reply.view.card_for_call(call_id) if reply.view is not None else None

    def on_approval_requested(self, message: ApprovalRequested) -> None:
        reply = self._live(message.tag)
        if reply is None:
            return
        card = self._card(reply, message.call.id)
        if card is None or reply.stopping:
            reply.gate.answer(message.call.id, False)
            return
        card.request_approval()
        card.focus()
        self.chat_view.scroll_to_widget(card, animate=False)
        self.status.phase = "waiting for your approval"

    def on_tool_card_decided(self, message: ToolCard.Decided) -> None:
        reply = self._reply
        if reply is None:
            return
        reply.gate.answer(message.call_id, message.approved)
        self.status.phase = "running tools" if message.approved else ""
        self.chat_input.focus()

    def on_tool_run_began(self, message: ToolRunBegan) -> None:
        reply = self._live(message.tag)
        card = self._card(reply, message.call.id) if reply is not None else None
        if card is not None:
            card.set_running()

    def on_tool_run_ended(self, message: ToolRunEnded) -> None:
        reply = self._live(message.tag)
        if reply is None:
            return
        result = message.result
        card = self._card(reply, result.tool_call_id)
        if card is not None:
            card.set_result(
                result.content,
                is_error=result.is_error,
                denied=message.denied,
                duration_sec=result.duration_sec,
                exit_code=result.exit_code,
            )
        saved = reply.saved
        saved.chat.append(result.to_message())
        saved.tool_runs[result.tool_call_id] = ToolRun(
            result.is_error, message.denied, result.duration_sec, result.exit_code
        )
        self._save(saved)

    async def on_prediction_failed(self, message: PredictionFailed) -> None:
        reply = self._live(message.tag)
        if reply is None:
            return
        error = str(message.error) or type(message.error).__name__
        async with self._flush_lock:
            await self._drain()
            if reply.view is not None:
                await reply.view.show_error(error)
        self.status.phase = ""
        self.status.error = error
        self.notify(error, title="Prediction failed", severity="error")

    async def on_reply_ended(self, message: ReplyEnded) -> None:
        reply = self._live(message.tag)
        if reply is None:
            return
        await self._flush()
        self._flush_timer.pause()
        reply.gate.deny_all()
        self._reply = None
        self.generating = False
        if self.status.phase:
            self.status.phase = ""
        if self.focused is None or isinstance(self.focused, ToolCard):
            self.chat_input.focus()
        # In the order asked for; one may start a reply, and the rest wait for it.
        while self._after_stop and self._reply is None and not self._winding_down:
            result = self._after_stop.pop(0)()
            if asyncio.iscoroutine(result):
                await result
        if self._reply is not None and self._after_stop:
            self.action_stop()

    def _show_context(self, stats: PredictionStats | None) -> None:
        self.status.context_used = (
            stats.prompt_tokens_count + stats.predicted_tokens_count if stats is not None else 0
        )

    def _model_state_changed(self, state: ModelState) -> None:
        self.status.context_length = state.context_length
        if state.status in ("failed", "none") and self._reply_when_loaded is not None:
            self._reply_when_loaded = None
            self.notify(
                "Your message is saved in the chat; once a model is loaded, "
                "Ctrl+R asks for the reply.",
                title="No reply",
                severity="warning",
            )
        self.chat_view.note = BASE_MODEL_NOTE if state.base_model else ""

    def _model_changed(self, model: ChatModel | None) -> None:
        # The old model is about to be unloaded: stop what it is generating.
        if self._reply is not None:
            self.action_stop()
        if model is None or self._reply_when_loaded is None:
            return  # (a load begins by dropping the old model: keep waiting)
        waiting, self._reply_when_loaded = self._reply_when_loaded, None
        if waiting is self.current and self._reply is None and not self._winding_down:
            messages = waiting.chat.messages
            if messages and isinstance(messages[-1], UserMessage):
                self._start_reply()

    def _no_model(self) -> None:
        self.notify(
            "No model is loaded: choose one on the Models screen.",
            title="No model",
            severity="warning",
        )

    # --- actions --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating or self.chat_input.editing
        if action in ("regenerate", "edit_last", "settings"):
            return None if self.generating else True
        return True

    def action_stop(self) -> None:
        reply = self._reply
        if reply is None:
            self._end_editing(restore=True)
            return
        reply.stopping = True
        reply.run.cancel()
        # A tool call waiting for approval is denied, so the loop can end.
        reply.gate.deny_all()
        self.status.phase = "stopping"

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

    def action_copy_message(self) -> None:
        view = self.chat_view.selected_message() if self.chat_view.has_focus else None
        if view is None:
            view = self.chat_view.last_reply()
        text = view.copy_text() if view is not None else ""
        if view is None or not text:
            self.notify("Nothing to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the {view.role} message ({len(text)} characters).")

    def action_settings(self) -> None:
        saved = self.current
        self._reload_tools()

        async def apply(options: ChatOptions | None) -> None:
            if options is not None:
                await self._apply_settings(saved, options)

        self.app.push_screen(
            ChatSettingsScreen(
                saved.system_prompt,
                saved.prediction.merged_over(self._defaults),
                saved.tools,
                [tool.name for tool in self._tools],
                tools_file=self._tools_file(),
            ),
            apply,
        )

    async def _apply_settings(self, saved: SavedChat, options: ChatOptions) -> None:
        defaults = self._defaults.model_dump()
        changed = {
            name: value
            for name, value in options.config.model_dump(exclude_none=True).items()
            if defaults.get(name) != value
        }
        saved.prediction = PredictionConfig.model_validate(changed)
        saved.tools = options.tools
        prompt_changed = options.system_prompt != saved.system_prompt
        saved.system_prompt = options.system_prompt
        self._save(saved)
        if prompt_changed and saved is self.current and self._reply is None:
            await self.chat_view.show(saved, self.context.settings.ui.show_reasoning)
        if saved.tools.enabled and not self._tools_for(saved):
            self.notify("Tools are on, but there are none to offer.", severity="warning")

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

    # --- tools ----------------------------------------------------------------------

    def _tools_file(self) -> Path:
        """The tools file the app reads ([tools] file, else beside the config, else data)."""
        return tools_path(self.context.settings, self.context.data_dir)

    def _reload_tools(self) -> None:
        """Read the tools file again (it may have been edited); report new problems once:
        errors (a tool left out) as errors, warnings (loaded, but likely not meant) as
        warnings."""
        found = read_configured_tools(self.context.settings, self.context.data_dir)
        self._tools = found.tools
        if found.errors and found.errors != self._tool_errors:
            self.notify(
                "\n".join(found.errors), title="Tools file", severity="error", timeout=15
            )
        if found.warnings and found.warnings != self._tool_warnings:
            self.notify(
                "\n".join(found.warnings),
                title="Tools file warnings",
                severity="warning",
                timeout=15,
            )
        self._tool_errors = list(found.errors)
        self._tool_warnings = list(found.warnings)

    def _tools_for(self, saved: SavedChat) -> list[ToolDefinition]:
        if not saved.tools.enabled:
            return []
        self._reload_tools()
        names = saved.tools.names
        return [tool for tool in self._tools if names is None or tool.name in names]
