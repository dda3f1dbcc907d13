"""Terminal simulation: `$ command`, the model's output, saved and restored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tui_testing import TERMINAL_SIZE, wait_for_model, wait_for_prediction

from tui.app import LlamatermApp
from tui.screens.complete.complete_screen import CompleteScreen

MakeApp = Callable[..., LlamatermApp]


async def test_round_trip_then_restart_restores_the_transcript(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = app.screen
        assert isinstance(screen, CompleteScreen)
        await pilot.press("ctrl+t")
        assert screen.terminal_mode
        assert app.focused is screen.command_input
        await pilot.press(*"ls", "enter")
        await wait_for_prediction(pilot)
        transcript = screen.transcript
        first = transcript.text
        assert first.startswith("$ ls\n") and len(first) > len("$ ls\n")
        assert "$" not in first[1:], "the stop string is never shown"
        assert transcript.generated_spans == [(len("$ ls\n"), len(first))]
        # The command line is ended, so the model writes its output, not more command.
        first_prompt = [r for r in app.log_bus.recent if r.kind == "prompt"][-1]
        assert first_prompt.data["text"] == "$ ls\n"
        assert screen.command_input.value == ""
        stats = screen.status.stats
        assert stats is not None and stats.stop_reason in (
            "stopStringFound",
            "maxPredictedTokensReached",
        )

        # The second command goes on its own line, and the whole transcript is the prompt.
        await pilot.press(*"pwd", "enter")
        await wait_for_prediction(pilot)
        second = transcript.text
        assert second.startswith(first)
        assert second[len(first) :].startswith(("$ pwd\n", "\n$ pwd\n"))
        spans = transcript.generated_spans
        assert len(spans) == 2
        prompt_record = [r for r in app.log_bus.recent if r.kind == "prompt"][-1]
        assert prompt_record.data["text"] == second[: spans[1][0]]
        assert prompt_record.data["text"].endswith("$ pwd\n")

    saved = json.loads((isolated / "sessions" / "terminal.json").read_text())
    assert saved["schema_version"] == 2
    assert saved["text"] == second
    assert saved["active"] is True
    assert [tuple(span) for span in saved["generated"]] == spans

    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CompleteScreen)
        assert screen.transcript.text == second
        assert screen.transcript.generated_spans == spans
        # Left in terminal mode, the screen reopens in it.
        assert screen.terminal_mode
        assert app.focused is screen.command_input
        await pilot.press("ctrl+l")
        assert screen.transcript.text == ""
        await pilot.press("ctrl+t")
        assert not screen.terminal_mode
    saved = json.loads((isolated / "sessions" / "terminal.json").read_text())
    assert saved["text"] == ""
    assert saved["active"] is False

    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CompleteScreen)
        assert not screen.terminal_mode


async def test_the_command_is_saved_before_the_model_answers(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = app.screen
        assert isinstance(screen, CompleteScreen)
        await pilot.press("ctrl+t", *"whoami")
        screen.run_command("whoami")
        saved = json.loads((isolated / "sessions" / "terminal.json").read_text())
        assert saved["text"] == "$ whoami\n"
        await wait_for_prediction(pilot)
