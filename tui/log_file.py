"""The log file: every log-bus record, as it happens, in `<data>/logs/llamaterm.log`.

One line per record (time, level, source, kind, message, then its data as JSON), so
that a crash still leaves what led to it. The file rotates at `MAX_BYTES`, keeping
`BACKUPS` older ones. The bus calls subscribers from any thread; `logging`'s file
handler takes its own lock, so records from the model thread and the event loop
never interleave inside a line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

from engine.logbus import LogBus
from engine.paths import logs_dir
from engine.prediction import LogRecord

LOG_FILE_NAME = "llamaterm.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 3


def log_file_path(data_dir: Path) -> Path:
    return logs_dir(data_dir) / LOG_FILE_NAME


def record_line(record: LogRecord) -> str:
    """One record as one line of the file (newlines in the data are escaped by JSON)."""
    when = datetime.fromtimestamp(record.time).isoformat(timespec="milliseconds")
    message = record.message.replace("\n", "⏎")
    line = f"{when} {record.level.upper():7} {record.source} {record.kind}: {message}"
    if record.data:
        line += " " + json.dumps(record.data, ensure_ascii=False, default=str)
    return line


class LogFile:
    """Writes the bus's records to the rotating file until `close()`."""

    def __init__(self, bus: LogBus, data_dir: Path) -> None:
        self.path = log_file_path(data_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = RotatingFileHandler(
            self.path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
        self._unsubscribe: Callable[[], None] | None = bus.subscribe(self.write)

    def write(self, record: LogRecord) -> None:
        # Through the handler (not a logger): its lock, its rotation, nothing else.
        self._handler.emit(logging.makeLogRecord({"msg": record_line(record), "args": None}))

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._handler.close()


def open_log_file(bus: LogBus, data_dir: Path) -> LogFile | None:
    """Start writing the log file; None when the data directory refuses (no crash)."""
    try:
        return LogFile(bus, data_dir)
    except OSError:
        return None
