"""One process-wide bus for engine and llama.cpp log records.

llama.cpp's log callback is global to the process, so the bus is too. Records are
published from whichever thread produced them; subscribers must be thread-safe
(the TUI hands them to its event loop with `call_soon_threadsafe`).
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .prediction import LogRecord

Subscriber = Callable[[LogRecord], None]

# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the last line).
_LLAMA_LEVELS = {0: "info", 1: "debug", 2: "info", 3: "warning", 4: "error"}
_CONTINUE = 5


class LogBus:
    def __init__(self, keep: int = 5000) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._recent: deque[LogRecord] = deque(maxlen=keep)
        self._captures = threading.local()

    @property
    def recent(self) -> list[LogRecord]:
        """A snapshot of the latest records, oldest first.

        A copy taken under the lock: records arrive from llama.cpp's and the model's
        threads, and iterating the live deque while one is appended raises.
        """
        with self._lock:
            return list(self._recent)

    def publish(self, record: LogRecord) -> None:
        with self._lock:
            self._recent.append(record)
            subscribers = list(self._subscribers)
        for capture in getattr(self._captures, "stack", ()):
            capture.append(record)
        for subscriber in subscribers:
            try:
                subscriber(record)
            except Exception:  # a broken subscriber must not break generation
                pass

    def emit(
        self, level: str, kind: str, message: str, source: str = "engine", **data: Any
    ) -> LogRecord:
        record = LogRecord(level=level, source=source, kind=kind, message=message, data=data)
        self.publish(record)
        return record

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    @contextmanager
    def capture(self) -> Iterator[list[LogRecord]]:
        """Collect the records published on this thread while the block runs."""
        records: list[LogRecord] = []
        stack = getattr(self._captures, "stack", None)
        if stack is None:
            stack = self._captures.stack = []
        stack.append(records)
        try:
            yield records
        finally:
            stack.remove(records)


LOG_BUS = LogBus()


class _LlamaLogHook:
    """Turns llama.cpp's fragmentary log callback into one record per line."""

    def __init__(self, bus: LogBus) -> None:
        self._bus = bus
        self._pending = ""
        self._level = "info"
        self._callback: Any = None

    def install(self) -> None:
        import llama_cpp

        @llama_cpp.llama_log_callback  # type: ignore[misc]
        def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            self._on_text(level, text)

        # Keep a reference: ctypes callbacks are freed with their Python object.
        self._callback = callback
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    def _on_text(self, level: int, text: bytes) -> None:
        if level != _CONTINUE:
            self._level = _LLAMA_LEVELS.get(level, "info")
        self._pending += text.decode("utf-8", errors="replace")
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            if line.strip():
                self._bus.emit(self._level, "llama", line, source="llama.cpp")


_hook: _LlamaLogHook | None = None
_hook_lock = threading.Lock()


def install_llama_log_hook() -> None:
    """Route llama.cpp's own log lines to the bus (idempotent)."""
    global _hook
    with _hook_lock:
        if _hook is None:
            _hook = _LlamaLogHook(LOG_BUS)
            _hook.install()
