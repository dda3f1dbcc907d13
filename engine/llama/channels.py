"""How a prediction's events reach their consumer: the async and the blocking stream.

The model thread (or, for a remote model, an HTTP task) writes events into a sink;
`EventStream` hands them to an event loop, `SyncEventStream` to a blocking reader.
`PredictionControl` is the handle a consumer cancels through.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from ..prediction import Event, Failed, Finished, PredictionResult

Sink = Callable[[Event], None]


@dataclass
class PredictionControl:
    """A handle on a queued or running prediction."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


class _StreamOutcome:
    """What both faces of a prediction keep: the control to cancel through, and how the
    stream ended (`result` after `Finished`, `error` after `Failed`)."""

    def __init__(self) -> None:
        self.control = PredictionControl()
        self.result: PredictionResult | None = None
        self.error: BaseException | None = None
        self._finished = False

    def cancel(self) -> None:
        self.control.cancel()

    def _record(self, event: Event) -> None:
        """Note `event` if it ends the stream; the reader calls this on every event."""
        if isinstance(event, Finished):
            self._finished = True
            self.result = event.result
        elif isinstance(event, Failed):
            self._finished = True
            self.error = event.error


class EventStream(_StreamOutcome):
    """The async face of a prediction: `async for event in stream`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        # Events from the model thread wait here until the loop takes them. One wake-up
        # of the loop is in flight at a time: while the loop is busy (a UI drawing),
        # the tokens that arrive meanwhile ride on it, instead of each paying for a
        # write to the loop's self-pipe, a syscall that hands the GIL away.
        self._pending: list[Event] = []
        self._pending_lock = threading.Lock()
        self._wake_scheduled = False

    def sink(self, event: Event) -> None:
        with self._pending_lock:
            self._pending.append(event)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.control.cancel()

    def _deliver(self) -> None:
        with self._pending_lock:
            events, self._pending = self._pending, []
            self._wake_scheduled = False
        for event in events:
            self._queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        event = await self._queue.get()
        self._record(event)
        return event

    def take_ready(self) -> list[Event]:
        """The events that have already arrived, without waiting (up to the one that
        ends the stream): what a writer can send at once, in one write."""
        ready: list[Event] = []
        while not self._finished:
            try:
                event = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self._record(event)
            ready.append(event)
        return ready

    async def aclose(self) -> None:
        """Stop listening: cancels the prediction and drains it to the end."""
        if not self._finished:
            self.cancel()
            async for _ in self:
                pass

    async def wait_for_result(self) -> PredictionResult:
        async for _ in self:
            pass
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class SyncEventStream(_StreamOutcome):
    """The blocking face of a prediction, for the sync API and the CLI."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def sink(self, event: Event) -> None:
        self._queue.put(event)

    @property
    def finished(self) -> bool:
        return self._finished

    def __iter__(self) -> Iterator[Event]:
        while not self._finished:
            event = self._queue.get()
            self._record(event)
            yield event
