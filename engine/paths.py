"""Where llamaterm keeps its config and data on disk.

Every function reads the environment when called, never at import, so tests can
point everything at a temporary directory with monkeypatch. Nothing here creates
a directory: the code that writes a file creates its parent when it needs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "llamaterm"
CONFIG_ENV = "LLAMATERM_CONFIG"
CONFIG_FILE_NAME = "config.toml"


def checked_path(path: Path) -> Path:
    """`path` unchanged, or ValueError if no operating system could open it.

    A NUL character ends a C string, so a path holding one cannot name any file;
    passed on, it makes the first open() or mkdir() raise far from the setting.
    """
    if "\x00" in str(path):
        raise ValueError("contains a NUL character (\\u0000), which no file name may hold")
    return path


def config_path() -> Path:
    """The config file: $LLAMATERM_CONFIG, else $XDG_CONFIG_HOME/llamaterm/config.toml.

    Falls back to the platform's user config directory when XDG_CONFIG_HOME is unset.
    """
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    base = _xdg_dir("XDG_CONFIG_HOME")
    if base is None:
        return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / CONFIG_FILE_NAME
    return base / APP_NAME / CONFIG_FILE_NAME


def data_dir(override: Path | None = None) -> Path:
    """The data directory: `override` (from settings), else $XDG_DATA_HOME/llamaterm.

    Falls back to the platform's user data directory when XDG_DATA_HOME is unset.
    """
    if override is not None:
        return Path(override).expanduser()
    base = _xdg_dir("XDG_DATA_HOME")
    if base is None:
        return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return base / APP_NAME


def models_dir(data: Path) -> Path:
    """Where downloaded models go."""
    return data / "models"


def chats_dir(data: Path) -> Path:
    """Where chats are saved, one JSON file each."""
    return data / "chats"


def logs_dir(data: Path) -> Path:
    """Where engine and llama.cpp logs are written."""
    return data / "logs"


def _xdg_dir(variable: str) -> Path | None:
    # An empty value counts as unset, as the XDG spec says.
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None
