"""Tool calls: the parsers take time linear in the text (bench/parser_scaling.py measures
every format at large sizes; this keeps the cases that once grew quadratically)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from toolcall_cases import WRITERS

from engine.toolcalls import FORMATS, ToolCallParser

SIZES = (100_000, 400_000)
WIDE = (50_000, 1_000_000)
"""For the cases whose extra cost stays small next to the linear work until the text is
long (a search in C, or joining short pieces): twenty times the text."""
BOUND = 2.5
"""Linear is about 1; quadratic is about 4 for four times the text, 20 for twenty times."""


def _long_call(fmt: str, size: int) -> str:
    write = WRITERS[fmt]
    return write([("search", {"query": "x" * (size - len(write([("search", {"query": ""})])))})])


def _broken(fmt: str, size: int) -> str:
    text = _long_call(fmt, size)
    at = text.find("xxxx")
    return text[:at] + '"' + text[at:]


def _many(fmt: str, size: int) -> str:
    one = WRITERS[fmt]([("search", {})]) + "\n"  # short: many calls, each one searched after
    return one * (size // len(one))


def _openers(fmt: str, size: int) -> str:
    opener = FORMATS[fmt].openers[0]
    return opener * (size // len(opener))


def _seconds(fmt: str, text: str, chunk: int | None) -> float:
    parser = ToolCallParser(fmt)
    start = time.perf_counter()
    if chunk is None:
        parser.feed(text)
    else:
        for at in range(0, len(text), chunk):
            parser.feed(text[at : at + chunk])
    parser.finish()
    return time.perf_counter() - start


ROUNDS = 5
"""The machine is shared: the small and the large text are timed back to back, round after
round, and the best round's ratio counts (a busy spell slows one round, not the verdict).
A quadratic parser is over the bound in every round."""


@pytest.mark.parametrize(
    ("fmt", "make", "chunk", "sizes"),
    [
        ("hermes", _broken, 16, SIZES),  # a failed call: its end was searched from its start
        ("glm", _broken, 16, SIZES),
        ("qwen3_coder", _long_call, 16, SIZES),  # a long raw value: its end tag, likewise
        ("minimax", _long_call, 16, SIZES),
        ("hermes", _openers, None, SIZES),  # the rest of the text copied after each block
        ("mistral", _openers, None, SIZES),
        ("llama3", _many, None, WIDE),  # the opener search, from each call's end to the text's
        ("firefunction", _openers, None, WIDE),  # the content pieces, joined one at a time
        ("command_r_plus", _openers, None, WIDE),
    ],
)
def test_time_grows_linearly(
    fmt: str, make: Callable[[str, int], str], chunk: int | None, sizes: tuple[int, int]
) -> None:
    small, large = make(fmt, sizes[0]), make(fmt, sizes[1])
    ratio = float("inf")
    for _ in range(ROUNDS):  # stops at the first round within the bound: fast when linear
        per_char = _seconds(fmt, small, chunk) / len(small)
        ratio = min(ratio, _seconds(fmt, large, chunk) / len(large) / per_char)
        if ratio < BOUND:
            break
    times = len(large) / len(small)
    assert ratio < BOUND, (
        f"{fmt}: time per character grew {ratio:.1f} times for {times:.0f}x the text"
    )
