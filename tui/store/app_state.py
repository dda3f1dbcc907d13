"""What the app remembers between runs: the theme, the last model, the last chat.

One small JSON object in `<data>/state.json`, written atomically; a corrupt file is
set aside and the app goes on with defaults (engine.store does both). `read_reporting`
also says what was wrong, for the app to show at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.store import read_json_object, read_json_object_reporting, update_json_object

STATE_FILE_NAME = "state.json"

THEME_KEY = "theme"
"""The theme last chosen in the app."""
LAST_MODEL_KEY = "last_model"
"""The path of the model last loaded."""
LAST_CHAT_KEY = "last_chat"
"""The id of the chat to open at start."""


class AppState:
    """The remembered choices in one data directory; each read goes to the file."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / STATE_FILE_NAME

    def read(self) -> dict[str, Any]:
        """Every remembered choice; `{}` when there are none or the file was corrupt."""
        return read_json_object(self.path)

    def read_reporting(self) -> tuple[dict[str, Any], str | None]:
        """Every remembered choice, and one line when the file was corrupt (then set aside)."""
        return read_json_object_reporting(self.path)

    def get_text(self, key: str) -> str | None:
        """The remembered string under `key`, or None (also for a value of another type)."""
        value = self.read().get(key)
        return value if isinstance(value, str) else None

    def remember(self, key: str, value: Any) -> None:
        """Keep `value` under `key`, with the other choices.

        Raises StoreError rather than replace a file it could not set aside, OSError
        when the disk refuses, TypeError for a value that is not JSON.
        """
        update_json_object(self.path, key, value)
