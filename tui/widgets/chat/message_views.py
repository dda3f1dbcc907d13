"""One message of a chat: the person's, the system prompt, or the model's reply.

An assistant message streams: its answer is a `ReplyDocument`, whose finished
blocks stand while only its live tail is parsed again (the cost of a frame does not
grow with the reply); at the end the engine's text is set once, and what streamed
stands where it equals it. The model's line breaks are kept (`reply_markdown`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label, Static

from engine.prediction import PredictionStats
from tui.widgets.chat import collector_hold
from tui.widgets.chat.reasoning_block import ReasoningBlock
from tui.widgets.chat.reply_document import ReplyDocument
from tui.widgets.chat.tool_card import ToolCard
from tui.widgets.status.prediction_status import format_stats

if TYPE_CHECKING:
    from engine.prediction import PredictionResult


class MessageView(Vertical):
    """What every message shows: who said it, and a highlight when selected."""

    DEFAULT_CSS = """
    MessageView {
        height: auto;
        padding: 0 1;
        margin: 0 0 1 0;
        & > .message--role { text-style: bold; height: 1; }
        &.-selected { background: $boost; }
    }
    """

    role = ""

    def copy_text(self) -> str:
        """What copying this message puts on the clipboard."""
        return ""


class UserMessageView(MessageView):
    DEFAULT_CSS = """
    UserMessageView {
        border-left: wide $role-user;
        & > .message--role { color: $role-user; }
        & > .message--text { color: $text; }
    }
    """

    role = "user"

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield Label("you", classes="message--role")
        # Plain text: what the person typed, exactly, with no markup read into it.
        yield Static(Content(self.text), classes="message--text")

    def copy_text(self) -> str:
        return self.text


class SystemPromptView(MessageView):
    DEFAULT_CSS = """
    SystemPromptView {
        border-left: wide $foreground 30%;
        color: $text-muted;
        & > .message--text { max-height: 3; }
    }
    """

    role = "system"

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield Label("system prompt", classes="message--role")
        yield Static(Content(self.text), classes="message--text")

    def copy_text(self) -> str:
        return self.text


class AssistantMessageView(MessageView):
    """A reply: reasoning (collapsible), the answer in Markdown, tool-call cards, stats."""

    DEFAULT_CSS = """
    AssistantMessageView {
        border-left: wide $role-assistant 60%;
        & > .message--role { color: $role-assistant; }
        & > ReplyDocument > Markdown {
            margin: 0;
            padding: 0;
            background: transparent;
            color: $role-assistant;
        }
        & > ReplyDocument.-empty { display: none; }
        /* The last paragraph's bottom margin would leave a blank line before the stats. */
        & > ReplyDocument > Markdown:last-child > MarkdownBlock:last-child { margin-bottom: 0; }
        & > .message--stats { color: $text-muted; height: auto; }
        & > .message--stats.-empty { display: none; }
        & > .message--error { color: $error; height: auto; }
    }
    """

    role = "assistant"

    def __init__(
        self,
        content: str = "",
        *,
        reasoning: str = "",
        stats: PredictionStats | None = None,
        streaming: bool = False,
        show_reasoning: bool = True,
    ) -> None:
        super().__init__()
        self.content = content
        self.reasoning = reasoning
        self.show_reasoning = show_reasoning
        self.streaming = streaming
        self.markdown = ReplyDocument(content, classes="" if content else "-empty")
        self.reasoning_block: ReasoningBlock | None = (
            ReasoningBlock(reasoning) if reasoning and show_reasoning else None
        )
        self._stats_view = Static("", classes="message--stats")
        self.cards: list[ToolCard] = []
        self._cards_by_index: dict[int, ToolCard] = {}
        self._stats = stats
        self._hidden: list[str] = []
        """Raw text of calls to unknown tools: on cards, so left out of the Markdown."""

    def compose(self) -> ComposeResult:
        yield Label("assistant", classes="message--role")
        if self.reasoning_block is not None:
            yield self.reasoning_block
        yield self.markdown
        yield from self.cards
        yield self._stats_view

    def on_mount(self) -> None:
        self.stats = self._stats
        if self.streaming:
            collector_hold.hold(self)

    def on_unmount(self) -> None:
        collector_hold.release(self)

    @property
    def stats(self) -> PredictionStats | None:
        return self._stats

    @stats.setter
    def stats(self, stats: PredictionStats | None) -> None:
        self._stats = stats
        self._stats_view.update(format_stats(stats) if stats is not None else "")
        self._stats_view.set_class(stats is None, "-empty")

    def copy_text(self) -> str:
        return self.content

    # --- building a restored reply --------------------------------------------------

    def add_card(self, card: ToolCard, index: int | None = None) -> ToolCard:
        """Add a card before the message is mounted (for a restored reply)."""
        self.cards.append(card)
        if index is not None:
            self._cards_by_index[index] = card
        return card

    def card_for_call(self, call_id: str) -> ToolCard | None:
        return next((c for c in self.cards if c.call_id == call_id), None)

    # --- streaming ------------------------------------------------------------------

    async def append_reasoning(self, text: str) -> None:
        if not text:
            return
        self.reasoning += text
        if not self.show_reasoning:
            return
        if self.reasoning_block is None:
            self.reasoning_block = ReasoningBlock(streaming=True)
            await self.mount(self.reasoning_block, before=self.markdown)
        await self.reasoning_block.append(text)

    async def append_content(self, text: str) -> None:
        if not text:
            return
        if not self.content and self.reasoning_block is not None:
            # The answer begins: the reasoning is done and folds away.
            await self.reasoning_block.finish(self.reasoning)
        self.content += text
        self.markdown.remove_class("-empty")
        await self.markdown.append(text)

    def card_at(self, index: int) -> ToolCard | None:
        return self._cards_by_index.get(index)

    async def show_unknown_tool(self, name: str, raw_text: str) -> ToolCard:
        """A call to a tool that is not defined: a card says so, and its raw text (which
        stays in the reply the model sees) is not shown as text."""
        card = ToolCard(name)
        self.cards.append(card)
        await self.mount(card, before=self._stats_view)
        card.set_unknown(raw_text)
        self._hidden.append(raw_text)
        return card

    def shown_text(self, content: str) -> str:
        """`content` as the Markdown shows it: without the raw text of unknown calls."""
        for raw in self._hidden:
            content = content.replace(raw, "", 1)
        return content

    async def begin_tool_call(self, index: int, call_id: str, name: str) -> ToolCard:
        card = self._cards_by_index.get(index)
        if card is not None and card.call_id != call_id and card.state == "streaming":
            # The call there failed (its text went back to the reply) and this one took
            # its index: a card of its own, not the old one's pieces.
            self.cards.remove(card)
            await card.remove()
            card = None
        if card is None:
            card = ToolCard(name, call_id)
            self.cards.append(card)
            self._cards_by_index[index] = card
            await self.mount(card, before=self._stats_view)
        return card

    async def finish(self, result: PredictionResult) -> None:
        """The round is over: render the whole text once, and show the stats."""
        # No class marks a streaming reply: a class change restyles every block in it.
        self.streaming = False
        collector_hold.release(self)
        # The engine's parsed result is the authority (a stop string or a tool call
        # may have been held back from the stream). What streamed stands as far as it
        # equals that: rebuilding every block of a long reply would hold the screen
        # for a quarter of a second just as the reply ends.
        self.content = result.content
        shown = self.shown_text(self.content)
        self.markdown.set_class(not shown, "-empty")
        await self.markdown.set_text(shown)
        self.reasoning = result.reasoning or self.reasoning
        if self.reasoning and self.show_reasoning and self.reasoning_block is None:
            self.reasoning_block = ReasoningBlock(self.reasoning)
            await self.mount(self.reasoning_block, before=self.markdown)
        if self.reasoning_block is not None:
            await self.reasoning_block.finish(self.reasoning, collapse=bool(self.content))
        for index, call in enumerate(result.tool_calls):
            card = self._cards_by_index.get(index)
            if card is None:
                card = await self.begin_tool_call(index, call.id, call.name)
            card.set_call(call.id, call.arguments)
        self.stats = result.stats

    async def show_error(self, error: str) -> None:
        self.streaming = False
        collector_hold.release(self)
        await self.markdown.finish()
        await self.mount(Static(Content(f"failed: {error}"), classes="message--error"))
