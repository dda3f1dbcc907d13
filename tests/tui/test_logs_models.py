"""The Logs and Models screens with the real tiny model."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from textual.widgets import DataTable
from tui_testing import TERMINAL_SIZE, wait_for_model, wait_for_prediction, wait_until

from engine.logbus import LogBus
from tui.app import LlamatermApp
from tui.screens.complete.complete_screen import CompleteScreen
from tui.screens.logs.logs_screen import LogRecordScreen, LogsScreen
from tui.screens.models.models_screen import ModelsScreen

MakeApp = Callable[..., LlamatermApp]


async def test_logs_show_kept_and_live_records_with_the_exact_prompt(
    make_app: MakeApp, isolated: Path
) -> None:
    bus = LogBus()
    bus.emit("info", "load", "kept from before the screen opened")
    app = make_app(log_bus=bus)
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await wait_for_model(pilot)
        await pilot.press("f4")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        assert [r.message for r in logs.records] == ["kept from before the screen opened"]

        # Live: records published from the model's thread reach the table.
        bus.emit("info", "prompt", "prompt", text="line one\nline two")
        bus.emit("debug", "cache", "hidden at level info")
        bus.emit("info", "raw_output", "raw output", text="generated", stop_reason="eosFound")
        await wait_until(pilot, lambda: len(logs.records) == 4)
        table = logs.query_one(DataTable)
        assert table.row_count == 3, "debug is filtered out at level info"

        await pilot.press("k")  # kind: cache
        await pilot.press("k")  # kind: load
        assert logs.kind == "load" and table.row_count == 1
        await pilot.press("k", "k", "k")  # prompt, raw_output, back to all
        assert logs.kind == "all" and table.row_count == 3
        await pilot.press("v", "v")  # warning, then error
        assert logs.level == "error" and table.row_count == 0
        await pilot.press("v")  # debug
        assert table.row_count == 4

        # The exact prompt in full.
        table.move_cursor(row=1)
        await pilot.press("f")  # follow off, or the cursor jumps to the end
        assert not logs.follow
        table.move_cursor(row=1)
        await pilot.press("enter")
        assert isinstance(app.screen, LogRecordScreen)
        shown = app.screen.query_one("TextArea").text  # type: ignore[attr-defined]
        assert "line one\nline two" in shown
        await pilot.press("escape")
        assert app.screen is logs

        await pilot.press("s")
        saved = list((isolated / "logs").glob("llamaterm-*.log"))
        assert len(saved) == 1
        content = saved[0].read_text()
        assert "line one\nline two" in content and "stop_reason" in content
        assert any("4 records saved" in n.message for n in app._notifications)


async def test_logs_follow_a_real_prediction(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        await pilot.press("f4")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        await pilot.press("f2")
        complete = app.screen
        assert isinstance(complete, CompleteScreen)
        complete.complete_area.load_text("Log me")
        await pilot.press("ctrl+g")
        await wait_for_prediction(pilot)
        await wait_until(pilot, lambda: any(r.kind == "raw_output" for r in logs.records))
        prompts = [r for r in logs.records if r.kind == "prompt"]
        assert prompts[-1].data["text"] == "Log me"
        raw = [r for r in logs.records if r.kind == "raw_output"][-1]
        assert raw.data["text"] == complete.complete_area.generated_text


async def test_models_screen_lists_marks_loads_and_unloads(
    make_app: MakeApp, isolated: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    models = isolated / "models"
    models.mkdir(parents=True)
    os.symlink(tiny_model_path, models / "tiny-test-model.gguf")
    other_dir = tmp_path / "more-models"
    other_dir.mkdir()
    (other_dir / "broken.gguf").write_bytes(b"GGUF but not really")
    app = make_app(autoload=False)
    app.settings = app.settings.model_copy(
        update={"paths": app.settings.paths.model_copy(update={"model_dirs": [other_dir]})}
    )
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await wait_until(pilot, lambda: bool(screen.rows))
        keys = [row.key for row in screen.rows]
        assert keys[:2] == ["broken", "tiny-test-model"]
        table = screen.query_one(DataTable)
        table.move_cursor(row=1)
        await pilot.press("l")
        await wait_for_model(pilot)
        assert table.get_cell("1", "mark") == "●"
        assert table.get_cell("0", "mark") == ""

        await pilot.press("u")
        await wait_until(pilot, lambda: app.model is None)
        assert table.get_cell("1", "mark") == ""
        assert app.model_state.status == "none"

        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.model_state.status == "failed")
        assert any("broken.gguf" in n.message for n in app._notifications)
