"""Backslash escapes in command-line strings: `--stop "\\n"` means a newline.

A shell passes `"\\n"` as a backslash and an `n`; a stop string is most often a
newline, so the usual escapes are read: `\\n`, `\\t`, `\\r`, `\\\\`, `\\xNN` and
`\\uNNNN`. Any other backslash stays as it is, so a Windows path or a regex-looking
stop string is not mangled.
"""

from __future__ import annotations

import argparse
import re

ESCAPES_HELP = r"\n, \t, \r, \\, \xNN and \uNNNN are read as escapes"
"""What the help of an option that takes escapes says about them."""

_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))", re.DOTALL)


def unescape(text: str) -> str:
    """`text` with its escapes replaced by the characters they name."""

    def replace(match: re.Match[str]) -> str:
        hex_byte, hex_unit, other = match.groups()
        if hex_byte is not None:
            return chr(int(hex_byte, 16))
        if hex_unit is not None:
            return chr(int(hex_unit, 16))
        return _SIMPLE.get(other, match.group(0))

    return _ESCAPE.sub(replace, text)


def escaped_string(text: str) -> str:
    """An argparse `type=`: the argument with its escapes read; never empty."""
    value = unescape(text)
    if not value:
        raise argparse.ArgumentTypeError("an empty string cannot stop a prediction")
    return value
