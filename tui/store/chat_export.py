"""A chat written out for people or programs: Markdown or JSON, under `<data>/exports/`
unless the person names another path.

Markdown reads as the chat did: a heading per message, the reasoning as a quote, each
tool call with its arguments and result in code fences (fenced longer than any run of
backticks inside, so a reply's own code blocks cannot end them), and each reply's
stats. JSON holds the title, times, the chat as `engine.Chat.from_dict` reads it back
(its `messages` in OpenAI's roles), and the stats of the replies by message index.

Written atomically (engine.store): a full disk or an unwritable path raises
`ExportError` with one line naming the file, and leaves no partial file behind.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from engine.chat import AssistantResponse, SystemPrompt, ToolResultMessage, UserMessage
from engine.paths import checked_path
from engine.store import atomic_write_text
from tui.store.saved_chats import SavedChat

ExportFormat = Literal["markdown", "json"]

EXPORTS_DIR = "exports"
SUFFIXES: dict[ExportFormat, str] = {"markdown": ".md", "json": ".json"}


class ExportError(Exception):
    """The chat could not be written; the message says where and why, in one line."""


def exports_dir(data_dir: Path) -> Path:
    return data_dir / EXPORTS_DIR


def format_of(path: Path) -> ExportFormat:
    """JSON for a name ending in .json, else Markdown."""
    return "json" if path.suffix.lower() == ".json" else "markdown"


def file_stem(saved: SavedChat) -> str:
    """A file name from the title, safe on every file system, and the chat's id."""
    slug = re.sub(r"[^\w-]+", "-", saved.title.casefold(), flags=re.UNICODE).strip("-_")
    return f"{slug[:40].rstrip('-_') or 'chat'}-{saved.id}"


def default_path(data_dir: Path, saved: SavedChat, format: ExportFormat = "markdown") -> Path:
    return exports_dir(data_dir) / f"{file_stem(saved)}{SUFFIXES[format]}"


def with_format(path: Path, format: ExportFormat) -> Path:
    """`path` with the suffix of `format` in place of the other format's."""
    if path.suffix.lower() in SUFFIXES.values():
        return path.with_suffix(SUFFIXES[format])
    return path.with_name(path.name + SUFFIXES[format])


def fence(text: str, info: str = "") -> str:
    """`text` in a code fence longer than any run of backticks in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{info}\n{text.rstrip()}\n{marks}"


def _stats_line(saved: SavedChat, index: int) -> str | None:
    stats = saved.stats.get(index)
    if stats is None:
        return None
    parts = [f"{stats.predicted_tokens_count} tokens"]
    if stats.tokens_per_second is not None:
        parts.append(f"{stats.tokens_per_second:.1f} tok/s")
    parts.append(f"stop: {stats.stop_reason}")
    return "*" + " · ".join(parts) + "*"


def to_markdown(saved: SavedChat, exported: datetime | None = None) -> str:
    when = (exported or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    blocks = [f"# {saved.title}", f"*Exported from llamaterm, {when}.*"]
    for index, message in enumerate(saved.chat.messages):
        match message:
            case SystemPrompt(content=text):
                blocks += ["## System prompt", text]
            case UserMessage(content=text):
                blocks += ["## You", text]
            case AssistantResponse():
                blocks.append("## Assistant")
                if message.reasoning:
                    quoted = "\n".join(
                        f"> {line}" if line else ">" for line in message.reasoning.splitlines()
                    )
                    blocks.append(f"> **Reasoning**\n>\n{quoted}")
                if message.content:
                    blocks.append(message.content)
                for call in message.tool_calls:
                    arguments = json.dumps(call.arguments, ensure_ascii=False, indent=2)
                    blocks += [f"**Tool call** `{call.name}`", fence(arguments, "json")]
                line = _stats_line(saved, index)
                if line is not None:
                    blocks.append(line)
            case ToolResultMessage():
                run = saved.tool_runs.get(message.tool_call_id)
                label = "error" if run is not None and (run.is_error or run.denied) else "result"
                name = f" `{message.name}`" if message.name else ""
                blocks += [f"**Tool {label}**{name}", fence(message.content)]
    return "\n\n".join(block.strip("\n") for block in blocks) + "\n"


def to_json(saved: SavedChat, exported: datetime | None = None) -> dict[str, Any]:
    return {
        "title": saved.title,
        "id": saved.id,
        "created": saved.created,
        "updated": saved.updated,
        "exported": (exported or datetime.now(UTC)).isoformat(timespec="seconds"),
        "exported_by": "llamaterm",
        "chat": saved.chat.to_dict(),
        "stats": {str(i): asdict(s) for i, s in sorted(saved.stats.items())},
    }


def export_chat(saved: SavedChat, path: Path, format: ExportFormat | None = None) -> Path:
    """Write `saved` to `path` (a directory: a file named after the chat in it); the
    file written. Raises ExportError, one line naming the file, when it cannot be."""
    try:
        target = checked_path(Path(path).expanduser())
    except ValueError as err:
        raise ExportError(f"cannot export to {path!r}: the path {err}") from None
    chosen = format or format_of(target)
    if target.is_dir():
        target = target / f"{file_stem(saved)}{SUFFIXES[chosen]}"
    if chosen == "json":
        text = json.dumps(to_json(saved), ensure_ascii=False, indent=2) + "\n"
    else:
        text = to_markdown(saved)
    try:
        atomic_write_text(target, text)
    except OSError as err:
        # SaveError (the usual case) already names the file; a bare OSError may not.
        message = str(err) if str(target) in str(err) else f"could not write {target}: {err}"
        raise ExportError(message.replace("could not save", "could not export to")) from None
    return target
