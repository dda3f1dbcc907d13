"""A model's text as Markdown that streams in at a cost that does not grow with its length.

Textual's `Markdown.append` re-parses only the last top-level block, but the
document stays one widget holding every block: each frame lays it out again in
full, and the last block (a whole story, when a model writes lines without a
blank one between: one paragraph of hard breaks) is re-parsed, with linkify, and
re-wrapped. So a frame cost more the longer the reply (issue 12: the event loop
stalled 100+ ms into a long reply).

A `ReplyDocument` is a column of `Markdown` segments. Only the last, the tail,
changes; in it only the live block, the last top-level block (the next token may
still change it), is parsed again, without linkify. Two things bound the work:

- Once the tail holds `FREEZE_AFTER_BLOCKS` finished blocks, or
  `FREEZE_AFTER_CHARS` of finished text, they are frozen: the
  live block moves to a new tail and the old one never changes again, so
  Textual's arrangement cache keeps its layout. A frozen segment whose text holds
  a link is rendered once more with linkify as it freezes; the tail, at the end.
- A live paragraph longer than `SPLIT_AFTER_LINES` lines (or `SPLIT_AFTER_CHARS`)
  is cut at a line break:
  the lines before become a finished piece (a paragraph with no bottom margin),
  the rest goes on as the live block. A cut is made only where the pieces render
  as the whole paragraph does (no block starts there, no emphasis, code span,
  link or HTML tag is left open before it), and if a later line turns the
  paragraph into something else (a setext underline makes it a heading), the
  document is parsed again from the start.

The finished render equals a fresh render of the whole text (`reply_markdown`),
line for line: top-level blocks do not depend on what follows them (a link
reference definition, which may, makes `finish` render the whole text again), and
the margin between two segments is the one their blocks share in one document
(Textual collapses sibling margins, the larger wins; across segments both count).
"""

from __future__ import annotations

import re
import threading
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from textual.app import ComposeResult
from textual.geometry import Spacing
from textual.widget import Widget
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownBlock, MarkdownParagraph

from tui.widgets.chat import collector_hold
from tui.widgets.chat.reply_markdown import line_break_parser, reply_markdown

FREEZE_AFTER_BLOCKS = 12
"""Finished blocks the tail holds before they are frozen into a segment of their own."""

FREEZE_AFTER_CHARS = 4000
"""Finished text the tail holds before it is frozen (what `finish` may render again)."""

SPLIT_AFTER_LINES = 16
"""Lines a live paragraph reaches before its finished lines are cut off as a piece."""

SPLIT_AFTER_CHARS = 1500
"""Or characters: lines of a base model's text are long."""

PIECE = "-piece"
"""The class of a paragraph's piece: the lines of one paragraph, more follow it."""

_LINE_BREAK = re.compile(r"\r\n?|\n")
"""Where markdown-it ends a line (Python's `splitlines` knows more breaks: \\x0c, \\u2028…)."""

_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:", re.MULTILINE)
"""A link reference definition: it changes links in blocks before it, so a reply
that has one is rendered whole again at the end."""

_MAY_OPEN = re.compile(r"(?<![\w])_(?=\S)|[*~](?=\S)|`")
"""A literal delimiter that a later line could still close (emphasis, strike, code)."""


@cache
def streaming_parser() -> MarkdownIt:
    """`line_break_parser` without linkify: what the live block is parsed with.

    Linkify is a tenth of parsing, and a link may still grow; it is done once per
    finished segment instead. One instance serves every document (a parse keeps no
    state in it).
    """
    parser = line_break_parser()
    parser.options["linkify"] = False
    return parser


@cache
def _full_parser() -> MarkdownIt:
    return line_break_parser()


def has_links(text: str) -> bool:
    """Whether linkify would find a link in `text` (a streamed render lacks it)."""
    linkify = _full_parser().linkify
    return linkify is not None and bool(linkify.test(text))


_warm_up = threading.Lock()
_warming: list[threading.Thread] = []


def warm_up_linkify() -> None:
    """Compile linkify's patterns in a thread (60 ms on first use, lazily): so the
    first reply does not pay for it on the event loop."""
    with _warm_up:
        if not _warming:
            # A parser of its own: a LinkifyIt keeps state between calls.
            linkify = line_break_parser().linkify
            if linkify is not None:
                warm = threading.Thread(target=linkify.test, args=("example.com",), daemon=True)
                _warming.append(warm)
                warm.start()


def _line_offsets(text: str) -> list[int]:
    """The offset in `text` where each of its lines begins, as markdown-it counts lines."""
    return [0, *(match.end() for match in _LINE_BREAK.finditer(text))]


def _blocks(segment: Markdown) -> list[MarkdownBlock]:
    return [child for child in segment.children if isinstance(child, MarkdownBlock)]


def _own_margin(block: MarkdownBlock) -> Spacing:
    """A block's margin from the style sheet, for where it stands now.

    Styles follow a move in the DOM a little later (the last block of a reply has
    no margin): computed here and now instead.
    """
    block.app.stylesheet.apply(block)
    return block._css_styles.margin


def _is_one_paragraph(tokens: list[Token]) -> bool:
    return [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]


def _left_open(tokens: list[Token]) -> bool:
    """Whether a paragraph's inline text leaves something a later line could close:
    a delimiter, a `[` without its `]`, a `<` without its `>`."""
    for token in tokens:
        for child in token.children or ():
            if child.type != "text":
                continue
            text = child.content
            if _MAY_OPEN.search(text):
                return True
            if text.rfind("[") > text.rfind("]") or text.rfind("<") > text.rfind(">"):
                return True
    return False


def _same_content(whole: MarkdownBlock, first: MarkdownBlock, rest: MarkdownBlock) -> bool:
    """Whether `first` and `rest` on two lines draw exactly what `whole` draws."""
    joined = first._content + "\n" + rest._content
    return joined.plain == whole._content.plain and joined.spans == whole._content.spans


class ReplyDocument(Widget):
    """A model's text in Markdown segments: finished ones frozen, a live tail.

    `source` is the whole text; `append` streams more in; `finish` makes the render
    final (links, reference definitions); `set_text` ends with a text that may
    differ from the streamed one; `update` renders a text at once in one segment (a
    restored reply is one plain `reply_markdown`).
    """

    DEFAULT_CSS = """
    ReplyDocument {
        height: auto;
        layout: vertical;
    }
    """

    def __init__(self, text: str = "", *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self._source = text
        self._tail = reply_markdown(text)
        self._tail_start = 0
        """Where the tail segment's text begins in `_source`."""
        self._live_start = 0
        """Where the live block's text begins: the tail is parsed again from here."""
        self._live: MarkdownBlock | None = None
        """The live block's widget (None before the first block)."""
        self._split_from: int | None = None
        """Where the live paragraph began, when its first lines were cut off as pieces."""
        self._no_split = False
        """The live paragraph leaves something open: no cut in it would be exact."""
        self._streamed = False
        """Whether the tail was built by `append` (without linkify) since the last render."""

    @property
    def source(self) -> str:
        """The Markdown text shown."""
        return self._source

    @property
    def segments(self) -> list[Markdown]:
        return list(self.query_children(Markdown))

    def compose(self) -> ComposeResult:
        yield self._tail

    def on_mount(self) -> None:
        warm_up_linkify()

    # --- streaming ------------------------------------------------------------------

    async def append(self, fragment: str) -> None:
        """Add text at the end: the live block is parsed again; the finished stand."""
        if not fragment:
            return
        with self.app.batch_update():
            if not self._streamed:
                # A tail rendered in full (a restored reply) streams on from its start.
                self._streamed = True
                await self._restart()
            self._source += fragment
            await self._parse_live()

    async def _restart(self) -> None:
        """Drop every block and parse the whole text again, as a stream."""
        for segment in self.segments[1:]:
            await segment.remove()
        self._tail = self.segments[0]
        await self._tail.remove_children()
        self._tail_start = self._live_start = 0
        self._live, self._split_from, self._no_split = None, None, False

    async def _parse_live(self) -> None:
        """Parse the text from the live block on, and bring the tail's blocks up to it."""
        tail = self._tail
        tail._markdown = self._source[self._tail_start :]
        live_text = self._source[self._live_start :]
        tokens = streaming_parser().parse(live_text)
        if self._split_from is not None and not (
            tokens
            and tokens[0].type == "paragraph_open"
            and tokens[0].map is not None
            and tokens[0].map[0] == 0
        ):
            # The pieces of a cut paragraph are no longer one paragraph (a setext
            # underline came, say): parse everything again.
            await self._restart()
            await self._parse_live()
            return
        new_blocks = list(tail._parse_markdown(tokens))
        live_line = next(
            (t.map[0] for t in reversed(tokens) if t.map is not None and t.level == 0), 0
        )
        if live_line > 0:
            # A new block began: the live paragraph, cut or not, is finished.
            self._split_from, self._no_split = None, False
        # A block's source range counts the lines of its segment's text.
        first_line = len(_line_offsets(self._source[self._tail_start : self._live_start])) - 1
        for block in new_blocks:
            start, end = block.source_range
            block.source_range = (start + first_line, end + first_line)
        shown = list(new_blocks)
        to_mount = new_blocks
        old = self._live
        if old is not None:
            if new_blocks and new_blocks[0].source_range[0] == first_line:
                old.source_range = new_blocks[0].source_range
                # A paragraph, a fence, a table are updated in place; others replaced.
                await old._update_from_block(new_blocks[0])
                if new_blocks[0].parent is None:
                    shown[0] = old
                to_mount = new_blocks[1:]
            else:
                await old.remove()
        if to_mount:
            await tail.mount_all(to_mount)
        self._live = next(
            (b for b in shown if b.source_range[0] == first_line + live_line), None
        )
        self._live_start += _line_offsets(live_text)[live_line] if tokens else 0
        if self._live is None:
            return
        if (
            len(_blocks(tail)) - 1 >= FREEZE_AFTER_BLOCKS
            or self._live_start - self._tail_start >= FREEZE_AFTER_CHARS
        ):
            await self._freeze()
        elif isinstance(self._live, MarkdownParagraph) and not self._no_split:
            await self._split_live()
        await self._fix_boundary()

    async def _split_live(self) -> None:
        """Cut a long live paragraph: its lines but the last complete one become a piece."""
        live = self._live
        assert live is not None
        text = self._source[self._live_start :]
        offsets = _line_offsets(text)
        complete = len(offsets) - 1
        if complete < 2 or (complete < SPLIT_AFTER_LINES and len(text) < SPLIT_AFTER_CHARS):
            return
        cut = offsets[complete - 1]
        first_text, rest_text = text[:cut], text[cut:]
        parser = streaming_parser()
        first_tokens = parser.parse(first_text)
        if not _is_one_paragraph(first_tokens) or _left_open(first_tokens):
            # Every later cut keeps these lines before it: none would be exact.
            self._no_split = True
            return
        last_line = first_text.rstrip("\r\n").rsplit("\n", 1)[-1]
        next_line = rest_text[: offsets[complete] - cut]
        rest_tokens = parser.parse(rest_text)
        if (
            not _is_one_paragraph(parser.parse(last_line + "\n" + next_line))
            or not rest_tokens
            or rest_tokens[0].type != "paragraph_open"
            or rest_tokens[0].map is None
            or rest_tokens[0].map[0] != 0
        ):
            return  # the next line would start a block on its own: try a later line
        tail = self._tail
        first = next(iter(tail._parse_markdown(first_tokens)))
        rest = next(iter(tail._parse_markdown(rest_tokens)))
        if not _same_content(live, first, rest):
            return
        live.set_content(first._content)
        live._copy_context(first)
        start, _ = live.source_range
        live.source_range = (start, start + complete - 1)
        live.add_class(PIECE)
        if self._split_from is None:
            self._split_from = self._live_start
        self._live = None
        self._live_start += cut
        await self._parse_live()
        # Pieces of one paragraph follow each other with no margin between.
        top, right, _, left = _own_margin(live)
        live.styles.margin = Spacing(top, right, 0, left)

    async def _freeze(self) -> None:
        """The tail's finished blocks become a segment that never changes; the live block
        starts a new tail."""
        frozen = self._tail
        live = self._live
        assert live is not None
        cut_paragraph = _blocks(frozen)[-2].has_class(PIECE)
        await live.remove()
        self._live = None
        frozen_text = self._source[self._tail_start : self._live_start]
        frozen._markdown = frozen_text
        if has_links(frozen_text):
            # Rendered again, with its links: once, a few blocks. A paragraph cut in
            # the middle still ends there.
            await frozen.update(frozen_text)
            _blocks(frozen)[-1].set_class(cut_paragraph, PIECE)
        self._tail = reply_markdown()
        self._tail_start = self._live_start
        await self.mount(self._tail)
        await self._parse_live()
        # What stands for good (this segment, its caches) leaves the collector's reach.
        collector_hold.keep()

    async def _fix_boundary(self) -> None:
        """The margin between the last frozen segment and the tail: the larger of the two
        blocks' margins, as in one document, not their sum."""
        segments = self.segments
        if len(segments) < 2:
            return
        before, after = _blocks(segments[-2]), _blocks(segments[-1])
        if not before:
            return
        last = before[-1]
        top_, right, own, left = _own_margin(last)
        if last.has_class(PIECE):
            own = 0
        top = _own_margin(after[0]).top if after else 0
        margin = Spacing(top_, right, max(own, top) - top, left)
        if last.styles.margin != margin:
            last.styles.margin = margin

    async def finish(self) -> None:
        """The text is complete: render what streaming left out (links in the tail, the
        effect of reference definitions)."""
        if not self._streamed:
            return
        self._streamed = False
        self._live, self._split_from = None, None
        if _REFERENCE_DEFINITION.search(self._source):
            await self.update(self._source)
            return
        tail_text = self._source[self._tail_start :]
        if has_links(tail_text):
            await self._render_tail(tail_text)

    async def _render_tail(self, text: str) -> None:
        """Render the tail again from `text`, in full (pieces of a cut paragraph in it
        become one paragraph again)."""
        with self.app.batch_update():
            await self._tail.update(text)
            await self._fix_boundary()

    async def update(self, text: str) -> None:
        """Show `text`, rendered in full in one segment."""
        self._streamed = False
        self._source = text
        self._tail_start = self._live_start = 0
        self._live, self._split_from, self._no_split = None, None, False
        if not self.is_mounted:
            self._tail = reply_markdown(text)  # what `compose` will yield
            return
        with self.app.batch_update():
            for segment in self.segments[1:]:
                await segment.remove()
            self._tail = self.segments[0]
            await self._tail.update(text)

    async def set_text(self, text: str) -> None:
        """End with `text`, which may differ from what streamed (a stop string held back,
        a tool call's text): the frozen segments it begins with stand, the rest is
        rendered again."""
        if text == self._source:
            await self.finish()
            return
        frozen = self._source[: self._tail_start]
        if not frozen or not text.startswith(frozen) or _REFERENCE_DEFINITION.search(text):
            await self.update(text)
            return
        self._streamed = False
        self._live, self._split_from = None, None
        self._source = text
        await self._render_tail(text[self._tail_start :])
        if not _blocks(self._tail) and len(self.segments) > 1:
            # Nothing is left after the frozen text: its last segment ends the reply.
            await self._tail.remove()
            self._tail = self.segments[-1]
            self._tail_start = len(text) - len(self._tail.source)
            last = _blocks(self._tail)[-1]
            last.styles.clear_rule("margin")
            last.app.stylesheet.apply(last)


def drawn_blocks(widget: Widget) -> list[tuple[str, str]]:
    """The blocks of a Markdown widget or a `ReplyDocument`, nested ones too, as (kind,
    text): what a reader sees, the pieces of a cut paragraph joined into one."""
    drawn: list[tuple[str, str]] = []
    joining = False
    for block in widget.query(MarkdownBlock):
        kind, text = type(block).__name__, str(block._content)
        if joining and drawn:
            drawn[-1] = (kind, drawn[-1][1] + "\n" + text)
        else:
            drawn.append((kind, text))
        joining = block.has_class(PIECE)
    return drawn
