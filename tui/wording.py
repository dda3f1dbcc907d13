"""Small helpers for the words the app shows: counts with their nouns."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 token`, `2 tokens`, `0 models`: the count and its noun, agreed.

    `nouns` is the plural when adding an "s" will not do ("1 match", "2 matches").
    """
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
