"""Ranges of generated text in an editable document, kept in place across edits.

A span is `(start, end)`: character offsets into the document's text, end
exclusive. Offsets (rather than rows and columns) make spans cheap to shift and
to save. Edits are found by comparing the text before and after (common prefix
and suffix), which covers typing, pasting, undo and redo alike. Text typed right
after a span, or right before it, is the person's, not the model's.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

Span = tuple[int, int]


def changed_range(old: str, new: str) -> tuple[int, int, int]:
    """`(start, old_end, new_end)`: `old[start:old_end]` became `new[start:new_end]`."""
    if new.startswith(old):
        # The common case while streaming: text appended at the end.
        return len(old), len(old), len(new)
    limit = min(len(old), len(new))
    # Binary search on slices: each comparison is a C-speed memcmp.
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if old[:middle] == new[:middle]:
            low = middle
        else:
            high = middle - 1
    prefix = low
    low, high = 0, limit - prefix
    while low < high:
        middle = (low + high + 1) // 2
        if old[len(old) - middle :] == new[len(new) - middle :]:
            low = middle
        else:
            high = middle - 1
    suffix = low
    return prefix, len(old) - suffix, len(new) - suffix


def shift_span(span: Span, top: int, bottom: int, new_end: int) -> Span | None:
    """The span after `top..bottom` is replaced by text ending at `new_end`; None if gone."""
    start, end = span
    delta = new_end - bottom
    if start < top:
        new_start = start
    elif start <= bottom:
        # Inside the replaced range, or text inserted just before: the span begins after it.
        new_start = new_end
    else:
        new_start = start + delta
    if end <= top:
        new_stop = end
    elif end <= bottom:
        # The tail of the span was replaced: the new text is not generated.
        new_stop = top
    else:
        new_stop = end + delta
    if new_start >= new_stop:
        return None
    return new_start, new_stop


def shift_spans(spans: Iterable[Span], top: int, bottom: int, new_end: int) -> list[Span]:
    shifted = (shift_span(span, top, bottom, new_end) for span in spans)
    return [span for span in shifted if span is not None]


def clamp_spans(spans: Iterable[Sequence[int]], length: int) -> list[Span]:
    """Spans that fit a text of `length` characters: sorted, merged, empty ones dropped."""
    clamped = sorted(
        (max(0, int(start)), min(length, int(end))) for start, end in spans if start < end
    )
    merged: list[Span] = []
    for start, end in clamped:
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def line_starts(lines: Sequence[str], newline_length: int) -> list[int]:
    """The offset at which each line begins."""
    starts = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + newline_length
    return starts


def line_ranges(span: Span, starts: Sequence[int]) -> list[tuple[int, int, int | None]]:
    """`(row, start_column, end_column or None for the rest of the line)` per row of a span."""
    start, end = span
    first = bisect_right(starts, start) - 1
    last = bisect_right(starts, end) - 1
    if first == last:
        return [(first, start - starts[first], end - starts[first])]
    ranges: list[tuple[int, int, int | None]] = [(first, start - starts[first], None)]
    ranges.extend((row, 0, None) for row in range(first + 1, last))
    ranges.append((last, 0, end - starts[last]))
    return ranges
