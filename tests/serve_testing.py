"""Running the server in tests: a `ServerHandle` on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from gguf_factory import write_tiny_gguf

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.serve.run import ServerHandle

TEMPLATES = Path(__file__).resolve().parent / "data" / "chat-templates"


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


@contextlib.contextmanager
def tiny_models(tiny_model_path: Path, folder: Path) -> Iterator[dict[str, LoadedModel]]:
    """The two tiny models the server tests serve: the plain one (its own template) and one
    with Qwen3's real template (Hermes tool calls, <think> reasoning); unloaded after."""
    qwen3_path = write_tiny_gguf(
        folder / "tiny-qwen3.gguf",
        chat_template=(TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text(),
    )
    # One thread: the tiny model gains nothing from more, and busy shared CI cores punish them.
    config = LoadConfig.model_validate({"context_length": 2048, "threads": 1})
    loaded = {"tiny": LoadedModel.load(tiny_model_path, config),
              "tiny-qwen3": LoadedModel.load(qwen3_path, config)}
    try:
        yield loaded
    finally:
        for model in loaded.values():
            model.unload()
