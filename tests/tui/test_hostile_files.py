"""The real app started on hostile or damaged files: it starts, says what it set aside.

A JSON file nested past the parser's depth, a chat holding `null`, a chat written by a
newer llamaterm, temporary files left by killed saves: each used to crash the app at
start, vanish silently, or stay forever (issue 13).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from tui_testing import TERMINAL_SIZE

from themes import builtin_themes_dir, load_themes
from tui.app import LlamatermApp
from tui.store.app_state import THEME_KEY
from tui.store.saved_chats import ChatStore, SavedChat

MakeApp = Callable[..., LlamatermApp]

DEEP = "[" * 1000 + "]" * 1000
"""Valid JSON that json.loads cannot parse: RecursionError at Python's default limit."""


def a_saved_chat(data_dir: Path, title: str) -> SavedChat:
    saved = SavedChat("20250101-000000-aaa111", title=title, named=True)
    saved.chat.add_user_message("hello")
    ChatStore(data_dir).save(saved)
    return saved


async def test_the_app_starts_on_deep_json_null_and_newer_chats_and_says_so(
    make_app: MakeApp, isolated: Path
) -> None:
    isolated.mkdir(parents=True)
    (isolated / "state.json").write_text(DEEP)
    a_saved_chat(isolated, "Survivor")
    chats = isolated / "chats"
    (chats / "20240101-000000-deep00.json").write_text(DEEP)
    (chats / "20240101-000000-null00.json").write_text("null")
    newer = chats / "20240101-000000-new000.json"
    newer.write_text(json.dumps({"schema_version": 2, "chat": {"messages": []}}))

    app = make_app(autoload=False, mode="chat")
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await pilot.pause()
        screen = app.screen
        entries = screen.chat_list.entries  # type: ignore[attr-defined]
        assert [title for _, title in entries] == ["Survivor"]
        notes = list(app._notifications)
        [state_note] = [n for n in notes if "state.json" in n.message]
        assert "nested too deeply" in state_note.message and "corrupt-1" in state_note.message
        [chat_note] = [n for n in notes if "chat file" in (n.title or "")]
        assert chat_note.title == "3 chat files not loaded"
        assert "deep00.json: not valid JSON (nested too deeply)" in chat_note.message
        assert "null00.json: not a chat file (a JSON null" in chat_note.message
        assert "new000.json: written by a newer llamaterm" in chat_note.message
        # The app works on: a choice made now is remembered in a fresh state.json.
        app.theme = "llamaterm-light"
        await pilot.pause()
    assert json.loads((isolated / "state.json").read_text())[THEME_KEY] == "llamaterm-light"
    assert (isolated / "state.json.corrupt-1").read_text() == DEEP
    assert (chats / "20240101-000000-deep00.json.corrupt-1").read_text() == DEEP
    assert (chats / "20240101-000000-null00.json.corrupt-1").read_text() == "null"
    assert newer.exists(), "a newer version's chat stays for that version"
    assert not (chats / "20240101-000000-new000.json.corrupt-1").exists()


async def test_the_app_removes_stale_temporary_files_of_killed_saves_at_start(
    make_app: MakeApp, isolated: Path
) -> None:
    a_saved_chat(isolated, "Kept")
    chats = isolated / "chats"
    stale = [
        isolated / ".state.json.abcd1234.tmp",
        chats / ".20250101-000000-aaa111.json.x_y9z8w7.tmp",
        isolated / "sessions" / ".complete.json.00000000.tmp",
    ]
    fresh = chats / ".20250101-000000-aaa111.json.fresh123.tmp"
    not_ours = [chats / "notes.tmp", chats / ".notes.tmp", isolated / ".keep.me.TOOLONG99.tmp"]
    an_hour_ago = time.time() - 3600
    for path in [*stale, fresh, *not_ours]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half a save")
    for path in [*stale, *not_ours]:
        os.utime(path, (an_hour_ago, an_hour_ago))

    app = make_app(autoload=False, mode="chat")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await pilot.pause()
    assert not any(path.exists() for path in stale)
    assert fresh.exists(), "a save under way in another llamaterm keeps its file"
    assert all(path.exists() for path in not_ours)


def test_a_theme_file_nested_too_deeply_is_reported_and_the_others_load(tmp_path: Path) -> None:
    (tmp_path / "deep.toml").write_text("name = " + DEEP + "\n")
    themes, errors = load_themes([builtin_themes_dir(), tmp_path])
    assert errors == ["deep.toml: invalid TOML: nested too deeply"]
    assert "llamaterm-dark" in [theme.name for theme in themes]
