"""A TextArea that shows which text the model generated."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import TextArea

from tui.widgets.complete.spans import (
    Span,
    changed_range,
    clamp_spans,
    line_ranges,
    line_starts,
    shift_spans,
)

GENERATED = "llamaterm.generated"
"""The highlight name of generated text in the TextArea's theme."""


class CompletionArea(TextArea):
    """Text the person writes and the model continues, the model's part in `$generated-text`.

    The model's text is appended with `append_generated`; everything else (typing,
    pasting, undo) is the person's. Generated ranges follow the text through edits.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"completion-area--generated"}

    DEFAULT_CSS = """
    CompletionArea > .completion-area--generated {
        color: $generated-text;
    }
    """

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        # Set before TextArea.__init__, which builds the highlight map once already.
        self._spans: list[Span] = []
        self._known_text = ""
        self._appending = False
        self._extend_last_span = False
        super().__init__(text, **kwargs)

    @property
    def generated_spans(self) -> list[Span]:
        """Character offsets `(start, end)` of the generated text, in order."""
        return list(self._spans)

    @property
    def generated_text(self) -> str:
        text = self.text
        return "".join(text[start:end] for start, end in self._spans)

    def load_session(self, text: str, spans: Iterable[Sequence[int]]) -> None:
        """Replace the text and its generated ranges (for a saved session)."""
        self.load_text(text)
        self._spans = clamp_spans(spans, len(self._known_text))
        self._build_highlight_map()
        self.move_cursor(self.document.end)

    def begin_generation(self) -> None:
        """The model is about to write: the next `append_generated` starts a new span.

        The cursor is hidden and parked at the start while text streams in, then put at
        the end by `end_generation`. TextArea keys its cache of rendered lines on the
        selection, so a cursor that moved with every flush would re-render every
        visible line each time; parked, only the lines that change are drawn.
        """
        self._extend_last_span = False
        self.show_cursor = False
        self.move_cursor((0, 0))
        self.scroll_end(animate=False, immediate=True)

    def append_generated(self, text: str) -> None:
        """Append model output at the end; keep it in view unless the person scrolled up."""
        if not text:
            return
        following = self.scroll_y >= self.max_scroll_y
        self._appending = True
        try:
            self.insert(text, self.document.end)
        finally:
            self._appending = False
        if following:
            self.scroll_end(animate=False, immediate=True)

    def end_generation(self) -> None:
        """The model is done: the cursor comes back, at the end of the text."""
        self.show_cursor = True
        self.move_cursor(self.document.end)

    def append_text(self, text: str) -> None:
        """Append the person's text (e.g. a terminal command) at the end."""
        self.insert(text, self.document.end)
        self.move_cursor(self.document.end)

    # --- highlights ---------------------------------------------------------

    def _build_highlight_map(self) -> None:
        # TextArea calls this after every change of the document (edits, undo, redo,
        # load_text), which makes it the one place to keep the spans in step.
        if self._highlight_query:
            super()._build_highlight_map()
        else:
            # Plain text: TextArea would clear every rendered line here; keeping the
            # lines above the change makes streaming cost a line or two per frame,
            # not a whole screenful.
            self._highlights.clear()
        changed_from = self._track_change()
        starts = line_starts(self.document.lines, len(self.document.newline))
        if changed_from is not None and not self._highlight_query:
            self._forget_lines_from(changed_from, starts)
        highlights = self._highlights
        for span in self._spans:
            for row, start, end in line_ranges(span, starts):
                line = self.document.get_line(row)
                # TextArea's highlights are byte offsets into the line's UTF-8.
                start_byte = len(line[:start].encode("utf-8"))
                end_byte = None if end is None else len(line[:end].encode("utf-8"))
                highlights[row].append((start_byte, end_byte, GENERATED))

    def _track_change(self) -> int | None:
        """Shift the spans over the last change; the offset where it began, or None."""
        new = self.document.text
        old = self._known_text
        if new == old:
            return None
        top, bottom, new_end = changed_range(old, new)
        spans = shift_spans(self._spans, top, bottom, new_end)
        if self._appending and new_end > top:
            if self._extend_last_span and spans and spans[-1][1] == top:
                spans[-1] = (spans[-1][0], new_end)
            else:
                spans.append((top, new_end))
                spans.sort()
            self._extend_last_span = True
        self._spans = spans
        self._known_text = new
        return top

    def _forget_lines_from(self, offset: int, starts: list[int]) -> None:
        """Drop the cached rendering of the wrapped rows from the change on."""
        row = max(0, bisect_right(starts, offset) - 1)
        column = offset - starts[row] if starts else 0
        try:
            # One wrapped row earlier too: the change may pull the word before it down.
            first = max(0, self.wrapped_document.location_to_offset((row, column)).y - 1)
        except (IndexError, ValueError):
            first = 0
        cache = self._line_cache
        for key in list(cache.keys()):
            # TextArea's cache key is (size, scroll_x, wrapped row, ...).
            if not (isinstance(key, tuple) and len(key) > 2 and isinstance(key[2], int)):
                cache.clear()
                return
            if key[2] >= first:
                cache.discard(key)

    def render_lines(self, crop: Region) -> list[Strip]:
        # The generated style comes from CSS (so from the app theme); put it where the
        # TextArea looks highlight names up, whenever the theme has changed it.
        theme = self._theme
        if theme is not None:
            style = self.get_component_rich_style("completion-area--generated", partial=True)
            if theme.syntax_styles.get(GENERATED) != style:
                theme.syntax_styles = {**theme.syntax_styles, GENERATED: style}
                self._line_cache.clear()
        return super().render_lines(crop)
