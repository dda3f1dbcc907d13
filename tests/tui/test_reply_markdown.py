"""A model's line breaks survive in chat: hard breaks, streamed and final alike."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from textual.app import App, ComposeResult
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownBlock

from themes import DEFAULT_ROLE_COLORS
from tui.widgets.chat.message_views import AssistantMessageView
from tui.widgets.chat.reply_markdown import line_break_parser

REPLY = "elephant.\nelephantuser\nand a **third** line\n\n- a list\n- still Markdown\n\nend"
"""The raw text of the issue: single newlines that CommonMark folds into spaces."""


def rendered(markdown: Markdown) -> list[str]:
    """The text of each block as drawn."""
    return [str(block.render()) for block in markdown.query(MarkdownBlock) if not block.children]


class OneReply(App[None]):
    def __init__(self, view: AssistantMessageView) -> None:
        super().__init__()
        self.view = view

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(DEFAULT_ROLE_COLORS)

    def compose(self) -> ComposeResult:
        yield self.view


def test_a_single_newline_is_a_hard_break_and_markdown_still_parses() -> None:
    tokens = line_break_parser().parse("one\ntwo **bold**")
    kinds = [child.type for child in tokens[1].children or ()]
    assert "softbreak" not in kinds and "hardbreak" in kinds and "strong_open" in kinds


async def test_a_restored_reply_keeps_its_lines() -> None:
    app = OneReply(AssistantMessageView(REPLY))
    async with app.run_test() as pilot:
        await pilot.pause()
        blocks = rendered(app.view.markdown)
        assert "elephant.\nelephantuser\nand a third line" in blocks
        assert "end" in blocks
        assert any("still Markdown" in block for block in blocks)


async def test_the_final_render_equals_the_streamed_one() -> None:
    app = OneReply(AssistantMessageView(streaming=True))
    async with app.run_test() as pilot:
        view = app.view
        for start in range(0, len(REPLY), 7):
            await view.append_content(REPLY[start : start + 7])
            await pilot.pause()
        await pilot.pause(0.3)
        streamed = rendered(view.markdown)
        result = SimpleNamespace(content=REPLY, reasoning="", tool_calls=(), stats=None)
        await view.finish(cast(Any, result))
        await pilot.pause()
        assert rendered(view.markdown) == streamed
        # A full render from scratch is the same too.
        await view.markdown.update(REPLY)
        await pilot.pause()
        assert rendered(view.markdown) == streamed
        assert "elephant.\nelephantuser\nand a third line" in streamed


def test_snapshot_a_reply_with_line_breaks(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(OneReply(AssistantMessageView(REPLY)), terminal_size=(60, 16))
