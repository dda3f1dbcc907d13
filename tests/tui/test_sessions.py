"""Session files: round trip, schema version, corrupt files set aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.store.text_sessions import TextSession, load_session, save_session


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sessions" / "terminal.json"
    save_session(path, TextSession("$ ls\nfoo\n", [(5, 9)], {"temperature": 0.5}, active=True))
    session, error = load_session(path)
    assert error is None and session is not None
    assert session.text == "$ ls\nfoo\n"
    assert session.generated == [(5, 9)]
    assert session.prediction == {"temperature": 0.5}
    assert session.active


def test_a_version_1_file_reads_as_not_active(tmp_path: Path) -> None:
    path = tmp_path / "terminal.json"
    path.write_text('{"schema_version": 1, "text": "$ ls", "generated": [[4, 4]]}')
    session, error = load_session(path)
    assert error is None and session is not None
    assert session.text == "$ ls" and session.generated == [(4, 4)]
    assert not session.active


def test_missing_file_is_no_session(tmp_path: Path) -> None:
    assert load_session(tmp_path / "nope.json") == (None, None)


def test_corrupt_and_unknown_files_are_set_aside(tmp_path: Path) -> None:
    bad = tmp_path / "terminal.json"
    bad.write_text("{not json")
    session, error = load_session(bad)
    assert session is None and error is not None and "set aside" in error
    assert not bad.exists() and (tmp_path / "terminal.json.corrupt-1").exists()

    future = tmp_path / "complete.json"
    future.write_text('{"schema_version": 99, "text": ""}')
    session, error = load_session(future)
    assert session is None and error is not None and "schema version 99" in error
    assert (tmp_path / "complete.json.corrupt-1").exists()

    wrong = tmp_path / "other.json"
    wrong.write_text('{"schema_version": 1, "text": 5}')
    session, error = load_session(wrong)
    assert session is None and error is not None and "text" in error


DEEP = "[" * 1000 + "]" * 1000
"""Valid JSON that json.loads cannot parse: RecursionError at Python's default limit."""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (DEEP, "not valid JSON (nested too deeply)"),
        ('{"schema_version": 1, "text": "", "prediction": ' + DEEP + "}", "nested too deeply"),
        ("null", "not a session file (not a JSON object)"),
        ("[]", "not a session file (not a JSON object)"),
        ('{"schema_version": true, "text": ""}', "unknown schema version True"),
        ('{"schema_version": 3, "text": ""}', "written by a newer llamaterm (schema version 3)"),
    ],
)
def test_every_file_that_is_no_session_is_reported_and_set_aside(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "complete.json"
    path.write_text(content)
    session, error = load_session(path)
    assert session is None
    assert (
        error is not None and problem in error and "set aside as complete.json.corrupt-1" in error
    )
    assert (tmp_path / "complete.json.corrupt-1").read_text() == content
