"""Running the server in tests: a `ServerHandle` on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import threading

from engine.serve.run import ServerHandle


class ServerThread:
    """A ServerHandle on its own event loop in a thread, as the CLI runs it."""

    def __init__(self, handle: ServerHandle) -> None:
        self.handle = handle
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            await self.handle.start()
        except BaseException as err:  # noqa: BLE001 - reported to the test thread
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.handle.stop()

    def __enter__(self) -> ServerHandle:
        self._thread.start()
        assert self._ready.wait(30), "the server did not start"
        if self._error is not None:
            raise self._error
        return self.handle

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
