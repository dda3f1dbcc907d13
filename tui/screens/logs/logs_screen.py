"""The Logs screen: engine and llama.cpp records, live, filterable, savable.

Each row says when, how bad, what kind, which prediction (the same id on its prompt,
raw output and what followed) and which model, then the start of its text.

Records come from the log bus: those it kept from before the screen opened, then
new ones as they are published. The bus calls its subscribers from any thread
(often the model's), so the subscriber only appends to a deque and a timer on
the event loop moves what arrived into the table, a few times a second.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static, TextArea

from engine.paths import logs_dir
from engine.prediction import LogRecord
from engine.store import atomic_write_text
from tui.context import AppContext
from tui.screens.base import LlamatermScreen
from tui.wording import plural

LEVELS = ("debug", "info", "warning", "error")
"""Levels from least to most severe; the filter shows a level and those after it."""

POLL_INTERVAL = 0.1
"""Seconds between moves of newly arrived records into the table."""

MESSAGE_WIDTH = 160
"""Characters of a message shown in the table; the whole record opens with Enter."""


def level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 1


def clock(record: LogRecord) -> str:
    """When the record was made, as `HH:MM:SS` local time."""
    return datetime.fromtimestamp(record.time).strftime("%H:%M:%S")


def preview(record: LogRecord, width: int = MESSAGE_WIDTH) -> str:
    """The message on one line, with the start of the text it carries (a prompt, raw
    output), so that rows of the same kind can be told apart."""
    text = record.data.get("text")
    if isinstance(text, str) and text:
        return one_line(f"{record.message}: {text}", width)
    return one_line(record.message, width)


def format_record(record: LogRecord) -> str:
    """A record in full, as the detail view and saved files show it."""
    when = datetime.fromtimestamp(record.time).isoformat(timespec="seconds")
    lines = [f"{when} [{record.level}] {record.source} · {record.kind}: {record.message}"]
    for key, value in record.data.items():
        # Prompts and raw output are shown as they are, whatever their length.
        if isinstance(value, str) and (key == "text" or "\n" in value or len(value) > 60):
            lines.append(f"--- {key} ---")
            lines.append(value)
            lines.append(f"--- end of {key} ---")
        else:
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False, default=str)}")
    return "\n".join(lines)


def one_line(text: str, width: int) -> str:
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class LogRecordScreen(ModalScreen[None]):
    """One record in full: the exact prompt or raw output, every data field."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="logs.close_record", tooltip="Back to the list"),
    ]

    DEFAULT_CSS = """
    LogRecordScreen {
        align: center middle;
        & > TextArea {
            width: 90%;
            height: 90%;
            border: round $primary;
        }
    }
    """

    def __init__(self, record: LogRecord) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        area = TextArea(format_record(self.record), read_only=True, soft_wrap=True)
        area.border_title = Content(f"{self.record.kind} · {self.record.source}")
        area.border_subtitle = "Escape closes"
        yield area

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.cursor_blink = getattr(self.app, "cursor_blink", True)
        area.focus()

    def action_close(self) -> None:
        self.dismiss(None)


class LogTable(DataTable[Any]):
    """The records' table: Home and End go to the first and last record (a DataTable's
    own Home and End scroll sideways), and its header stays put."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "home",
            "scroll_top",
            "First",
            id="logs.first",
            tooltip="Go to the first record (follow pauses)",
            show=False,
        ),
        Binding(
            "end",
            "scroll_bottom",
            "Last",
            id="logs.last",
            tooltip="Go to the last record (follow goes on from there)",
            show=False,
        ),
    ]


class LogsScreen(LlamatermScreen):
    MODE = "logs"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f",
            "toggle_follow",
            "Follow",
            id="logs.follow",
            tooltip="Keep the newest record in view",
        ),
        Binding(
            "v", "cycle_level", "Level", id="logs.level", tooltip="Show only this level and worse"
        ),
        Binding("k", "cycle_kind", "Kind", id="logs.kind", tooltip="Show only one kind of record"),
        Binding(
            "s", "save", "Save", id="logs.save", tooltip="Save the records shown to the logs folder"
        ),
        Binding("c", "clear", "Clear", id="logs.clear", tooltip="Forget the records shown so far"),
    ]

    DEFAULT_CSS = """
    LogsScreen {
        #logs-filters { height: 1; padding: 0 1; background: $surface; color: $text-muted; }
        #logs-table { height: 1fr; }
    }
    """

    follow: reactive[bool] = reactive(True)
    level: reactive[str] = reactive("info")
    kind: reactive[str] = reactive("all")

    def __init__(self, context: AppContext) -> None:
        super().__init__(context)
        self.records: list[LogRecord] = []
        self._incoming: deque[LogRecord] = deque()
        self._unsubscribe: Callable[[], None] | None = None
        self._kept_ids: set[int] = set()

    def compose_body(self) -> ComposeResult:
        yield Static("", id="logs-filters")
        yield LogTable(id="logs-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        # LlamatermScreen.on_mount runs too: Textual calls each class's handler.
        table = self.query_one(DataTable)
        table.add_column("time", key="time", width=8)
        table.add_column("level", key="level", width=7)
        table.add_column("kind", key="kind", width=10)
        # The prediction a record belongs to (its prompt, raw output...) and its model.
        table.add_column("pred", key="prediction", width=4)
        table.add_column("model", key="model", width=16)
        table.add_column("message", key="message")
        bus = self.context.log_bus
        # Subscribe before copying what the bus kept, so nothing falls in between;
        # a record that arrives both ways is shown once.
        self._unsubscribe = bus.subscribe(self._incoming.append)
        kept = bus.recent  # a copy taken under the bus's lock
        self._kept_ids = {id(record) for record in kept}
        self._add(kept)
        self.set_interval(POLL_INTERVAL, self._poll)
        table.focus()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    # --- records ------------------------------------------------------------

    def shows(self, record: LogRecord) -> bool:
        return level_rank(record.level) >= level_rank(self.level) and (
            self.kind == "all" or record.kind == self.kind
        )

    def _poll(self) -> None:
        if not self._incoming:
            return
        arrived = []
        while self._incoming:
            record = self._incoming.popleft()
            if id(record) not in self._kept_ids:
                arrived.append(record)
        self._kept_ids.clear()
        self._add(arrived)

    def _add(self, records: Iterable[LogRecord]) -> None:
        table = self.query_one(DataTable)
        # Follow only from the last row: a person who moved up to read keeps their row.
        at_end = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        start = len(self.records)
        new = list(records)
        self.records.extend(new)
        for index, record in enumerate(new, start):
            if self.shows(record):
                table.add_row(*self._cells(record), key=str(index))
        self._show_filters()
        if self.follow and at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def _cells(self, record: LogRecord) -> tuple[Any, ...]:
        model = record.data.get("model")
        return (
            clock(record),
            record.level,
            record.kind,
            str(record.data.get("prediction", "")),
            Text(one_line(model, 16)) if isinstance(model, str) else "",
            Text(preview(record)),  # plain: a message may hold brackets
        )

    def _rebuild(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for index, record in enumerate(self.records):
            if self.shows(record):
                table.add_row(*self._cells(record), key=str(index))
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._show_filters()

    def _show_filters(self) -> None:
        shown = self.query_one(DataTable).row_count
        follow = "on" if self.follow else "off"
        self.query_one("#logs-filters", Static).update(
            Content(
                f"level ≥ {self.level} · kind: {self.kind} · follow {follow} · "
                f"{shown} of {plural(len(self.records), 'record')} · Enter shows one in full"
            )
        )

    def shown_records(self) -> list[LogRecord]:
        return [record for record in self.records if self.shows(record)]

    # --- actions ------------------------------------------------------------

    def watch_follow(self, follow: bool) -> None:
        if not self.is_mounted:
            return
        table = self.query_one(DataTable)
        if follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._show_filters()

    def watch_level(self) -> None:
        if self.is_mounted:
            self._rebuild()

    def watch_kind(self) -> None:
        if self.is_mounted:
            self._rebuild()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def action_cycle_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]

    def action_cycle_kind(self) -> None:
        kinds = ["all", *sorted({record.kind for record in self.records})]
        position = kinds.index(self.kind) if self.kind in kinds else 0
        self.kind = kinds[(position + 1) % len(kinds)]

    def action_clear(self) -> None:
        self.records = []
        self._rebuild()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        if key is not None:
            self.app.push_screen(LogRecordScreen(self.records[int(key)]))

    def action_save(self) -> None:
        records = self.shown_records()
        path = logs_dir(self.context.data_dir) / datetime.now().strftime(
            "llamaterm-%Y%m%d-%H%M%S.log"
        )
        try:
            save_records(path, records)
        except OSError as err:
            self.notify(f"could not save the log: {err}", severity="error")
            return
        self.notify(f"{plural(len(records), 'record')} saved to {path}", title="Log saved")


def save_records(path: Path, records: Iterable[LogRecord]) -> None:
    atomic_write_text(path, "\n\n".join(format_record(record) for record in records) + "\n")
