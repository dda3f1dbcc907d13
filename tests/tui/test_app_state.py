"""What the app remembers between runs (state.json): kept key by key, corrupt files set aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.store.app_state import LAST_CHAT_KEY, THEME_KEY, AppState


def test_choices_are_kept_key_by_key(tmp_path: Path) -> None:
    state = AppState(tmp_path)
    assert state.read() == {} and state.get_text(THEME_KEY) is None
    state.remember(THEME_KEY, "llamaterm-light")
    state.remember(LAST_CHAT_KEY, "20260101-000000-abc123")
    assert AppState(tmp_path).read() == {
        THEME_KEY: "llamaterm-light",
        LAST_CHAT_KEY: "20260101-000000-abc123",
    }
    assert state.path == tmp_path / "state.json"


def test_a_value_of_another_type_is_no_text(tmp_path: Path) -> None:
    state = AppState(tmp_path)
    state.remember(THEME_KEY, 3)
    assert state.get_text(THEME_KEY) is None


def test_a_corrupt_file_is_set_aside_and_the_app_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state.json").write_text('{"theme": ')
    state = AppState(tmp_path)
    assert state.read() == {}
    assert "state.json.corrupt-1" in caplog.text
    state.remember(THEME_KEY, "x")
    assert state.read() == {THEME_KEY: "x"}
    assert (tmp_path / "state.json.corrupt-1").read_text() == '{"theme": '
