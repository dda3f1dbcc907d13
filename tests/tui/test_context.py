"""Context down, requests up: screens read the app's context and post requests for the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_testing import TERMINAL_SIZE, wait_for_model, wait_until

from engine.logbus import LogBus
from engine.settings import PathsSettings
from tui.app import LlamatermApp
from tui.app_messages import LoadModelRequested, UnloadModelRequested
from tui.config import AppSettings
from tui.context import AppContext
from tui.screens.base import LlamatermScreen

MakeApp = Callable[..., LlamatermApp]


def test_the_context_knows_where_models_are(tmp_path: Path) -> None:
    settings = AppSettings(paths=PathsSettings(model_dirs=[tmp_path / "more"]))
    context = AppContext(settings, tmp_path / "data", LogBus())
    assert context.model_dirs() == [tmp_path / "data" / "models", tmp_path / "more"]
    assert context.state.path == tmp_path / "data" / "state.json"
    assert context.model is None and context.model_state.status == "none"


async def test_screens_get_the_context_and_the_app_keeps_it_current(
    make_app: MakeApp, tiny_model_path: Path
) -> None:
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, LlamatermScreen) and screen.context is app.context
        screen.post_message(LoadModelRequested(str(tiny_model_path)))
        await wait_for_model(pilot)
        assert app.context.model is app.model is not None
        assert app.context.model_state.status == "loaded"

        screen.post_message(UnloadModelRequested())
        await wait_until(pilot, lambda: app.model is None)
        assert app.context.model is None and app.context.model_state.status == "none"
