"""Loading a model shows progress in the status line and can be cancelled (issue 5)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tui_testing import TERMINAL_SIZE, wait_for_model, wait_until

from engine.logbus import LOG_BUS
from engine.models.starter import ensure_starter_model
from tui.app import LlamatermApp
from tui.model_state import ModelState
from tui.widgets.status.model_status import ModelStatus, describe

MakeApp = Callable[..., LlamatermApp]


@pytest.fixture(scope="module")
def starter_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_starter_model(tmp_path_factory.mktemp("starter-models"))


def test_the_status_line_shows_a_bar_while_loading() -> None:
    loading = ModelState.loading("gemma")
    assert str(describe(loading)) == "loading gemma…"
    assert str(describe(loading, 0.5)) == "loading gemma ━━━━━━━━━━  50%"
    assert "loading" not in str(describe(ModelState(), 0.5))


async def test_load_progress_reaches_the_status_line(make_app: MakeApp) -> None:
    app = make_app()
    seen: list[float] = []
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        app.watch(app, "load_progress", lambda p: seen.append(p) if p is not None else None)
        await wait_for_model(pilot)
        await pilot.pause()
        assert app.screen.query_one(ModelStatus).progress == 1.0
    assert seen and seen == sorted(seen) and seen[-1] == 1.0


@pytest.mark.starter
async def test_cancel_load_stops_llama_cpp_and_a_later_load_works(
    make_app: MakeApp, starter_model: Path
) -> None:
    app = make_app(model=str(starter_model))
    # Hold the model thread inside llama.cpp's progress callback until the cancel is in, so
    # the load cannot finish first however busy the machine is (waiting on events, not time).
    midway, cancelled = threading.Event(), threading.Event()
    real_reporter = app._load_progress_reporter

    def held_reporter() -> Callable[[float], None]:
        report = real_reporter()

        def hold(fraction: float) -> None:
            report(fraction)
            if 0.0 < fraction < 1.0 and not midway.is_set():
                midway.set()
                cancelled.wait(timeout=60)

        return hold

    app._load_progress_reporter = held_reporter  # type: ignore[method-assign]
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_until(pilot, midway.is_set, timeout=60)
        await wait_until(pilot, lambda: (app.load_progress or 0.0) > 0.0, timeout=60)
        assert "%" in str(app.screen.query_one("#model-text").render())
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "model: cancel load" in titles
        app.cancel_model_load()
        cancelled.set()
        await wait_until(pilot, lambda: app.model_state.status == "none")
        assert app.model is None
        assert app.load_progress is not None and app.load_progress < 1.0
        await wait_until(
            pilot, lambda: any("cancelled loading" in r.message for r in LOG_BUS.recent)
        )
        await pilot.pause(0.2)
        # The cancelled load does not come back as a model later.
        assert app.model is None and app.model_state.status == "none"

        app.load_model(str(starter_model))
        await wait_for_model(pilot)
        assert app.model is not None and app.model.is_loaded
