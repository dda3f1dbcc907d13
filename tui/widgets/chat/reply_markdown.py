"""The Markdown of a model's text in a chat: its line breaks kept.

CommonMark folds a single line break into a space (a "soft break"), so a poem, a
list without markers or a shell output streamed by a model ends up on one line.
Chat UIs render a model's line breaks as they are; so does this parser: the same
"gfm-like" MarkdownIt as Textual's default, with every soft break turned into a
hard one. Both the stream and the final `update()` use it, so the finished render
is the streamed one.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from textual.widgets import Markdown


def _hard_breaks(state: StateCore) -> None:
    for token in state.tokens:
        if token.type == "inline" and token.children:
            for child in token.children:
                if child.type == "softbreak":
                    child.type = "hardbreak"


def line_break_parser() -> MarkdownIt:
    """Textual's default parser, but a single newline is a line break."""
    parser = MarkdownIt("gfm-like")
    parser.core.ruler.push("hard_breaks", _hard_breaks)
    return parser


def reply_markdown(text: str = "", *, classes: str | None = None) -> Markdown:
    """A Markdown widget for a model's text, rendered with `line_break_parser`."""
    return Markdown(text, classes=classes, parser_factory=line_break_parser)
