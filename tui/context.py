"""What the app hands down to its screens: one plain object, no App class.

Screens read their settings, data directory, log bus and the current model from
the `AppContext` they are built with, and ask the app for changes by posting the
request messages in `tui.app_messages` (`LoadModelRequested` and the like). So no
screen imports the app, and a screen can be built and tested with a context alone.
The app keeps `model` and `model_state` here current (it sets them before any
screen's watcher of its reactives runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.contract import ChatModel
from engine.logbus import LogBus
from engine.paths import models_dir
from tui.config import AppSettings
from tui.model_state import ModelState
from tui.store.app_state import AppState


@dataclass
class AppContext:
    settings: AppSettings
    """The config file, read once at start."""
    data_dir: Path
    """Where chats, sessions, logs, state and downloaded models live."""
    log_bus: LogBus
    """The engine's records (loads, predictions, server requests) for the Logs screen."""
    cursor_blink: bool = True
    """False in snapshot tests, so that a cursor stays put."""
    model: ChatModel | None = None
    """The model the app has now, or None (the app's `model` reactive, mirrored)."""
    model_state: ModelState = field(default_factory=ModelState)
    """What the status line shows about the model (the app's `model_state`, mirrored)."""

    @property
    def state(self) -> AppState:
        """The choices remembered in the data directory (theme, last model, last chat)."""
        return AppState(self.data_dir)

    def model_dirs(self) -> list[Path]:
        """Where local models are looked for: the data directory's models/, then the config's."""
        return [models_dir(self.data_dir), *self.settings.paths.model_dirs]
