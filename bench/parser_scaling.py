"""How the tool-call parsers scale with the text they read: time per MB for every
format at 100K, 1M and 4M characters, and the ratio between the largest and the
smallest size (goal: about 1, i.e. doubling the input at most doubles the time).

Three workloads per format, each written by the test suite's writer for the format
(tests/toolcall_cases.py):

- value:  one valid call whose string argument is the whole size, streamed in chunks;
- broken: the same call with its arguments broken near the start, streamed, so the
          reader fails early and must find the end of the failed call;
- many:   short valid calls repeated up to the size, parsed in one piece;
- openers: the format's call marker repeated up to the size, parsed in one piece.

    python bench/parser_scaling.py [--sizes 100000,1000000,4000000] [--chunk 16]
                                   [--formats hermes,glm] [--workloads value,many]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from toolcall_cases import CALLS, WRITERS  # noqa: E402

from engine.toolcalls import FORMATS, TOOL_FORMATS, ToolCallParser  # noqa: E402

Workload = Callable[[str, int, int], tuple[str, int | None]]
"""(format, size, chunk) -> (text, chunk size; None to feed it whole)."""


def _long_call(fmt: str, size: int) -> str:
    write = WRITERS[fmt]
    short = write([("search", {"query": ""})])
    return write([("search", {"query": "x" * max(0, size - len(short))})])


def _value(fmt: str, size: int, chunk: int) -> tuple[str, int | None]:
    return _long_call(fmt, size), chunk


def _broken(fmt: str, size: int, chunk: int) -> tuple[str, int | None]:
    text = _long_call(fmt, size)
    at = text.find("xxxx")
    # A stray quote ends the string early in JSON formats and breaks the Python and
    # Gemma syntaxes; raw XML values simply carry it.
    return text[:at] + '"' + text[at:], chunk


def _many(fmt: str, size: int, chunk: int) -> tuple[str, int | None]:
    one = WRITERS[fmt](CALLS) + "\n"
    return one * max(1, size // len(one)), None


def _openers(fmt: str, size: int, chunk: int) -> tuple[str, int | None]:
    opener = FORMATS[fmt].openers[0]
    return opener * max(1, size // len(opener)), None


WORKLOADS: dict[str, Workload] = {
    "value": _value,
    "broken": _broken,
    "many": _many,
    "openers": _openers,
}


def measure(fmt: str, text: str, chunk: int | None) -> float:
    parser = ToolCallParser(fmt)
    start = time.perf_counter()
    if chunk is None:
        parser.feed(text)
    else:
        for at in range(0, len(text), chunk):
            parser.feed(text[at : at + chunk])
    parser.finish()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,4000000")
    parser.add_argument("--chunk", type=int, default=16, help="characters per streamed piece")
    parser.add_argument("--formats", default=",".join(TOOL_FORMATS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    workloads = args.workloads.split(",")
    header = f"{'format':<18}{'workload':<9}" + "".join(f"{f'{s:,} s/MB':>16}" for s in sizes)
    print(header + f"{'ratio':>8}")
    worst = 0.0
    for fmt in formats:
        for name in workloads:
            per_mb = []
            for size in sizes:
                text, chunk = WORKLOADS[name](fmt, size, args.chunk)
                per_mb.append(measure(fmt, text, chunk) / (len(text) / 1e6))
            ratio = per_mb[-1] / per_mb[0] if per_mb[0] > 0 else float("inf")
            worst = max(worst, ratio)
            cells = "".join(f"{t:>16.3f}" for t in per_mb)
            print(f"{fmt:<18}{name:<9}{cells}{ratio:>8.2f}", flush=True)
    print(f"worst ratio {worst:.2f} (largest size's time per MB over the smallest's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
