"""Ctrl+C in the headless commands: a request answered at a safe point, never mid-model.

Python raises KeyboardInterrupt wherever the main thread happens to be. Raised inside
the engine's stream iterator, it ended the stream half-way (the text was there, the
result never came: `PredictionNotFinished`), and the process then exited while the
model's thread still ran llama.cpp, which could crash at exit (rc 139).

So the commands install `Interrupts`: while a prediction runs, Ctrl+C cancels it
(the command drains the stream to its end, prints what was generated and the
stats, and exits 130); while the model loads or unloads, Ctrl+C is noted and the
command stops once that is over; anywhere else (reading stdin, the chat prompt),
no model thread is busy and Ctrl+C raises KeyboardInterrupt as usual, which
`tui.cli.main` turns into exit status 130 after the model is unloaded.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED = 130
"""The exit status after Ctrl+C (128 + SIGINT), as shells report it."""


class Interrupts:
    """The process's SIGINT handler while a headless command runs (see the module)."""

    def __init__(self) -> None:
        self.count = 0
        """Ctrl+C presses so far."""
        self._cancel: Callable[[], None] | None = None
        self._shield_note: str | None = None
        self._noted = False

    @property
    def requested(self) -> bool:
        return self.count > 0

    @classmethod
    def install(cls) -> Interrupts:
        interrupts = cls()
        signal.signal(signal.SIGINT, interrupts._handle)
        return interrupts

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self._cancel is not None:
            # Thread-safe: it only sets the prediction's cancel flag.
            self._cancel()
            return
        if self._shield_note is not None:
            if not self._noted:
                self._noted = True
                print(f"\nllamaterm: {self._shield_note}", file=sys.stderr, flush=True)
            return
        raise KeyboardInterrupt

    @contextmanager
    def cancelling(self, cancel: Callable[[], None]) -> Iterator[None]:
        """Within: Ctrl+C calls `cancel` (a prediction's) instead of raising. One pressed
        before the block cancels at once."""
        previous = self._cancel
        self._cancel = cancel
        try:
            if self.requested:
                cancel()
            yield
        finally:
            self._cancel = previous

    @contextmanager
    def shielded(self, note: str) -> Iterator[None]:
        """Within: Ctrl+C is only noted (`note` says so once); see `requested` after."""
        previous = self._shield_note
        self._shield_note = note
        try:
            yield
        finally:
            self._shield_note = previous
