"""Generated-text ranges follow edits (pure functions, no app)."""

from __future__ import annotations

from tui.widgets.complete.spans import (
    changed_range,
    clamp_spans,
    line_ranges,
    line_starts,
    shift_span,
)


def test_changed_range_append_insert_delete_replace() -> None:
    assert changed_range("abc", "abcdef") == (3, 3, 6)
    assert changed_range("abcdef", "abXcdef") == (2, 2, 3)
    assert changed_range("abcdef", "abef") == (2, 4, 2)
    assert changed_range("abcdef", "abXYef") == (2, 4, 4)
    assert changed_range("", "") == (0, 0, 0)
    assert changed_range("abc", "") == (0, 3, 0)


def test_changed_range_with_repeated_characters_stays_in_bounds() -> None:
    start, old_end, new_end = changed_range("aaa", "aaaa")
    assert start <= old_end <= 3 and start <= new_end <= 4
    assert new_end - start - (old_end - start) == 1


def test_text_typed_right_after_or_before_a_span_is_not_generated() -> None:
    assert shift_span((5, 10), 10, 10, 12) == (5, 10)  # typed after
    assert shift_span((5, 10), 5, 5, 7) == (7, 12)  # typed before
    assert shift_span((5, 10), 0, 2, 0) == (3, 8)  # deleted before


def test_span_shrinks_or_vanishes_when_its_text_is_replaced() -> None:
    assert shift_span((5, 10), 8, 12, 9) == (5, 8)  # tail replaced
    assert shift_span((5, 10), 3, 7, 4) == (4, 7)  # head replaced
    assert shift_span((5, 10), 4, 11, 6) is None  # all replaced
    assert shift_span((5, 10), 6, 6, 8) == (5, 12)  # typed inside: still one span


def test_clamp_spans_drops_what_does_not_fit() -> None:
    assert clamp_spans([[8, 20], [0, 3], [4, 4]], 10) == [(0, 3), (8, 10)]
    assert clamp_spans([[2, 5], [4, 7], [7, 8]], 10) == [(2, 8)]


def test_line_ranges_split_a_span_per_row() -> None:
    starts = line_starts(["ab", "cde", "f"], 1)  # "ab\ncde\nf"
    assert starts == [0, 3, 7]
    assert line_ranges((1, 2), starts) == [(0, 1, 2)]
    assert line_ranges((1, 8), starts) == [(0, 1, None), (1, 0, None), (2, 0, 1)]
