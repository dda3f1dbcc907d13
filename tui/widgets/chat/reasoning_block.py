"""The model's reasoning: a collapsible block that streams while the model thinks."""

from __future__ import annotations

from textual.widgets import Collapsible

from tui.widgets.chat.reply_document import ReplyDocument

THINKING_TITLE = "Thinking…"
DONE_TITLE = "Reasoning"


class ReasoningBlock(Collapsible):
    """Open while the reasoning streams in; closed once the answer starts.

    Like the answer, the text is a `ReplyDocument`: only its live tail is parsed
    again while it streams (see `AssistantMessageView`).
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
        & ReplyDocument > Markdown:last-child > MarkdownBlock:last-child { margin-bottom: 0; }
    }
    """

    def __init__(self, text: str = "", *, streaming: bool = False) -> None:
        self.markdown = ReplyDocument(text)
        super().__init__(
            self.markdown,
            title=THINKING_TITLE if streaming else DONE_TITLE,
            collapsed=not streaming,
        )
        self.text = text

    async def append(self, text: str) -> None:
        self.text += text
        await self.markdown.append(text)

    async def finish(self, text: str | None = None, *, collapse: bool = True) -> None:
        """The reasoning is complete: what streamed stands where it equals `text`."""
        if text is not None:
            self.text = text
        await self.markdown.set_text(self.text)
        self.title = DONE_TITLE
        if collapse:
            self.collapsed = True
