"""Complete and terminal-simulation sessions on disk: one JSON file each.

Every file carries a schema version and is read through a converter for its
version. Writes are atomic (engine.store); a file that does not parse, or does
not match its schema (one holding `null` included), is set aside and reported, and
the app starts empty. So is a newer version's file: unlike a chat, a session has one
fixed name, so the next save here would replace a file left in place.
Version 2 adds `active`: whether the session's pane was the one shown last (so the
Complete screen reopens in terminal mode when it was left in it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.store import (
    UNREADABLE_ERRORS,
    atomic_write_json,
    describe_failure,
    read_json_file,
    set_aside,
)

SCHEMA_VERSION = 2
COMPLETE_FILE = "complete.json"
TERMINAL_FILE = "terminal.json"


def sessions_dir(data_dir: Path) -> Path:
    return data_dir / "sessions"


@dataclass(slots=True)
class TextSession:
    """A text and the ranges of it the model generated (character offsets)."""

    text: str = ""
    generated: list[tuple[int, int]] = field(default_factory=list)
    prediction: dict[str, Any] = field(default_factory=dict)
    """Prediction settings given in the session (LM Studio's camelCase keys)."""
    active: bool = False
    """Whether this session's pane was the one shown when the screen was left."""


class _SessionV1(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = Field(ge=1, le=1)
    text: str
    generated: list[tuple[int, int]] = Field(default_factory=list)
    prediction: dict[str, Any] = Field(default_factory=dict)


class _SessionV2(_SessionV1):
    schema_version: int = Field(ge=2, le=2)
    active: bool = False


def _from_v1(data: Any) -> TextSession:
    session = _SessionV1.model_validate(data)
    return TextSession(session.text, list(session.generated), dict(session.prediction))


def _from_v2(data: Any) -> TextSession:
    session = _SessionV2.model_validate(data)
    return TextSession(
        session.text, list(session.generated), dict(session.prediction), session.active
    )


_CONVERTERS = {1: _from_v1, 2: _from_v2}


def load_session(path: Path) -> tuple[TextSession | None, str | None]:
    """`(session, None)`; `(None, None)` when there is no file; `(None, problem)` otherwise."""
    found = read_json_file(path)
    if found.error is not None or not found.found:
        return None, found.error
    data = found.data
    if not isinstance(data, dict):
        return None, set_aside(path, "not a session file (not a JSON object)")
    version = data.get("schema_version")
    # type(), not isinstance: True is an int, and equal to 1.
    converter = _CONVERTERS.get(version) if type(version) is int else None
    if converter is None:
        if type(version) is int and version > SCHEMA_VERSION:
            return None, set_aside(path, f"written by a newer llamaterm (schema version {version})")
        return None, set_aside(path, f"unknown schema version {version!r}")
    try:
        return converter(data), None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        return None, set_aside(path, f"{where}: {first['msg']}")
    except UNREADABLE_ERRORS as err:
        return None, set_aside(path, describe_failure(err))


def save_session(path: Path, session: TextSession) -> None:
    atomic_write_json(
        path,
        {
            "schema_version": SCHEMA_VERSION,
            "text": session.text,
            "generated": [list(span) for span in session.generated],
            "prediction": session.prediction,
            "active": session.active,
        },
    )
