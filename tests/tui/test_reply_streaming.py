"""A reply streamed in chunks draws exactly what a fresh render of its text draws, and
streaming a long reply keeps the part that is parsed and laid out again small."""

from __future__ import annotations

import gc
import random
from types import SimpleNamespace
from typing import Any, cast

import pytest
from textual.app import App, ComposeResult
from textual.widgets._markdown import MarkdownBlock

from themes import DEFAULT_ROLE_COLORS
from tui.widgets.chat import collector_hold
from tui.widgets.chat.message_views import AssistantMessageView
from tui.widgets.chat.reply_document import (
    FREEZE_AFTER_BLOCKS,
    FREEZE_AFTER_CHARS,
    SPLIT_AFTER_CHARS,
    SPLIT_AFTER_LINES,
    ReplyDocument,
    drawn_blocks,
)

SIZE = (80, 400)
"""Tall enough that every line of each reply below is on the screen."""


def chapter(n: int) -> str:
    return "\n".join(
        [
            f"# Chapter {n}",
            "",
            f"The keeper climbed **the stairs** and saw `lamp {n}`.",
            "A second line, kept as a line.",
            "",
            "- one",
            "- two with *em*",
            "  continued",
            "- three",
            "",
            "```python",
            *(f"x{j} = {j} * 2" for j in range(4)),
            "```",
            "| a | b |",
            "|---|---|",
            *(f"| {j} | {j * j} |" for j in range(3)),
            "",
            "Setext title",
            "===",
            "1. first",
            "2. second",
            "",
            "> a quote",
            "> on two lines",
            "",
            *(f"line {j} of a long paragraph, see example.com or a_b" for j in range(36)),
            "",
            "after it, **bold",
            "across lines** and `code`",
            "",
            "---",
            "",
        ]
    )


MIXED = "\n".join(chapter(n) for n in range(2))
"""Headings, lists, fences, tables, quotes, rules, links and a long paragraph, often."""

BASE_MODEL = "".join(
    f"Write a long story about the keeper who finds map {n}. Do not stop. Berikut\n"
    f"LoginPage{'user' if n % 3 else 'User'}\n"
    for n in range(45)
)
"""What the starter (a base model) writes: lines and lines, never a blank one."""

TEXTS = {
    "mixed": MIXED,
    "base model": BASE_MODEL,
    # The underline makes the whole paragraph before it a heading: its pieces join.
    "setext after a long paragraph": "".join(f"word {n}\n" for n in range(40))
    + "---\nand on\n",
    # An emphasis opened early and closed 40 lines later: no cut is exact in between.
    "emphasis across many lines": "*open\n" + "".join(f"l {n}\n" for n in range(40)) + "shut*\n",
    "a code span left open": "`x\n" + "".join(f"l {n}\n" for n in range(30)) + "y`\n",
    # A definition at the end changes a link far before it.
    "reference definition": "see [the map]\n\n" + "para\n\n" * 30 + "[the map]: http://x.org\n",
    "a list that interrupts": "".join(f"l {n}\n" for n in range(20)) + "- item\n- item 2\n",
}


class OneReply(App[None]):
    def __init__(self, view: AssistantMessageView) -> None:
        super().__init__()
        self.view = view

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(DEFAULT_ROLE_COLORS)

    def compose(self) -> ComposeResult:
        yield self.view


def screen_lines(app: App[Any]) -> list[tuple[tuple[str, Any], ...]]:
    """Every line of the screen as (text, style) runs, as drawn (selection offsets and
    link ids left out: they are not drawn)."""
    return [
        tuple(
            (segment.text, segment.style.clear_meta_and_links() if segment.style else None)
            for segment in strip
        )
        for strip in app.screen._compositor.render_strips()
    ]


def ended(text: str) -> Any:
    return cast(Any, SimpleNamespace(content=text, reasoning="", tool_calls=(), stats=None))


async def stream(text: str, sizes: list[int], *, final: str | None = None) -> tuple[Any, Any]:
    """Stream `text` in chunks of `sizes`, end with `final`: the screen and the blocks."""
    app = OneReply(AssistantMessageView(streaming=True))
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        start = 0
        for size in sizes:
            if start >= len(text):
                break
            await view.append_content(text[start : start + size])
            start += size
        await view.append_content(text[start:])
        await pilot.pause()
        await view.finish(ended(text if final is None else final))
        await pilot.pause()
        return screen_lines(app), drawn_blocks(view.markdown)


async def fresh(text: str) -> tuple[Any, Any]:
    app = OneReply(AssistantMessageView(text))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        return screen_lines(app), drawn_blocks(app.view.markdown)


CHUNKINGS = {
    "9 at a time": [9] * 100_000,
    "1 to 60 at random": [random.Random(5).randint(1, 60) for _ in range(100_000)],
    "whole lines and more": [80, 1, 150] * 10_000,
}


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("name", list(TEXTS))
async def test_a_streamed_reply_draws_what_a_fresh_render_draws(name: str, chunking: str) -> None:
    text = TEXTS[name]
    streamed_lines, streamed_blocks = await stream(text, CHUNKINGS[chunking])
    fresh_lines, fresh_blocks = await fresh(text)
    assert streamed_blocks == fresh_blocks
    assert streamed_lines == fresh_lines


async def test_one_character_at_a_time_too() -> None:
    text = chapter(0)
    assert await stream(text, [1] * len(text)) == await fresh(text)


async def test_a_final_text_shorter_than_the_stream_is_drawn_as_itself() -> None:
    """A stop string streamed, then held back by the engine: the end shows its text."""
    text = MIXED
    for final in (text[: text.index("# Chapter 1")], text + "more"):
        assert await stream(text, [40] * 10_000, final=final) == await fresh(final)


async def test_a_long_reply_is_parsed_and_laid_out_only_at_its_end() -> None:
    app = OneReply(AssistantMessageView(streaming=True))
    text = BASE_MODEL * 3 + MIXED
    async with app.run_test(size=(80, 24)) as pilot:
        document = app.view.markdown
        assert isinstance(document, ReplyDocument)
        first_blocks: list[MarkdownBlock] = []
        for start in range(0, len(text), 50):
            await document.append(text[start : start + 50])
            segments = document.segments
            if len(segments) > 1 and not first_blocks:
                first_blocks = list(segments[0].query(MarkdownBlock))
            tail = segments[-1]
            # The part that changes stays small however long the reply grows.
            assert len(tail.children) <= FREEZE_AFTER_BLOCKS + 1
            assert len(tail.source) <= FREEZE_AFTER_CHARS + 2 * SPLIT_AFTER_CHARS
            live = tail.children[-1] if tail.children else None
            if live is not None and type(live).__name__ == "MarkdownParagraph":
                assert len(str(live._content).splitlines()) <= SPLIT_AFTER_LINES + 1
        await pilot.pause()
        assert len(document.segments) > 3
        # The first frozen segment was never rebuilt.
        assert list(document.segments[0].query(MarkdownBlock)) == first_blocks


async def test_links_wait_for_the_end_of_their_part() -> None:
    """While a part streams it is parsed without linkify; once finished, with it."""

    def has_link(block: MarkdownBlock) -> bool:
        return any("@click" in str(span.style) for span in block._content.spans)

    app = OneReply(AssistantMessageView(streaming=True))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.view
        await view.append_content("see example.com\n")
        await pilot.pause()
        assert not any(has_link(b) for b in view.markdown.query(MarkdownBlock))
        await view.finish(ended("see example.com\n"))
        await pilot.pause()
        assert any(has_link(b) for b in view.markdown.query(MarkdownBlock))


async def test_the_collector_leaves_the_old_heap_alone_while_a_reply_streams() -> None:
    """Full collections over the whole heap were the longest stalls of a long reply."""
    app = OneReply(AssistantMessageView(streaming=True))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.view
        await view.append_content("a line\n")
        await pilot.pause()
        assert gc.get_freeze_count() > 0
        await view.finish(ended("a line\n"))
        assert not collector_hold.holding()
        # Unfrozen a moment later, not on the reply's last frame.
        assert gc.get_freeze_count() > 0
        await pilot.pause(collector_hold.THAW_AFTER + 0.2)
        assert gc.get_freeze_count() == 0


async def test_a_reply_removed_while_streaming_lets_the_collector_go() -> None:
    app = OneReply(AssistantMessageView(streaming=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.view.append_content("a line\n")
        await pilot.pause()
        assert collector_hold.holding()
        await app.view.remove()
        assert not collector_hold.holding()
        await pilot.pause(collector_hold.THAW_AFTER + 0.2)
        assert gc.get_freeze_count() == 0
