"""engine.store against files that would crash a reader, killed saves and full disks.

JSON nested past the parser's depth (RecursionError), files too large for memory, a
file holding `null`, the temporary files a `kill -9` leaves, and a write refused by a
really full filesystem (issue 13).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.errors import SaveError, StoreError
from engine.store import (
    atomic_write_bytes,
    atomic_write_json,
    read_json_file,
    read_json_object,
    read_json_object_reporting,
    read_json_or_quarantine,
    remove_stale_temp_files,
    update_json_object,
)

DEEP = "[" * 1000 + "]" * 1000
"""Valid JSON that json.loads cannot parse: RecursionError at Python's default limit."""

REPO = Path(__file__).resolve().parents[2]


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- files no parser can hold -------------------------------------------------------


def test_json_nested_too_deeply_is_set_aside_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text(DEEP)
    data, error = read_json_or_quarantine(path)
    assert data is None
    assert error == f"{path}: not valid JSON (nested too deeply); set aside as chat.json.corrupt-1"
    assert (tmp_path / "chat.json.corrupt-1").read_text() == DEEP


def test_deep_state_file_gives_defaults_and_can_be_written_again(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"theme": ' + DEEP + "}")
    assert read_json_object(path) == {}
    update_json_object(path, "theme", "x")
    assert read_json_object(path) == {"theme": "x"}
    assert names(tmp_path) == ["state.json", "state.json.corrupt-1"]


@pytest.mark.parametrize(
    ("failure", "problem"),
    [
        (MemoryError(), "too large to read"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (ValueError("Exceeds the limit (4300 digits) for integer string conversion"), "4300"),
    ],
)
def test_any_failure_to_decode_sets_the_file_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException, problem: str
) -> None:
    path = tmp_path / "model_settings.json"
    path.write_text('{"models": {}}')

    def failing(text: str) -> object:
        raise failure

    monkeypatch.setattr(json, "loads", failing)
    data, error = read_json_or_quarantine(path)
    assert data is None and error is not None
    assert problem in error and "set aside as model_settings.json.corrupt-1" in error


def test_a_file_too_large_to_read_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chat.json"
    path.write_text("{}")

    def too_large(self: Path) -> bytes:
        raise MemoryError

    monkeypatch.setattr(Path, "read_bytes", too_large)
    found = read_json_file(path)
    assert found.error == f"{path}: too large to read; set aside as chat.json.corrupt-1"
    assert names(tmp_path) == ["chat.json.corrupt-1"]


def test_a_file_holding_null_is_told_from_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert read_json_file(path).found is False
    path.write_text("null")
    found = read_json_file(path)
    assert found.found and found.data is None and found.error is None


def test_a_state_file_holding_null_is_set_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("null")
    data, problem = read_json_object_reporting(path)
    assert data == {}
    assert problem == f"{path}: not a JSON object; set aside as state.json.corrupt-1"
    assert read_json_object_reporting(path) == ({}, None)


def test_an_object_nested_too_deeply_to_write_is_a_type_error_and_keeps_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"theme": "x"}')
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(TypeError, match="nested too deeply"):
        atomic_write_json(path, {"theme": deep})
    assert path.read_text() == '{"theme": "x"}' and names(tmp_path) == ["state.json"]


# --- temporary files of killed saves ------------------------------------------------


def killed_save(target: Path) -> None:
    """Run a real save in a child that is SIGKILLed between writing and renaming."""
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from engine.store import atomic_write_bytes
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        atomic_write_bytes({str(target)!r}, b"x" * 100_000)
        """
    )
    done = subprocess.run([sys.executable, "-c", child], check=False)
    assert done.returncode == -9


def test_stale_temporary_files_of_killed_saves_are_removed(tmp_path: Path) -> None:
    chats = tmp_path / "chats"
    chats.mkdir()
    (chats / "a.json").write_text("{}")
    killed_save(chats / "a.json")
    killed_save(tmp_path / "state.json")
    [orphan] = [p for p in chats.iterdir() if p.name != "a.json"]
    assert orphan.name.startswith(".a.json.") and orphan.name.endswith(".tmp")
    # A minute is the margin for a save still running in another process.
    assert remove_stale_temp_files([tmp_path, chats]) == []
    old = time.time() - 120
    for path in [orphan, *tmp_path.glob(".state.json.*.tmp")]:
        os.utime(path, (old, old))
    removed = remove_stale_temp_files([tmp_path, chats])
    assert len(removed) == 2
    assert names(chats) == ["a.json"] and names(tmp_path) == ["chats"]
    assert (chats / "a.json").read_text() == "{}"


def test_only_our_own_temporary_files_are_removed(tmp_path: Path) -> None:
    old = time.time() - 3600
    below = tmp_path / "below"
    below.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    keep = {
        "notes.tmp": "file",
        ".notes.tmp": "file",
        ".a.json.ABCDEFGH.tmp": "file",  # mkstemp never uses capitals
        ".a.json.abc.tmp": "file",
        ".a.json.abcdefgh.tmp~": "file",
        ".b.json.abcdefgh.tmp": "link",
        ".c.json.abcdefgh.tmp": "dir",
    }
    for name, kind in keep.items():
        path = tmp_path / name
        if kind == "file":
            path.write_text("keep")
        elif kind == "link":
            path.symlink_to(outside)
        else:
            path.mkdir()
        os.utime(path, (old, old), follow_symlinks=False)
    deeper = below / ".a.json.abcdefgh.tmp"
    deeper.write_text("not in a listed directory")
    os.utime(deeper, (old, old))
    ours = tmp_path / ".a.json.k_9x2mzq.tmp"
    ours.write_text("half a save")
    os.utime(ours, (old, old))

    removed = remove_stale_temp_files([tmp_path, tmp_path / "missing"])
    assert removed == [ours]
    assert sorted(keep) == sorted(n for n in names(tmp_path) if n not in ("below", "outside.txt"))
    assert deeper.exists() and outside.read_text() == "keep"


# --- a write the disk refuses ------------------------------------------------------


def test_save_error_names_the_file_and_says_the_old_version_is_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chat.json"
    path.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SaveError) as caught:
        atomic_write_json(path, {"new": True})
    assert str(caught.value) == (
        f"could not save {path}: No space left on device; its previous version is intact"
    )
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, StoreError)
    with pytest.raises(SaveError, match="new.json: No space left on device; nothing was written"):
        atomic_write_json(tmp_path / "new.json", {})
    assert names(tmp_path) == ["chat.json"]


def test_a_directory_that_cannot_be_made_is_a_save_error_naming_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "chats").write_text("a file where the directory should be")
    with pytest.raises(SaveError, match=r"could not save .*chats/a\.json: "):
        atomic_write_bytes(tmp_path / "chats" / "a.json", b"{}")


def test_a_really_full_filesystem_names_the_file_and_keeps_the_old_one(
    full_filesystem: Path,
) -> None:
    path = full_filesystem / "chat.json"
    atomic_write_bytes(path, b"old version")
    with pytest.raises(SaveError) as caught:
        atomic_write_bytes(path, b"x" * 200_000)
    assert caught.value.errno == errno.ENOSPC
    assert str(path) in str(caught.value) and "previous version is intact" in str(caught.value)
    assert path.read_bytes() == b"old version"
    assert names(full_filesystem) == ["chat.json"]


def test_a_real_file_size_limit_names_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel refuse the write (EFBIG), as a full disk would.
    path = tmp_path / "chat.json"
    path.write_bytes(b"old version")
    child = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from engine.store import SaveError, atomic_write_bytes
        try:
            atomic_write_bytes({str(path)!r}, b"x" * 100_000)
        except SaveError as err:
            print(err.errno, err)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"{errno.EFBIG} could not save {path}: File too large; its previous version is intact"
    )
    assert path.read_bytes() == b"old version"
    assert names(tmp_path) == ["chat.json"]
