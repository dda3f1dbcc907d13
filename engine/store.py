"""Files on disk that must survive crashes, full disks and corruption.

Every write goes to a temporary file in the same directory, is flushed, fsynced
and renamed over the old one, so a reader sees the old file or the new one, never
half of either. A file that does not parse is never overwritten or deleted: it is
renamed aside to `<name>.corrupt-<n>` and the problem is reported (`set_aside`, the
one helper every store uses, the app's included). "Does not parse" is any failure to
decode: bad bytes, bad JSON, and also JSON nested too deeply for the parser
(RecursionError) or too large for memory (MemoryError), so that no file can crash a
reader. A write that fails (a full disk) raises `SaveError`, which names the file and
says that its old version is intact.

A save killed half-way leaves its temporary file (`.<name>.<random>.tmp`) behind;
`remove_stale_temp_files` clears those of a directory at start-up.

A JSON object file of remembered values (`read_json_object`, `update_json_object`)
is here for every store that keeps one; what the app remembers (theme, last model,
last chat) is the app's, in `tui.store.app_state`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from engine.errors import SaveError, StoreError

STATE_FILE_NAME = "state.json"
"""Old name, kept while callers move: the app's state file is `tui.store.app_state`'s."""

_log = logging.getLogger("llamaterm.store")

UNREADABLE_ERRORS: tuple[type[BaseException], ...] = (ValueError, RecursionError, MemoryError)
"""What decoding or validating a file may raise when the file, not the program, is at fault.

ValueError covers UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError and
pydantic's ValidationError; the other two come from files nested or sized past what a
parser can hold. Every loader of a file a person or a crash may have damaged catches these.
"""

TEMP_SUFFIX = ".tmp"
STALE_TEMP_AGE_SEC = 60.0
"""A temporary file this old belongs to no save still running (a save takes milliseconds)."""

_OUR_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
"""How `atomic_write_bytes` names its temporary files (tempfile.mkstemp's 8 random characters)."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; on any failure the old file is untouched.

    Creates the parent directory if needed. Follows a symlink at `path`, so that the
    file it points to is replaced rather than the link. Raises SaveError (an OSError
    with the same errno) naming the file when the disk refuses.
    """
    target = _resolve_link(Path(path))
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
        )
    except OSError as err:
        raise SaveError.for_file(target, err, existed) from err
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _keep_mode(target, temp)
        os.replace(temp, target)
    except BaseException as err:
        # ENOSPC, EIO, KeyboardInterrupt...: the temp file must not be left behind.
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(err, OSError):
            raise SaveError.for_file(target, err, existed) from err
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` atomically (no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Replace `path` with `obj` as indented JSON, atomically.

    The object is serialised before anything touches the disk, so an object that
    cannot be written as JSON raises TypeError and leaves the old file as it was
    (one nested too deeply to write included: what a deep file read back may hold).
    """
    try:
        text = json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
    except RecursionError:
        raise TypeError("nested too deeply to be written as JSON") from None
    atomic_write_text(path, text)


@dataclass(frozen=True, slots=True)
class JsonFile:
    """What reading a JSON file found: `found` is False only for a missing file."""

    found: bool
    data: Any = None
    error: str | None = None
    """One line for a file that cannot be read or parsed (then `data` is None)."""


def read_json_file(path: Path) -> JsonFile:
    """Read and parse `path`; a file that does not parse is set aside and reported.

    Unlike `read_json_or_quarantine`, tells a file holding `null` from a missing one.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return JsonFile(found=False)
    except OSError as err:
        return JsonFile(True, error=f"{path}: cannot read: {err.strerror or err}")
    except MemoryError as err:
        return JsonFile(True, error=set_aside(path, describe_failure(err)))
    try:
        return JsonFile(True, json.loads(raw.decode("utf-8")))
    except UNREADABLE_ERRORS as err:
        return JsonFile(True, error=set_aside(path, f"not valid JSON ({describe_failure(err)})"))


def read_json_or_quarantine(path: Path) -> tuple[Any | None, str | None]:
    """`(object, None)` for a good file; `(None, None)` for a missing one (or one that
    holds `null`: `read_json_file` tells the two apart); `(None, message)` for one that
    cannot be read or parsed.

    A file that does not parse is renamed aside (see `quarantine`) so that the next
    write cannot destroy what may still be recovered by hand.
    """
    found = read_json_file(path)
    return found.data, found.error


def describe_failure(err: BaseException) -> str:
    """One line on why a file could not be decoded, for `set_aside`'s message."""
    if isinstance(err, RecursionError):
        return "nested too deeply"
    if isinstance(err, MemoryError):
        return "too large to read"
    return str(err) or type(err).__name__


def quarantine(path: Path) -> Path:
    """Rename `path` to the first free `<name>.corrupt-<n>` and return the new path.

    Never replaces an existing file, not even an earlier quarantined one.
    """
    path = Path(path)
    for number in count(1):
        aside = path.with_name(f"{path.name}.corrupt-{number}")
        if _rename_no_replace(path, aside):
            return aside
    raise AssertionError("unreachable")  # pragma: no cover


def set_aside(path: Path, problem: str) -> str:
    """Rename a file that cannot be used aside (see `quarantine`) and say so in one line.

    The line reads `<path>: <problem>; set aside as <name>.corrupt-<n>`, or says that
    the file could not be set aside (it is then left where it was, untouched).
    """
    try:
        aside = quarantine(path)
    except OSError as err:
        return f"{path}: {problem}; could not set it aside: {err.strerror or err}"
    return f"{path}: {problem}; set aside as {aside.name}"


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; `{}` when there is none or the file was corrupt.

    A corrupt file (or one that holds no JSON object) is set aside and logged, so
    the caller goes on with defaults.
    """
    data, error = _load_object(Path(path))
    if error is not None:
        _log.warning("%s", error)
    return data


def update_json_object(path: Path, key: str, value: Any) -> None:
    """Set `key` to `value` in the JSON object in `path`, keeping the other keys.

    Raises StoreError rather than replace a file that could not be read or set
    aside, and TypeError for a value that is not JSON.
    """
    path = Path(path)
    data, error = _load_object(path)
    if error is not None:
        _log.warning("%s", error)
        if path.exists():
            # Quarantine failed (or the file is unreadable): it must not be clobbered.
            raise StoreError(f"{error}; not overwriting it")
    data[key] = value
    atomic_write_json(path, data)


def read_json_object_reporting(path: Path) -> tuple[dict[str, Any], str | None]:
    """The JSON object in `path` (`{}` when there is none), and one line when the file
    was corrupt or held no object (it is then set aside), for a caller that shows it."""
    data, error = _load_object(Path(path))
    if error is not None:
        _log.warning("%s", error)
    return data, error


def _load_object(path: Path) -> tuple[dict[str, Any], str | None]:
    found = read_json_file(path)
    error = found.error
    if found.found and error is None and not isinstance(found.data, dict):
        error = set_aside(path, "not a JSON object")
    if error is not None or not found.found:
        return {}, error
    return found.data, None


def remove_stale_temp_files(
    directories: Iterable[Path], older_than: float = STALE_TEMP_AGE_SEC
) -> list[Path]:
    """Delete the temporary files that killed saves left in `directories`; the paths removed.

    Only regular files named as `atomic_write_bytes` names them (`.<name>.<8 random>.tmp`),
    directly in each directory (not below it), and last changed more than `older_than`
    seconds ago, so a save running in another llamaterm process keeps its file. Anything
    else, a link of that name included, is left alone; a file that cannot be removed is skipped.
    """
    cutoff = time.time() - older_than
    removed: list[Path] = []
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if not _OUR_TEMP_NAME.match(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                    continue
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    if removed:
        _log.info("removed %d temporary file(s) left by interrupted saves", len(removed))
    return removed


# Old names, kept while callers move: the app's state is `tui.store.app_state`.


def state_path(data_dir: Path) -> Path:
    """The small JSON file of remembered choices (last model, theme...)."""
    return Path(data_dir) / STATE_FILE_NAME


def read_state(data_dir: Path) -> dict[str, Any]:
    """The remembered choices; `{}` when there are none or the file was corrupt."""
    return read_json_object(state_path(data_dir))


def write_state(data_dir: Path, key: str, value: Any) -> None:
    """Remember `value` under `key` in state.json, keeping the other keys."""
    update_json_object(state_path(data_dir), key, value)


def _rename_no_replace(source: Path, destination: Path) -> bool:
    """Rename without ever replacing `destination`; False if it already exists.

    os.rename silently replaces on POSIX, so link-then-unlink is used where the
    filesystem has hard links, and an existence check where it does not.
    """
    try:
        os.link(source, destination)
    except FileExistsError:
        return False
    except OSError:
        if destination.exists():
            return False
        os.rename(source, destination)
        return True
    os.unlink(source)
    return True


def _resolve_link(path: Path) -> Path:
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _keep_mode(original: Path, replacement: Path) -> None:
    # mkstemp creates 0600; a file the person made readable to others should stay so.
    with contextlib.suppress(FileNotFoundError):
        os.chmod(replacement, stat.S_IMODE(original.stat().st_mode))


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform or filesystem allows it.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
