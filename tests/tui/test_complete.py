"""The Complete screen, driven with the real tiny model: generate, stop, settings, sessions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from tui_testing import TERMINAL_SIZE, wait_for_model, wait_for_prediction, wait_until

from engine.load_config import LoadConfig
from engine.prediction import PredictionConfig
from tui.app import LlamatermApp
from tui.screens.complete.complete_screen import CompleteScreen
from tui.screens.prediction_settings import PredictionSettingsScreen
from tui.widgets.status.prediction_status import StatsLine

MakeApp = Callable[..., LlamatermApp]

LONG = PredictionConfig(temperature=0.0, seed=1, max_tokens=-1)
"""Runs until the context is full: long enough to be stopped by hand."""
BIG_CONTEXT = LoadConfig(context_length=32768, threads=1)


def complete_screen(app: LlamatermApp) -> CompleteScreen:
    screen = app.screen
    assert isinstance(screen, CompleteScreen)
    return screen


async def test_generate_appends_in_place_and_marks_the_generated_text(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = complete_screen(app)
        await pilot.press(*"Hello")
        await pilot.press("ctrl+g")
        await wait_for_prediction(pilot)
        area = screen.complete_area
        text = area.text
        assert text.startswith("Hello") and len(text) > len("Hello")
        assert area.generated_spans == [(5, len(text))]
        stats = screen.status.stats
        assert stats is not None
        assert stats.predicted_tokens_count == 24
        assert stats.stop_reason == "maxPredictedTokensReached"
        assert "24 tokens" in str(screen.query_one(StatsLine).render())
        assert not area.read_only

        # What the person types after the model's text is theirs.
        await pilot.press("exclamation_mark")
        assert area.text == text + "!"
        assert area.generated_spans == [(5, len(text))]

        # A second generation continues after it: a second span.
        await pilot.press("ctrl+g")
        await wait_for_prediction(pilot)
        spans = area.generated_spans
        assert len(spans) == 2 and spans[1][0] == len(text) + 1


async def test_generation_is_deterministic_at_temperature_zero(make_app: MakeApp) -> None:
    outputs = []
    for _ in range(2):
        app = make_app()
        async with app.run_test(size=TERMINAL_SIZE) as pilot:
            await wait_for_model(pilot)
            screen = complete_screen(app)
            screen.complete_area.load_text("The llama")
            await pilot.press("ctrl+g")
            await wait_for_prediction(pilot)
            outputs.append(screen.complete_area.generated_text)
    assert outputs[0] and outputs[0] == outputs[1]


async def test_escape_stops_the_prediction_at_once(make_app: MakeApp) -> None:
    app = make_app(prediction=LONG, load=BIG_CONTEXT)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = complete_screen(app)
        screen.complete_area.load_text("Stop me")
        await pilot.press("ctrl+g")
        assert screen.generating
        assert screen.complete_area.read_only
        await wait_until(pilot, lambda: screen.status.phase == "generating")
        await pilot.press("escape")
        await wait_for_prediction(pilot)
        stats = screen.status.stats
        assert stats is not None and stats.stop_reason == "userStopped"
        assert 0 < stats.predicted_tokens_count < 32768 - 10
        assert "stop: userStopped" in str(screen.query_one(StatsLine).render())
        assert screen.complete_area.generated_text
        assert not screen.complete_area.read_only


async def test_switching_screens_while_generating_stays_responsive(make_app: MakeApp) -> None:
    app = make_app(prediction=LONG, load=BIG_CONTEXT)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = complete_screen(app)
        screen.complete_area.load_text("Keep going")
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: screen.status.phase == "generating")
        loop = asyncio.get_running_loop()
        switched_at: dict[str, float] = {}

        def record(mode: str) -> None:
            switched_at[mode] = loop.time()

        app.mode_change_signal.subscribe(screen, record)
        for key, mode in (("f4", "logs"), ("f3", "models"), ("f1", "chat"), ("f2", "complete")):
            pressed = loop.time()
            # Pilot.press also waits for the process to go idle, which it never does
            # while the model runs: the switch itself is timed by the signal.
            await pilot.press(key)
            assert app.current_mode == mode
            # Generous for a loaded 2-core CI machine, yet far below the seconds the
            # whole prediction takes, which is what a blocked event loop would cost.
            assert switched_at[mode] - pressed < 3.0, (key, switched_at[mode] - pressed)
        assert screen.generating, "the prediction went on in the background"
        before = len(screen.complete_area.text)
        await pilot.pause(0.2)
        assert len(screen.complete_area.text) > before, "text kept streaming in"
        await pilot.press("escape")
        await wait_for_prediction(pilot)
        assert screen.status.stats is not None
        assert screen.status.stats.stop_reason == "userStopped"


async def test_generate_without_a_model_warns_and_keeps_working(make_app: MakeApp) -> None:
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = complete_screen(app)
        await pilot.press(*"hi")
        await pilot.press("ctrl+g")
        assert not screen.generating
        assert any("No model" in n.title for n in app._notifications)
        assert screen.complete_area.text == "hi"


async def test_settings_modal_changes_the_prediction_config(make_app: MakeApp) -> None:
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = complete_screen(app)
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, PredictionSettingsScreen)
        modal = app.screen
        temperature = modal.query_one("#field-temperature")
        temperature.value = "abc"  # type: ignore[attr-defined]
        temperature.focus()
        await pilot.press("enter")
        assert app.screen is modal, "a bad value keeps the modal open"
        assert "temperature" in str(modal.query_one("#settings-error").render())
        temperature.value = "0.3"  # type: ignore[attr-defined]
        modal.query_one("#field-stop_strings").value = '["\\n\\n", "END"]'  # type: ignore[attr-defined]
        min_p = modal.query_one("#field-min_p")
        assert min_p.value == "0.05"  # type: ignore[attr-defined]
        min_p.value = "0.2"  # type: ignore[attr-defined]
        await pilot.press("enter")
        assert app.screen is screen
        assert screen.config.temperature == 0.3
        assert screen.config.min_p == 0.2
        assert screen.config.stop_strings == ("\n\n", "END")
        assert screen.config.max_tokens == 24, "untouched fields keep their values"
        await pilot.press("ctrl+o", "escape")
        assert app.screen is screen


async def test_complete_text_and_settings_survive_a_restart(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = complete_screen(app)
        screen.complete_area.load_text("Persist")
        screen.config = screen.config.model_copy(update={"temperature": 0.25})
        await pilot.press("ctrl+g")
        await wait_for_prediction(pilot)
        text, spans = screen.complete_area.text, screen.complete_area.generated_spans
    saved = json.loads((isolated / "sessions" / "complete.json").read_text())
    assert saved["schema_version"] == 2 and saved["text"] == text
    # Only what the person changed is saved: the config file's defaults still apply.
    assert saved["prediction"] == {"temperature": 0.25}
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = complete_screen(app)
        assert screen.complete_area.text == text
        assert screen.complete_area.generated_spans == spans
        assert screen.config.temperature == 0.25


async def test_a_corrupt_session_is_set_aside_and_reported(
    make_app: MakeApp, isolated: Path
) -> None:
    sessions = isolated / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "terminal.json").write_text("{oops")
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await pilot.pause()
        assert any("set aside" in n.message for n in app._notifications)
        assert complete_screen(app).transcript.text == ""
    assert (sessions / "terminal.json.corrupt-1").exists()


async def test_the_blank_screen_says_what_it_does_and_its_keys(make_app: MakeApp) -> None:
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        area = complete_screen(app).complete_area
        await pilot.pause()
        assert area.text == ""
        shown = str(area.placeholder)
        assert "continues it" in shown and "Ctrl+G" in shown and "Ctrl+T" in shown
        # Drawn where the text goes (test_complete_empty's snapshot shows it too).
        first_line = "".join(segment.text for segment in area.render_line(0))
        assert "Write the start of a text" in first_line
