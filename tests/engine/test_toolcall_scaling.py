"""Tool calls: the parsers take time linear in the text (bench/parser_scaling.py measures
every format at large sizes; this keeps the cases that once grew quadratically)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from toolcall_cases import WRITERS

from engine.toolcalls import FORMATS, ToolCallParser

SMALL, LARGE = 100_000, 400_000


def _long_call(fmt: str, size: int) -> str:
    write = WRITERS[fmt]
    return write([("search", {"query": "x" * (size - len(write([("search", {"query": ""})])))})])


def _broken(fmt: str, size: int) -> str:
    text = _long_call(fmt, size)
    at = text.find("xxxx")
    return text[:at] + '"' + text[at:]


def _openers(fmt: str, size: int) -> str:
    opener = FORMATS[fmt].openers[0]
    return opener * (size // len(opener))


def _seconds(fmt: str, text: str, chunk: int | None) -> float:
    best = float("inf")
    for _ in range(3):  # the fastest of three: the machine may be busy
        parser = ToolCallParser(fmt)
        start = time.perf_counter()
        if chunk is None:
            parser.feed(text)
        else:
            for at in range(0, len(text), chunk):
                parser.feed(text[at : at + chunk])
        parser.finish()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(
    ("fmt", "make", "chunk"),
    [
        ("hermes", _broken, 16),  # a failed call: its end was searched from its start
        ("glm", _broken, 16),
        ("qwen3_coder", _long_call, 16),  # a long raw value: its end tag, likewise
        ("minimax", _long_call, 16),
        ("hermes", _openers, None),  # the rest of the text copied after each block
        ("mistral", _openers, None),
    ],
)
def test_time_grows_linearly(fmt: str, make: Callable[[str, int], str], chunk: int | None) -> None:
    small, large = make(fmt, SMALL), make(fmt, LARGE)
    ratio = (_seconds(fmt, large, chunk) / len(large)) / (_seconds(fmt, small, chunk) / len(small))
    # Linear is about 1; quadratic is about 4 at these sizes. Room for a busy machine.
    assert ratio < 2.5, f"{fmt}: time per character grew {ratio:.1f} times for 4 times the text"
