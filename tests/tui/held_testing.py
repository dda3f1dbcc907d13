"""Hold a prediction at a chosen event: the screen can be read (or snapshot) while the
prediction waits there, the same on every run (see `HeldEvents`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from engine.prediction import PromptProgress
from tui.screens.chat.chat_screen import ChatScreen
from tui.screens.chat.reply_stream import Run


class HeldEvents:
    """Passes a run's events on, and holds at the first event `hold_at` accepts until
    `release()`: the line can be read while the prediction waits there."""

    def __init__(self, run: Any, hold_at: Callable[[object], bool]) -> None:
        self.run = run
        self.hold_at = hold_at
        self.held = asyncio.Event()
        self.released = asyncio.Event()
        self.seen: list[object] = []

    def cancel(self) -> None:
        self.released.set()
        self.run.cancel()

    def release(self) -> None:
        self.released.set()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        async for event in self.run:
            self.seen.append(event)
            yield event
            if not self.held.is_set() and self.hold_at(event):
                self.held.set()
                await self.released.wait()


def second_batch(event: object) -> bool:
    return isinstance(event, PromptProgress) and event.processed_tokens == 8


def hold_chat(monkeypatch: pytest.MonkeyPatch, hold_at: Callable[[object], bool]) -> list[HeldEvents]:
    runs: list[HeldEvents] = []
    original = ChatScreen.open_run

    def open_run(self: ChatScreen, *args: Any, **kwargs: Any) -> Run:
        held = HeldEvents(original(self, *args, **kwargs), hold_at)
        runs.append(held)
        return held

    monkeypatch.setattr(ChatScreen, "open_run", open_run)
    return runs
