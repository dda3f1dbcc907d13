"""The app's settings: the config file's [ui], [keymap] and [remotes] over the engine's.

One file serves both (see config.example.toml): `engine.settings.Settings` checks
the engine's tables and reads past these; `AppSettings` adds them, so the app and
the `llamaterm` command check the whole file. No Textual here: the command line
reads its config through this module too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from engine.settings import ConfigSection, Settings, read_config_file


class UISettings(ConfigSection):
    theme: str = "llamaterm-dark"
    """The theme at start (the last one chosen in the app wins, once there is one)."""
    show_reasoning: bool = True
    """Show the model's reasoning above its answer (collapsible)."""
    stream_refresh_rate: int = Field(default=10, ge=1, le=60)
    """Times a second streamed text reaches the screen. Each update redraws the reply, on
    the same interpreter (and GIL) as the model's token loop: on a 2-core machine 30 a
    second cost a quarter of generation speed, 10 nothing measurable (bench/tui_streaming.py)."""


class RemoteSettings(ConfigSection):
    base_url: str
    """An OpenAI-compatible server, e.g. "http://gpu-box:8080/v1" (llama-server, vLLM, LM Studio, Ollama)."""
    api_key: str | None = None
    """Its API key, if it wants one."""
    name: str = ""
    """A name to show in the Models screen; empty shows the URL."""


class AppSettings(Settings):
    """The whole config file: the engine's settings and the app's."""

    ui: UISettings = Field(default_factory=UISettings)
    """Look and feel."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Key bindings by binding id, e.g. "chat.new" = "ctrl+n"."""
    remotes: list[RemoteSettings] = Field(default_factory=list)
    """Remote OpenAI-compatible servers whose models the Models screen lists."""

    @field_validator("keymap", mode="before")
    @classmethod
    def _flatten_keymap(cls, value: Any) -> Any:
        # Unquoted `chat.new = "ctrl+n"` is a nested table in TOML; accept it as the id it reads as.
        if isinstance(value, Mapping):
            return dict(_flatten(value))
        return value

    @field_validator("keymap")
    @classmethod
    def _keys_not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        empty = [binding for binding, keys in value.items() if not keys.strip()]
        if empty:
            raise ValueError(f"no keys given for {', '.join(empty)}")
        return value


def load_app_settings(path: Path | None = None) -> AppSettings:
    """Read the whole config file (default: engine.paths.config_path()); a missing file
    gives the defaults. Raises ConfigError naming the file and each bad key."""
    return read_config_file(AppSettings, path)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value
