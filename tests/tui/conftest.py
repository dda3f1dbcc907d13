"""TUI test fixtures: an app built for tests and isolated directories (see tui_testing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tui_testing import PREDICTION

from engine.load_config import LoadConfig
from engine.prediction import PredictionConfig
from tui.app import LlamatermApp
from tui.config import AppSettings


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Config and data directories of our own; returns llamaterm's data directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("LLAMATERM_CONFIG", raising=False)
    return tmp_path / "data" / "llamaterm"


@pytest.fixture
def make_app(isolated: Path, tiny_model_path: Path) -> Callable[..., LlamatermApp]:
    """Build an app for tests; keyword arguments override the defaults below."""

    def make(
        *,
        prediction: PredictionConfig = PREDICTION,
        load: LoadConfig | None = None,
        keymap: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> LlamatermApp:
        settings = AppSettings(
            prediction=prediction,
            load=load or LoadConfig(context_length=512, threads=1),
            keymap=keymap or {},
        )
        kwargs.setdefault("model", str(tiny_model_path))
        kwargs.setdefault("cursor_blink", False)
        # The Complete screen's tests and snapshots predate Chat being the first screen.
        kwargs.setdefault("mode", "complete")
        app = LlamatermApp(settings, **kwargs)
        app.animation_level = "none"
        return app

    return make
