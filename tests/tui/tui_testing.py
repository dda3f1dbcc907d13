"""Helpers for the TUI tests: sizes, settings, and waiting on the app without sleeping blind.

Every app in these tests runs the real engine on the tiny random-weight model (no
mocks), with temperature 0 and a fixed seed so that its output is the same every
run, no cursor blink and no animation, so that snapshots are stable.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from engine.prediction import PredictionConfig
from tui.widgets.status.prediction_status import PredictionStatus

TERMINAL_SIZE = (100, 32)
NARROW_SIZE = (80, 24)

PREDICTION = PredictionConfig(temperature=0.0, seed=42, max_tokens=24)
"""Deterministic and short: the tiny model always says the same 24 tokens."""


async def wait_until(
    pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 30.0
) -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await pilot.pause(0.02)


async def wait_for_model(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.model_state.status in ("loaded", "failed"))  # type: ignore[attr-defined]
    assert app.model_state.status == "loaded", app.model_state  # type: ignore[attr-defined]


async def wait_for_prediction(pilot: Pilot[Any]) -> None:
    screen = pilot.app.screen
    await wait_until(pilot, lambda: not screen.generating)  # type: ignore[attr-defined]
    await pilot.pause()


def freeze_timings(pilot: Pilot[Any]) -> None:
    """Replace the measured speeds in the stats line by fixed ones, for snapshots."""
    status = pilot.app.screen.query_one(PredictionStatus)
    if status.stats is not None:
        status.stats = dataclasses.replace(
            status.stats, tokens_per_second=1234.5, time_to_first_token_sec=0.01
        )
