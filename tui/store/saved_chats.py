"""Saved chats: one JSON file each under `<data>/chats/`, with their settings.

A file holds the engine's `Chat` (messages, the system prompt first when there is
one) and what the app knows besides: the title, when it was made and last changed,
the chat's own prediction settings (only those the person changed, so later edits
of the config file still apply), whether tools are on and which, and for the
replies their stats, for the tool runs their outcome, and the calls a reply made to
tools the chat did not have (shown on cards, not as raw text), so a restored chat
looks as it did. What is kept by message is keyed by the message's index, and moves
with it when a message is inserted or deleted.

Writes are atomic (engine.store). A file that does not parse, or does not match
its schema (one holding `null` included), is set aside as `<name>.corrupt-<n>` and
reported; the others load. A file of a newer schema, written by a newer llamaterm,
is left where it is for that version and skipped with a notice.
Deleting moves the file to `<data>/chats/trash/`, from where it can be put back
by hand: nothing a person wrote is destroyed by one key press.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.chat import Chat, ChatFormatError, SystemPrompt, ToolResultMessage, UserMessage
from engine.paths import chats_dir
from engine.prediction import PredictionConfig, PredictionConfigError, PredictionStats
from engine.store import (
    UNREADABLE_ERRORS,
    atomic_write_json,
    describe_failure,
    read_json_file,
    set_aside,
)

SCHEMA_VERSION = 1
TRASH_DIR = "trash"
NEW_CHAT_TITLE = "New chat"
TITLE_LENGTH = 48
"""Characters of the first message that become a chat's title."""

ToolChoiceName = Literal["auto", "required"]


def now() -> str:
    # Microseconds: chats are sorted by this, and several change within one second.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_chat_id() -> str:
    """Sortable by creation time and unique enough for one person's chats; safe as a file name."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class ToolRun:
    """How one tool call went: shown again on its card when the chat is reopened."""

    is_error: bool = False
    denied: bool = False
    duration_sec: float = 0.0
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class UnknownCall:
    """A call the model wrote to a tool the chat did not have: its name and raw text,
    which stays in the message (it is what the model wrote) and shows as a card."""

    name: str
    raw_text: str


@dataclass(slots=True)
class ToolOptions:
    enabled: bool = False
    names: list[str] | None = None
    """The tools offered to the model; None means every tool of the tools file."""
    choice: ToolChoiceName = "auto"
    """"required" makes the model call a tool in its first round (a grammar forces it)."""


@dataclass(slots=True)
class SavedChat:
    """A chat and everything the app keeps with it."""

    id: str
    chat: Chat = field(default_factory=Chat)
    title: str = NEW_CHAT_TITLE
    named: bool = False
    """The person chose the title; otherwise it follows the first message."""
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    """The chat's own settings, over the config file's."""
    tools: ToolOptions = field(default_factory=ToolOptions)
    stats: dict[int, PredictionStats] = field(default_factory=dict)
    """Stats of each reply, by the index of its message in `chat.messages`."""
    tool_runs: dict[str, ToolRun] = field(default_factory=dict)
    """Outcome of each tool run, by tool call id."""
    unknown_calls: dict[int, list[UnknownCall]] = field(default_factory=dict)
    """Calls to tools the chat did not have, by the index of the reply that made them."""

    @property
    def system_prompt(self) -> str:
        return self.chat.system_prompt or ""

    @system_prompt.setter
    def system_prompt(self, text: str) -> None:
        messages = self.chat.messages
        has_system = bool(messages) and isinstance(messages[0], SystemPrompt)
        if text and has_system:
            messages[0] = SystemPrompt(content=text)
        elif text:
            messages.insert(0, SystemPrompt(content=text))
            # Stats are keyed by message index: everything moved down by one.
            self._move_indices(lambda index: index + 1)
        elif has_system:
            del messages[0]
            self._move_indices(lambda index: index - 1 if index > 0 else None)

    def _move_indices(self, new_index: Callable[[int], int | None]) -> None:
        """Re-key what is kept by message index; None drops the entry."""
        self.stats = {
            moved: stats
            for index, stats in self.stats.items()
            if (moved := new_index(index)) is not None
        }
        self.unknown_calls = {
            moved: calls
            for index, calls in self.unknown_calls.items()
            if (moved := new_index(index)) is not None
        }

    @property
    def is_empty(self) -> bool:
        """No conversation yet (a system prompt alone does not count)."""
        return not any(not isinstance(m, SystemPrompt) for m in self.chat.messages)

    def retitle(self) -> None:
        """Name an unnamed chat after its first user message."""
        if self.named:
            return
        first = next((m for m in self.chat.messages if isinstance(m, UserMessage)), None)
        self.title = title_from(first.content) if first is not None else NEW_CHAT_TITLE

    def truncate(self, length: int) -> None:
        """Keep the first `length` messages, and the stats and tool runs that belong to them."""
        del self.chat.messages[length:]
        self._move_indices(lambda index: index if index < length else None)
        self._keep_runs_of_kept_calls()

    def _keep_runs_of_kept_calls(self) -> None:
        kept_calls = {
            call.id for message in self.chat.messages for call in getattr(message, "tool_calls", ())
        }
        self.tool_runs = {k: v for k, v in self.tool_runs.items() if k in kept_calls}

    def delete_message(self, index: int) -> list[int]:
        """Delete the message at `index` and what would be left invalid without it: the
        results of an assistant message's tool calls go with it (a result whose call is
        gone is one no template can place). Returns the indices deleted, in order.

        The system prompt is deleted like any message (the chat then has none).
        """
        messages = self.chat.messages
        message = messages[index]
        calls = {call.id for call in getattr(message, "tool_calls", ())}
        doomed = {index} | {
            position
            for position, other in enumerate(messages)
            if isinstance(other, ToolResultMessage) and calls and other.tool_call_id in calls
        }
        messages[:] = [other for position, other in enumerate(messages) if position not in doomed]
        ordered = sorted(doomed)

        def new_index(old: int) -> int | None:
            if old in doomed:
                return None
            return old - sum(1 for gone in ordered if gone < old)

        self._move_indices(new_index)
        if isinstance(message, ToolResultMessage):
            self.tool_runs.pop(message.tool_call_id, None)
        self._keep_runs_of_kept_calls()
        return ordered


def title_from(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not line:
        return NEW_CHAT_TITLE
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def matches(chat: SavedChat, query: str) -> bool:
    """Search by title: every word of the query appears in it, in any case."""
    title = chat.title.casefold()
    return all(word in title for word in query.casefold().split())


SNIPPET_BEFORE = 8
"""Characters shown before a match inside a message (the list is narrow)."""


@dataclass(frozen=True, slots=True)
class SearchMatch:
    """Where a chat matched a search: in its title, or inside a message."""

    role: str = ""
    """The role of the message that matched ("" when the title holds every word)."""
    snippet: str = ""
    """The text around the match, on one line, with … where it was cut."""
    start: int = 0
    """Where the matched word starts in `snippet`."""
    length: int = 0


def chat_text(chat: SavedChat) -> list[tuple[str, str]]:
    """What a search looks in besides the title: (role, text) of each message, the
    reasoning and tool results included."""
    parts: list[tuple[str, str]] = []
    for message in chat.chat.messages:
        for text in (getattr(message, "content", ""), getattr(message, "reasoning", "")):
            if text:
                parts.append((message.role, text))
    return parts


def search_chat(title: str, texts: list[tuple[str, str]], query: str) -> SearchMatch | None:
    """Every word of `query`, in any case, in the title or some message; None if not.

    A word the title lacks is looked for in the messages, and the first message holding
    it is where the chat is said to match.
    """
    words = query.casefold().split()
    folded_title = title.casefold()
    missing = [word for word in words if word not in folded_title]
    if not missing:
        return SearchMatch()
    folded = [text.casefold() for _, text in texts]
    if not all(any(word in text for text in folded) for word in missing):
        return None
    word = missing[0]
    role, text = next(texts[i] for i, low in enumerate(folded) if word in low)
    # Offsets from a case-blind search of the text itself (casefold may change lengths).
    found = re.search(re.escape(word), text, re.IGNORECASE)
    at = found.start() if found else 0
    length = len(found.group()) if found else 0
    start = max(0, at - SNIPPET_BEFORE)
    if start and not text[start - 1].isspace():
        # Begin at a word: the rest of a cut one reads as noise.
        space = text.find(" ", start, at)
        start = space + 1 if space != -1 else at
    head = "…" if start else ""
    piece = " ".join(text[start:].split())
    lead = " ".join(text[start:at].split())
    offset = len(head) + len(lead) + (1 if lead and text[at - 1 : at].isspace() else 0)
    return SearchMatch(role, head + piece, offset, length)


# --- the file format ----------------------------------------------------------------


class _ToolsV1(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enabled: bool = False
    names: list[str] | None = None
    choice: ToolChoiceName = "auto"


class _ToolRunV1(BaseModel):
    model_config = ConfigDict(extra="ignore")

    is_error: bool = False
    denied: bool = False
    duration_sec: float = 0.0
    exit_code: int | None = None


class _UnknownCallV1(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    raw_text: str


class _ChatFileV1(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = Field(ge=1, le=1)
    title: str = NEW_CHAT_TITLE
    named: bool = False
    created: str = ""
    updated: str = ""
    prediction: dict[str, Any] = Field(default_factory=dict)
    tools: _ToolsV1 = Field(default_factory=_ToolsV1)
    chat: dict[str, Any]
    stats: dict[int, dict[str, Any]] = Field(default_factory=dict)
    tool_runs: dict[str, _ToolRunV1] = Field(default_factory=dict)
    unknown_calls: dict[int, list[_UnknownCallV1]] = Field(default_factory=dict)
    """Added within version 1: older files have none, older readers ignore it."""


_STATS_FIELDS = {f.name for f in fields(PredictionStats)}


def _stats_from(data: dict[str, Any]) -> PredictionStats | None:
    known = {k: v for k, v in data.items() if k in _STATS_FIELDS}
    try:
        return PredictionStats(**known)
    except TypeError:  # no stop_reason: not worth failing the whole chat over
        return None


def _from_v1(chat_id: str, data: Any) -> SavedChat:
    saved = _ChatFileV1.model_validate(data)
    stats = {i: s for i, raw in saved.stats.items() if (s := _stats_from(raw)) is not None}
    return SavedChat(
        id=chat_id,
        chat=Chat.from_dict(saved.chat),
        title=saved.title,
        named=saved.named,
        created=saved.created or now(),
        updated=saved.updated or saved.created or now(),
        prediction=PredictionConfig.parse(saved.prediction),
        tools=ToolOptions(saved.tools.enabled, saved.tools.names, saved.tools.choice),
        stats=stats,
        tool_runs={k: ToolRun(**v.model_dump()) for k, v in saved.tool_runs.items()},
        unknown_calls={
            i: [UnknownCall(c.name, c.raw_text) for c in calls]
            for i, calls in saved.unknown_calls.items()
        },
    )


_CONVERTERS = {1: _from_v1}


class NewerSchemaError(ValueError):
    """A chat file written by a newer llamaterm: not ours to read, nor to set aside."""


def to_file(saved: SavedChat) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "id": saved.id,
        "title": saved.title,
        "named": saved.named,
        "created": saved.created,
        "updated": saved.updated,
        "prediction": saved.prediction.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "tools": {
            "enabled": saved.tools.enabled,
            "names": saved.tools.names,
            "choice": saved.tools.choice,
        },
        "chat": saved.chat.to_dict(),
        "stats": {str(i): asdict(s) for i, s in sorted(saved.stats.items())},
        "tool_runs": {k: asdict(v) for k, v in saved.tool_runs.items()},
        "unknown_calls": {
            str(i): [asdict(call) for call in calls]
            for i, calls in sorted(saved.unknown_calls.items())
        },
    }


def from_file(chat_id: str, data: Any) -> SavedChat:
    """Raises ValueError (ChatFormatError, PredictionConfigError, ValidationError) when
    `data` is not a chat file this version reads."""
    if not isinstance(data, dict):
        # ValueError, as for every other file that is not a chat (the docstring's promise).
        raise ValueError(f"not a chat file (a JSON {_json_kind(data)}, not an object)")  # noqa: TRY004
    version = data.get("schema_version")
    # type(), not isinstance: True is an int, and equal to 1.
    converter = _CONVERTERS.get(version) if type(version) is int else None
    if converter is None:
        if type(version) is int and version > SCHEMA_VERSION:
            raise NewerSchemaError(f"schema version {version}")
        raise ValueError(f"unknown schema version {version!r}")
    return converter(chat_id, data)


def _json_kind(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, (int, float)):
        return "number"
    return "string" if isinstance(data, str) else "array"


# --- the directory ------------------------------------------------------------------


class ChatStore:
    """The chats directory. Every method is quick enough to call from the event loop
    for the few hundred chats a person has."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = chats_dir(data_dir)

    def path_of(self, chat_id: str) -> Path:
        return self.directory / f"{chat_id}.json"

    def load_all(self) -> tuple[list[SavedChat], list[str]]:
        """Every chat, most recently changed first, and one line per file set aside."""
        chats: list[SavedChat] = []
        errors: list[str] = []
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError as err:
            return [], [f"{self.directory}: cannot list: {err.strerror or err}"]
        for path in paths:
            saved, error = self.load(path)
            if saved is not None:
                chats.append(saved)
            if error is not None:
                errors.append(error)
        chats.sort(key=lambda c: (c.updated, c.id), reverse=True)
        return chats, errors

    def load(self, path: Path) -> tuple[SavedChat | None, str | None]:
        """The chat in `path`, or None and one line on why not (None, None: no such file).

        Any failure to decode or validate sets the file aside; a newer version's file
        stays where it is.
        """
        found = read_json_file(path)
        if found.error is not None or not found.found:
            return None, found.error
        try:
            return from_file(path.stem, found.data), None
        except NewerSchemaError as err:
            return None, f"{path}: written by a newer llamaterm ({err}); left as it is, not loaded"
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "file"
            return None, set_aside(path, f"{where}: {first['msg']}")
        except (ChatFormatError, PredictionConfigError, TypeError, LookupError) as err:
            return None, set_aside(path, str(err))
        except UNREADABLE_ERRORS as err:
            return None, set_aside(path, describe_failure(err))

    def save(self, saved: SavedChat) -> None:
        """Write the chat (atomically), stamped with the time of this change."""
        saved.updated = now()
        atomic_write_json(self.path_of(saved.id), to_file(saved))

    def delete(self, saved: SavedChat) -> Path | None:
        """Move the chat's file to the trash; the path it went to, or None if it had none."""
        path = self.path_of(saved.id)
        if not path.exists():
            return None
        trash = self.directory / TRASH_DIR
        trash.mkdir(parents=True, exist_ok=True)
        target = trash / path.name
        number = 1
        while target.exists():
            number += 1
            target = trash / f"{path.stem}-{number}.json"
        os.replace(path, target)
        return target


def newest_first(chats: Iterable[SavedChat]) -> list[SavedChat]:
    return sorted(chats, key=lambda c: (c.updated, c.id), reverse=True)
