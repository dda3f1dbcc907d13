"""Start-up housekeeping of the app's own directories.

A save killed half-way (kill -9, a power cut) leaves its temporary file behind, and
nothing else ever removes it. At start the app clears those that are stale, and only
in the directories it writes itself; engine.store decides what counts as one of ours.
"""

from __future__ import annotations

from pathlib import Path

from engine.paths import chats_dir, logs_dir
from engine.store import remove_stale_temp_files
from tui.store.text_sessions import sessions_dir


def app_directories(data_dir: Path) -> list[Path]:
    """The directories the app saves into: state.json and model settings, chats,
    sessions, saved logs. Not the models directory (downloads name their own files)."""
    data = Path(data_dir)
    return [data, chats_dir(data), sessions_dir(data), logs_dir(data)]


def tidy_app_directories(data_dir: Path) -> list[Path]:
    """Remove what killed saves left in the app's directories; the paths removed."""
    return remove_stale_temp_files(app_directories(data_dir))
