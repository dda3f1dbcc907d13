"""Logs rows tell records apart (time, prediction, model, text); Home/End; follow that
leaves a reader's cursor alone; and the rotating log file in the data directory."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable
from tui_testing import TERMINAL_SIZE, wait_for_model, wait_for_prediction, wait_until

from engine.logbus import LogBus
from tui import log_file
from tui.app import LlamatermApp
from tui.log_file import LogFile, log_file_path
from tui.screens.complete.complete_screen import CompleteScreen
from tui.screens.logs.logs_screen import LogsScreen

MakeApp = Callable[..., LlamatermApp]


def row_of(table: DataTable[object], index: int) -> list[str]:
    return [str(cell) for cell in table.get_row_at(index)]


async def test_a_predictions_records_share_its_id_and_model(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        await pilot.press("f4")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        # The process's bus keeps records of earlier tests too: only ours count.
        start = len(logs.records)
        await pilot.press("f2")
        complete = app.screen
        assert isinstance(complete, CompleteScreen)
        for text in ("First prompt", "Second prompt"):
            complete.complete_area.load_text(text)
            await pilot.press("ctrl+g")
            await wait_for_prediction(pilot)
        ours = lambda: logs.records[start:]
        await wait_until(pilot, lambda: sum(r.kind == "raw_output" for r in ours()) == 2)
        prompts = [r for r in ours() if r.kind == "prompt"]
        raws = [r for r in ours() if r.kind == "raw_output"]
        ids = [r.data["prediction"] for r in prompts]
        assert len(set(ids)) == 2 and [r.data["prediction"] for r in raws] == ids
        assert {r.data["model"] for r in prompts + raws} == {"tiny-test-model"}

        await pilot.press("f4")
        table = logs.query_one(DataTable)
        rows = [row_of(table, i) for i in range(table.row_count)]
        prompt_rows = [row for row in rows if row[2] == "prompt" and row[3] in ids]
        assert [row[5] for row in prompt_rows] == ["prompt: First prompt", "prompt: Second prompt"]
        assert [row[3] for row in prompt_rows] == ids
        assert all(row[4] == "tiny-test-model" for row in prompt_rows)
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d", row[0]) for row in rows)


async def test_home_end_and_a_follow_that_leaves_the_reader_alone(make_app: MakeApp) -> None:
    bus = LogBus()
    for number in range(60):
        bus.emit("info", "load", f"record {number}")
    app = make_app(log_bus=bus, autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await pilot.press("f4")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        table = logs.query_one(DataTable)
        assert logs.follow and table.cursor_row == 59
        await pilot.press("home")
        assert table.cursor_row == 0 and table.scroll_y == 0
        # A new record while the person reads the top: the cursor stays.
        bus.emit("info", "load", "record 60")
        await wait_until(pilot, lambda: table.row_count == 61)
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == 60
        # Back at the end, follow goes on.
        bus.emit("info", "load", "record 61")
        await wait_until(pilot, lambda: table.row_count == 62)
        assert table.cursor_row == 61


async def test_the_app_writes_every_record_to_the_log_file(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()  # on the process's bus, where the model's load is logged
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        app.log_bus.emit("warning", "context", "a line\nwith a break", text="x")
    lines = log_file_path(isolated).read_text().splitlines()
    assert any(" INFO    engine load: loaded " in line for line in lines)
    (warned,) = [line for line in lines if " context: " in line]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} WARNING engine context: ", warned)
    assert warned.endswith('a line⏎with a break {"text": "x"}')


def test_the_log_file_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_file, "MAX_BYTES", 400)
    bus = LogBus()
    writer = LogFile(bus, tmp_path)
    for number in range(40):
        bus.emit("info", "load", f"record {number:02d} " + "x" * 40)
    writer.close()
    bus.emit("info", "load", "after close: not written")
    logs = sorted(p.name for p in log_file_path(tmp_path).parent.iterdir())
    assert logs == ["llamaterm.log", "llamaterm.log.1", "llamaterm.log.2", "llamaterm.log.3"]
    newest = log_file_path(tmp_path).read_text()
    assert "record 39" in newest and "after close" not in newest
