"""The README's table of tool-call formats is true: every format is in it, and each
example, written as the table shows it, parses to the call it shows (`f` with
`{"a": 1}` first), streamed in pieces as well as whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.prediction import Event, ToolCallFinished, ToolCallParseError
from engine.toolcalls import TOOL_FORMATS, ToolCallParser

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$")
_CODE = re.compile(r"(``?) ?(.+?) ?(?<!`)\1(?!`)")


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            cell = match.group(2).replace("\\|", "|")
            examples = [m.group(2).replace("\\n", "\n") for m in _CODE.finditer(cell)]
            # The spans that show a whole call (not a marker named in passing).
            rows[match.group(1)] = [e for e in examples if "…" not in e and "1" in e]
    return rows


ROWS = _rows()


def test_every_format_is_in_the_table() -> None:
    assert set(ROWS) == set(TOOL_FORMATS)
    assert all(ROWS.values())


@pytest.mark.parametrize(
    ("fmt", "example"), [(f, e) for f, examples in ROWS.items() for e in examples]
)
def test_each_example_parses_to_its_call(fmt: str, example: str) -> None:
    if fmt == "firefunction":
        example = " " + example.lstrip()  # the table cell's leading space is trimmed
    for size in (1, 7, len(example)):
        parser = ToolCallParser(fmt)
        events: list[Event] = []
        for i in range(0, len(example), size):
            events += parser.feed(example[i : i + size])
        events += parser.finish()
        calls = [(e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallFinished)]
        assert calls[:1] == [("f", {"a": 1})], (size, events)
        assert not [e for e in events if isinstance(e, ToolCallParseError)]
