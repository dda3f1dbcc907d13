"""Loading reports progress from llama.cpp and can be cancelled (issue 5)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from engine.errors import ModelLoadError
from engine.llama import LoadedModel

pytestmark = pytest.mark.starter


def test_progress_is_monotone_and_reaches_one(starter_model_path: Path) -> None:
    seen: list[float] = []
    model = LoadedModel.load(starter_model_path, on_progress=seen.append)
    try:
        assert model.is_loaded
    finally:
        model.unload()
    assert len(seen) > 2
    assert seen == sorted(seen)
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen[-1] == 1.0


def test_cancel_mid_load_raises_and_a_later_load_works(starter_model_path: Path) -> None:
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.5:
            cancel.set()

    with pytest.raises(ModelLoadError, match="was cancelled"):
        LoadedModel.load(starter_model_path, on_progress=progress, cancel=cancel)
    assert seen and seen[-1] < 1.0

    model = LoadedModel.load(starter_model_path)
    try:
        assert model.is_loaded
        assert model.tokenize("hello")
    finally:
        model.unload()


def test_cancel_before_start(starter_model_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ModelLoadError, match="was cancelled"):
        LoadedModel.load(starter_model_path, cancel=cancel)


def started_soon(loop: asyncio.AbstractEventLoop, started: asyncio.Event) -> None:
    loop.call_soon_threadsafe(started.set)


def test_cancelling_the_async_load_aborts_it(starter_model_path: Path) -> None:
    async def main() -> None:
        started = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(
            LoadedModel.load_async(
                starter_model_path, on_progress=lambda _f: started_soon(loop, started)
            )
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        model = await LoadedModel.load_async(starter_model_path)
        assert model.is_loaded
        await asyncio.to_thread(model.unload)

    asyncio.run(main())
