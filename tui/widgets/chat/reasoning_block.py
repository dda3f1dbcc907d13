"""The model's reasoning: a collapsible block that streams while the model thinks."""

from __future__ import annotations

from textual.widgets import Collapsible, Markdown
from textual.widgets._markdown import MarkdownStream

from tui.widgets.chat.reply_markdown import reply_markdown

THINKING_TITLE = "Thinking…"
DONE_TITLE = "Reasoning"


class ReasoningBlock(Collapsible):
    """Open while the reasoning streams in; closed once the answer starts.

    Like the answer, the text goes through one MarkdownStream while it streams, and
    is rendered once in full at the end (see `AssistantMessage`).
    """

    DEFAULT_CSS = """
    ReasoningBlock {
        border: none;
        padding: 0;
        margin: 0;
        background: transparent;
        color: $reasoning;
        & > CollapsibleTitle {
            padding: 0;
            color: $reasoning;
            text-style: italic;
        }
        & > Contents {
            padding: 0 0 0 2;
            border-left: vkey $reasoning 50%;
        }
        & Markdown {
            margin: 0;
            padding: 0;
            color: $reasoning;
            background: transparent;
        }
        & Markdown > MarkdownBlock:last-child { margin-bottom: 0; }
    }
    """

    def __init__(self, text: str = "", *, streaming: bool = False) -> None:
        self.markdown = reply_markdown(text)
        super().__init__(
            self.markdown,
            title=THINKING_TITLE if streaming else DONE_TITLE,
            collapsed=not streaming,
        )
        self.text = text
        self._stream: MarkdownStream | None = None

    async def append(self, text: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.markdown)
        self.text += text
        await self._stream.write(text)

    async def finish(self, text: str | None = None, *, collapse: bool = True) -> None:
        """The reasoning is complete: stop streaming and render the whole text once."""
        if text is not None:
            self.text = text
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        await self.markdown.update(self.text)
        self.title = DONE_TITLE
        if collapse:
            self.collapsed = True
