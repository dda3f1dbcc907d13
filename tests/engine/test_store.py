"""Atomic writes, quarantine of corrupt files, and the state file."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from engine import store
from engine.store import (
    StoreError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    quarantine,
    read_json_or_quarantine,
    read_state,
    state_path,
    write_state,
)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def enospc(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


# --- atomic writes ----------------------------------------------------------


def test_write_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "file.txt"
    atomic_write_text(path, "one\n")
    assert path.read_text() == "one\n"
    atomic_write_text(path, "two\r\n")
    assert path.read_bytes() == b"two\r\n"
    atomic_write_bytes(path, b"\x00three")
    assert path.read_bytes() == b"\x00three"
    assert names(path.parent) == ["file.txt"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "chat.json"
    path.write_text("old content")
    monkeypatch.setattr(os, failing, enospc)
    with pytest.raises(OSError) as caught:
        atomic_write_text(path, "new content " * 1000)
    assert caught.value.errno == errno.ENOSPC
    assert path.read_text() == "old content"
    assert names(tmp_path) == ["chat.json"]


def test_failed_write_of_new_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "new.json", b"{}")
    assert names(tmp_path) == []


def test_interrupted_write_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    path.write_text("{}")

    def interrupt(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, '{"a": 1}')
    assert names(tmp_path) == ["state.json"]
    assert path.read_text() == "{}"


def test_directory_fsync_failure_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    calls: list[int] = []

    def fsync_files_only(fd: int) -> None:
        calls.append(fd)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_files_only)
    atomic_write_text(tmp_path / "f.txt", "ok")
    assert (tmp_path / "f.txt").read_text() == "ok"
    assert len(calls) == 2  # the file, then its directory


def test_directory_that_cannot_be_opened_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_directories(path: Any, flags: int, *args: Any) -> int:
        if Path(path) == tmp_path:
            raise PermissionError(errno.EACCES, "denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_directories)
    atomic_write_text(tmp_path / "f.txt", "ok")
    assert (tmp_path / "f.txt").read_text() == "ok"


def test_write_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "shared.txt"
    path.write_text("old")
    path.chmod(0o644)
    atomic_write_text(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_through_symlink_replaces_the_target(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_write_json_round_trips_and_keeps_unicode(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    atomic_write_json(path, {"title": "café ☕", "n": [1, 2]})
    assert json.loads(path.read_text(encoding="utf-8")) == {"title": "café ☕", "n": [1, 2]}
    assert "café ☕" in path.read_text(encoding="utf-8")


def test_unserialisable_json_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text('{"ok": true}')
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert path.read_text() == '{"ok": true}'
    assert names(tmp_path) == ["chat.json"]


# --- reading and quarantine -------------------------------------------------


def test_read_good_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    assert read_json_or_quarantine(path) == (None, None)
    path.write_text('{"a": 1}')
    assert read_json_or_quarantine(path) == ({"a": 1}, None)


def test_corrupt_json_is_set_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_bytes(b'{"messages": [')
    data, error = read_json_or_quarantine(path)
    assert data is None
    assert error is not None
    assert str(path) in error and "chat.json.corrupt-1" in error
    assert not path.exists()
    assert (tmp_path / "chat.json.corrupt-1").read_bytes() == b'{"messages": ['


def test_quarantine_never_overwrites_earlier_copies(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    for attempt in (b"first", b"second", b"third"):
        path.write_bytes(attempt)
        read_json_or_quarantine(path)
    assert names(tmp_path) == ["chat.json.corrupt-1", "chat.json.corrupt-2", "chat.json.corrupt-3"]
    assert (tmp_path / "chat.json.corrupt-1").read_bytes() == b"first"
    assert (tmp_path / "chat.json.corrupt-3").read_bytes() == b"third"


def test_quarantine_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "chat.json"
    (tmp_path / "chat.json.corrupt-1").write_bytes(b"older")
    path.write_bytes(b"newer")
    assert quarantine(path) == tmp_path / "chat.json.corrupt-2"
    assert (tmp_path / "chat.json.corrupt-1").read_bytes() == b"older"
    assert (tmp_path / "chat.json.corrupt-2").read_bytes() == b"newer"
    assert not path.exists()


def test_invalid_utf8_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_bytes(b'{"a": "\xff"}')
    data, error = read_json_or_quarantine(path)
    assert data is None and error is not None
    assert (tmp_path / "chat.json.corrupt-1").exists()


def test_unreadable_file_is_reported_not_moved(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.mkdir()
    data, error = read_json_or_quarantine(path)
    assert data is None and error is not None and "cannot read" in error
    assert path.is_dir()
    assert names(tmp_path) == ["chat.json"]


def test_failed_quarantine_is_reported_and_file_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "link", enospc)
    monkeypatch.setattr(os, "rename", enospc)
    path = tmp_path / "chat.json"
    path.write_bytes(b"{")
    data, error = read_json_or_quarantine(path)
    assert data is None and error is not None and "could not set it aside" in error
    assert path.read_bytes() == b"{"


# --- state.json -------------------------------------------------------------


def test_state_round_trip_keeps_other_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert read_state(data_dir) == {}
    assert not data_dir.exists()
    write_state(data_dir, "last_model", "gemma-3-270m")
    write_state(data_dir, "theme", "llamaterm-light")
    assert read_state(data_dir) == {"last_model": "gemma-3-270m", "theme": "llamaterm-light"}
    assert state_path(data_dir) == data_dir / "state.json"
    assert names(data_dir) == ["state.json"]


def test_corrupt_state_gives_defaults_and_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state_path(tmp_path).write_bytes(b'{"theme": ')
    with caplog.at_level(logging.WARNING, logger="llamaterm.store"):
        assert read_state(tmp_path) == {}
    assert "state.json.corrupt-1" in caplog.text
    write_state(tmp_path, "theme", "x")
    assert read_state(tmp_path) == {"theme": "x"}
    assert (tmp_path / "state.json.corrupt-1").read_bytes() == b'{"theme": '


def test_state_that_is_not_an_object_is_set_aside(tmp_path: Path) -> None:
    state_path(tmp_path).write_text("[1, 2]")
    assert read_state(tmp_path) == {}
    assert (tmp_path / "state.json.corrupt-1").read_text() == "[1, 2]"
    write_state(tmp_path, "a", 1)
    assert read_state(tmp_path) == {"a": 1}


def test_write_state_refuses_to_clobber_what_it_could_not_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_path(tmp_path).write_bytes(b"{broken")

    def cannot(path: Path) -> Path:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store, "quarantine", cannot)
    with pytest.raises(StoreError):
        write_state(tmp_path, "theme", "x")
    assert state_path(tmp_path).read_bytes() == b"{broken"


def test_write_state_with_unserialisable_value_keeps_state(tmp_path: Path) -> None:
    write_state(tmp_path, "a", 1)
    with pytest.raises(TypeError):
        write_state(tmp_path, "b", {1, 2})
    assert read_state(tmp_path) == {"a": 1}
    assert names(tmp_path) == ["state.json"]
