"""`ModelThread`: the one thread a model's llama.cpp calls run on, in order.

llama.cpp calls block and a `Llama` is not thread-safe, so every call on a model
goes through its thread; the event loop never waits on llama.cpp.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any


class ModelThread:
    """A single worker thread that runs a model's jobs in order."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None]
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((job, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as err:  # delivered to whoever waits on the future
                future.set_exception(err)

    def stop(self) -> None:
        self._jobs.put(None)

    @property
    def is_current(self) -> bool:
        return threading.current_thread() is self._thread
