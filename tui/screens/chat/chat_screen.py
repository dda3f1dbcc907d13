"""The Chat screen: saved chats on the left, the conversation, the message box.

A reply runs the engine's act loop (with no tools it is one plain reply) in an
async worker that only fills buffers and posts messages (see `reply_stream`); the
handlers here own every change: widgets, the chat, and its file, which is saved
after every message. One reply runs at a time; switching chats while it runs
stops it first.

This module holds the screen itself (its keys, its widgets, start-up and quitting)
and the reply's life: starting it, its rounds, tool calls and approvals, its end.
The rest of the screen is in mixins beside it, one part each, with the screen's
state they touch declared at their top:

- `sending`: Enter, and what waits to be sent (while a reply stops or a model
  loads), refused past the context; editing the last message, regenerating;
- `chat_keeping`: the saved chats: which is shown, saving, opening, renaming,
  deleting, the chat list, "chat: open" in the palette;
- `chat_options`: the chat's settings dialog and the tools its replies offer.

The handlers of the reply share the reply in progress and its widgets, so they stay
together here. What is not a handler lives beside them (reply_stream, the widgets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import count
from typing import Any, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive

from engine.agent import ActRun, act_events
from engine.chat import AssistantResponse, UserMessage
from engine.contract import ChatModel
from engine.prediction import PredictionConfig, PredictionStats
from engine.tools import ToolDefinition
from tui.app_messages import PredictionFailed, PredictionFirstToken, PredictionProgress
from tui.context import AppContext
from tui.model_state import ModelState
from tui.screens.chat.chat_keeping import ChatCommands, ChatKeeping
from tui.screens.chat.chat_options import ChatOptionsHandling
from tui.screens.chat.reply_stream import (
    ApprovalGate,
    ApprovalRequested,
    ReplyEnded,
    ReplyInProgress,
    RoundBegan,
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
from tui.screens.chat.sending import ChatSending
from tui.store.app_state import LAST_CHAT_KEY
from tui.store.saved_chats import (
    ChatStore,
    SavedChat,
    ToolRun,
    UnknownCall,
    new_chat_id,
)
from tui.stream_buffer import flush_interval
from tui.widgets.chat.chat_input import ChatInput
from tui.widgets.chat.chat_list import ChatList
from tui.widgets.chat.chat_status import ChatStatus
from tui.widgets.chat.chat_view import BASE_MODEL_NOTE, ChatView
from tui.widgets.chat.message_views import AssistantMessageView
from tui.widgets.chat.tool_card import ToolCard
from tui.wording import plural

MAX_ROUNDS = 8
"""Model turns per message when tools are on (each tool result gets one)."""


class ChatScreen(ChatSending, ChatKeeping, ChatOptionsHandling):
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
            "ctrl+s",
            "export",
            "Export",
            id="chat.export",
            tooltip="Export this chat as Markdown or JSON (asks where; exports/ in the data directory)",
            show=False,
        ),
        Binding(
            "ctrl+f",
            "find",
            "Find",
            id="chat.find",
            tooltip="Search the saved chats: titles and what the messages say",
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
        self._search_texts: dict[str, tuple[str, int, list[tuple[str, str]]]] = {}

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

    # --- the reply --------------------------------------------------------------------

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
        for call_id, buffer in buffers.arguments.items():
            card = view.card_for_call(call_id)
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
            reply.unknown_calls = []
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
            reply.unknown_calls.append(UnknownCall(unknown, message.raw_text))
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
        index = len(saved.chat.messages) - 1
        saved.stats[index] = result.stats
        if reply.unknown_calls:
            saved.unknown_calls[index] = reply.unknown_calls
        if reply.view is not None:
            self.chat_view.set_index(reply.view, index)
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
