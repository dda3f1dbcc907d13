"""Snapshots of every screen in its main states, and of each theme.

The tiny model runs at temperature 0 with a fixed seed, so its text is the same
every run; the measured speeds in the stats line are replaced by fixed ones.
Update with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at
the SVGs in __snapshots__/ before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_testing import (
    NARROW_SIZE,
    TERMINAL_SIZE,
    freeze_timings,
    wait_for_model,
    wait_for_prediction,
)

from engine.logbus import LogBus
from engine.prediction import LogRecord
from tui.app import LlamatermApp
from tui.screens.complete.complete_screen import CompleteScreen

MakeApp = Callable[..., LlamatermApp]
SnapCompare = Callable[..., bool]

STORY = "Once upon a time, in a terminal far away,"


def complete_screen(pilot: Pilot[Any]) -> CompleteScreen:
    screen = pilot.app.screen
    assert isinstance(screen, CompleteScreen)
    return screen


async def generate(pilot: Pilot[Any], text: str = STORY) -> None:
    await wait_for_model(pilot)
    complete_screen(pilot).complete_area.load_text(text)
    await pilot.press("ctrl+g")
    await wait_for_prediction(pilot)
    freeze_timings(pilot)
    await pilot.pause()


def test_complete_empty(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=wait_for_model)


def test_complete_finished_with_stats(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=generate)


def test_complete_finished_narrow(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    assert snap_compare(make_app(), terminal_size=NARROW_SIZE, run_before=generate)


def test_complete_settings_modal(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    assert snap_compare(make_app(autoload=False), press=["ctrl+o"], terminal_size=NARROW_SIZE)


def test_terminal_after_one_round_trip(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_for_model(pilot)
        await pilot.press("ctrl+t", *"ls -la", "enter")
        await wait_for_prediction(pilot)
        freeze_timings(pilot)

    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=run_before)


def fixed_log_bus() -> LogBus:
    """The same records every run (the process-wide bus holds whatever ran before), at
    fixed times (12:00:00 on, in whatever zone the test runs)."""
    bus = LogBus()
    prediction = {"prediction": "p7", "model": "tiny-test-model"}
    records: list[tuple[str, str, str, str, dict[str, Any]]] = [
        ("info", "engine", "load", "loading /models/tiny-test-model.gguf",
         {"path": "/models/tiny.gguf"}),
        ("info", "llama.cpp", "llama",
         "llama_model_loader: loaded meta data with 28 key-value pairs", {}),
        ("warning", "llama.cpp", "llama",
         "llama_context: n_ctx_per_seq (512) < n_ctx_train (2048)", {}),
        ("info", "engine", "load",
         "loaded tiny-test-model in 0.01s: context 512, 1 threads, CPU only", {}),
        ("info", "engine", "prompt", "prompt",
         {**prediction, "text": "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"}),
        ("debug", "engine", "cache", "reusing 0 cached tokens, evaluating 14",
         {**prediction, "reused": 0, "evaluate": 14}),
        ("info", "engine", "raw_output", "raw output",
         {**prediction, "text": "Hi! <tool_call>{oops</tool_call>", "stop_reason": "eosFound"}),
        ("error", "engine", "prediction", "prediction failed: tool call did not parse: {oops",
         prediction),
    ]
    noon = datetime(2026, 1, 1, 12, 0, 0).timestamp()
    for second, (level, source, kind, message, data) in enumerate(records):
        bus.publish(LogRecord(level, source, kind, message, dict(data), noon + second))
    return bus


def test_logs_with_records(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    app = make_app(autoload=False, log_bus=fixed_log_bus())
    assert snap_compare(app, press=["f4"], terminal_size=TERMINAL_SIZE)


def test_logs_prompt_record_in_full(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.press("f4", "f")  # follow off
        pilot.app.screen.query_one(DataTable).move_cursor(row=4)  # the prompt
        await pilot.press("enter")

    app = make_app(autoload=False, log_bus=fixed_log_bus())
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)


@pytest.mark.parametrize(
    "theme", ["llamaterm-dark", "llamaterm-light", "llamaterm-256", "llamaterm-contrast"]
)
def test_theme(snap_compare: SnapCompare, make_app: MakeApp, theme: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.theme = theme
        area = complete_screen(pilot).complete_area
        prompt = "The prompt is the person's text;\n"
        generated = "the model's continuation shows in\nthe generated-text colour."
        area.load_session(prompt + generated, [(len(prompt), len(prompt + generated))])
        await pilot.pause()

    assert snap_compare(make_app(autoload=False), terminal_size=NARROW_SIZE, run_before=run_before)


def test_broken_theme_notification(
    snap_compare: SnapCompare, make_app: MakeApp, tmp_path: Path
) -> None:
    user_themes = tmp_path / "config" / "llamaterm" / "themes"
    user_themes.mkdir(parents=True)
    (user_themes / "broken.toml").write_text("name = ")
    assert snap_compare(make_app(autoload=False), terminal_size=NARROW_SIZE)
