"""Scanning helpers shared by the readers: following a JSON object or a bracketed
argument list through a growing text without parsing it, and finding markers (whole
or still arriving) in a buffer."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache

NAME_KEYS = ("name", "tool_name")
ARGUMENT_KEYS = ("arguments", "parameters")

JSON_WS = " \t\r\n"
_JSON_BARE = frozenset("0123456789-+.eEtrufalsnINaiy")  # numbers, true/false/null, NaN, Infinity
PAIRS = {"{": "}", "[": "]", "(": ")"}
NAME_CHARS = re.compile(r"[\w.\-]*")
MAX_NAME = 256
_KEY, _COLON, _VALUE, _IN_VALUE, _AFTER = range(5)


class JsonScanner:
    """Follows one JSON object or array through a growing text without parsing it: where
    it ends and, for an object, where each top-level member's value lies.

    It checks only what finding the end needs (brackets, strings, stray characters), so
    that garbage is noticed early; json.loads has the last word.
    """

    def __init__(self, start: int) -> None:
        self.pos = start
        self.begin: int | None = None
        self.end: int | None = None
        self.error: str | None = None
        self.members: dict[str, tuple[int, int | None]] = {}
        """Each top-level key's value span, for its first occurrence: what a stream sees."""
        self.repeated: set[str] = set()
        """Top-level keys written more than once."""
        self._repeat = False
        self._stack: list[str] = []
        self._in_string = False
        self._escape = False
        self._string_start = 0
        self._phase = _KEY
        self._key = ""
        self._kind = ""

    def scan(self, text: str) -> None:
        while self.pos < len(text) and self.end is None and self.error is None:
            self._char(text, self.pos)
            if self.error is None:
                self.pos += 1

    def _in_top_object(self) -> bool:
        return len(self._stack) == 1 and self._stack[0] == "{"

    def _char(self, text: str, i: int) -> None:
        ch = text[i]
        if self._in_string:
            self._string_char(text, i, ch)
            return
        if self.begin is None:
            if ch in JSON_WS:
                return
            if ch != "{":
                self.error = "expected a JSON object"
                return
            self.begin = i
        top = self._in_top_object()
        if top and self._phase == _IN_VALUE and self._kind == "bare" and ch in ",}" + JSON_WS:
            self._close_member(i)
        if ch in JSON_WS:
            return
        if ch == '"':
            self._in_string, self._string_start = True, i
            if top and self._phase == _VALUE:
                self._open_member(i, "string")
            elif top and self._phase != _KEY:
                self.error = "unexpected string"
        elif ch in "{[":
            if top and self._phase == _VALUE:
                self._open_member(i, "container")
            elif top:
                self.error = f"unexpected {ch!r}"
                return
            self._stack.append(ch)
        elif ch in "}]":
            self._closing(ch, i)
        elif ch == ":":
            if top and self._phase != _COLON:
                self.error = "unexpected ':'"
            elif top:
                self._phase = _VALUE
        elif ch == ",":
            if top and self._phase != _AFTER:
                self.error = "unexpected ','"
            elif top:
                self._phase = _KEY
        elif ch not in _JSON_BARE:
            self.error = f"unexpected character {ch!r}"
        elif top and self._phase == _VALUE:
            self._open_member(i, "bare")
        elif top and self._phase != _IN_VALUE:
            self.error = f"unexpected character {ch!r}"

    def _string_char(self, text: str, i: int, ch: str) -> None:
        if self._escape:
            self._escape = False
        elif ch == "\\":
            self._escape = True
        elif ch == '"':
            self._in_string = False
            if not self._in_top_object():
                return
            if self._phase == _KEY:
                try:
                    self._key = json.loads(text[self._string_start : i + 1], strict=False)
                except ValueError:
                    self.error = "bad escape in a key"
                    return
                self._phase = _COLON
            elif self._phase == _IN_VALUE and self._kind == "string":
                self._close_member(i + 1)

    def _closing(self, ch: str, i: int) -> None:
        if not self._stack or PAIRS[self._stack[-1]] != ch:
            self.error = f"unexpected {ch!r}"
            return
        self._stack.pop()
        if not self._stack:
            self.end = i + 1
        elif self._in_top_object() and self._phase == _IN_VALUE and self._kind == "container":
            self._close_member(i + 1)

    def _open_member(self, i: int, kind: str) -> None:
        self._repeat = self._key in self.members
        if self._repeat:
            self.repeated.add(self._key)
        else:
            self.members[self._key] = (i, None)
        self._phase, self._kind = _IN_VALUE, kind

    def _close_member(self, end: int) -> None:
        if not self._repeat:
            self.members[self._key] = (self.members[self._key][0], end)
        self._phase = _AFTER


class BracketScanner:
    """Finds the bracket that closes the one at `start`, skipping quoted strings (Python
    calls, Gemma 4's argument syntax)."""

    def __init__(self, start: int, quotes: tuple[str, ...], escapes: bool) -> None:
        self.start = start
        self.pos = start
        self.end: int | None = None
        self.error: str | None = None
        self._quotes = quotes
        self._escapes = escapes
        self._stack: list[str] = []
        self._quote: str | None = None
        self._escape = False

    def scan(self, text: str) -> None:
        while self.pos < len(text) and self.end is None and self.error is None:
            step = self._in_quote(text) if self._quote is not None else self._outside(text)
            if not step:
                return

    def _in_quote(self, text: str) -> bool:
        quote = self._quote
        assert quote is not None
        if self._escape:
            self._escape = False
        elif self._escapes and text[self.pos] == "\\":
            self._escape = True
        elif text.startswith(quote, self.pos):
            self.pos += len(quote)
            self._quote = None
            return True
        elif len(text) - self.pos < len(quote) and quote.startswith(text[self.pos :]):
            return False  # a closing quote may be arriving
        self.pos += 1
        return True

    def _outside(self, text: str) -> bool:
        for quote in self._quotes:
            if text.startswith(quote, self.pos):
                self._quote = quote
                self.pos += len(quote)
                return True
            if len(text) - self.pos < len(quote) and quote.startswith(text[self.pos :]):
                return False
        ch = text[self.pos]
        if ch in PAIRS:
            self._stack.append(ch)
        elif ch in ")]}":
            if not self._stack or PAIRS[self._stack[-1]] != ch:
                self.error = f"unexpected {ch!r}"
                return False
            self._stack.pop()
            if not self._stack:
                self.end = self.pos + 1
        self.pos += 1
        return True


def member_span(scanner: JsonScanner, keys: Sequence[str]) -> tuple[str, int, int | None] | None:
    for key in keys:
        if key in scanner.members:
            start, end = scanner.members[key]
            return key, start, end
    return None


def member_name(text: str, scanner: JsonScanner) -> str | None:
    """The call's name, once its member is complete and is a non-empty string."""
    for key in NAME_KEYS:
        start, end = scanner.members.get(key, (0, None))
        if end is None:
            continue
        try:
            value = json.loads(text[start:end], strict=False)
        except ValueError:
            return None
        return value if isinstance(value, str) and value else None
    return None


@lru_cache(maxsize=256)
def _alternation(needles: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first: at one position the regex takes the first alternative that matches.
    ordered = sorted(dict.fromkeys(needles), key=len, reverse=True)
    return re.compile("|".join(re.escape(n) for n in ordered))


def earliest(
    text: str, needles: Sequence[str], start: int = 0, end: int | None = None
) -> tuple[int, str] | None:
    """The earliest complete needle in text[start:end] (the longest, on a tie).

    One pass that stops at the first match, however many needles there are: a search
    costs the distance to what it finds, not the length of the text.
    """
    if not needles:
        return None
    pattern = _alternation(tuple(needles))
    match = pattern.search(text, start) if end is None else pattern.search(text, start, end)
    return (match.start(), match.group()) if match else None


def partial_start(text: str, needles: Sequence[str], before: int, start: int = 0) -> int | None:
    """The earliest index in [start, before) from which the text's tail is a proper prefix
    of a needle: a marker may be arriving there."""
    if not needles:
        return None
    longest = max(len(n) for n in needles)
    for at in range(max(start, len(text) - longest + 1), min(before, len(text))):
        tail = text[at:]
        if any(len(tail) < len(n) and n.startswith(tail) for n in needles):
            return at
    return None
