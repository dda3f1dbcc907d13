"""Ctrl+Q while a prediction streams: what was generated is saved, marked as stopped."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from chat_testing import open_chat, replies, send
from key_testing import burst
from tui_testing import TERMINAL_SIZE, wait_until

from engine.load_config import LoadConfig
from engine.prediction import PredictionConfig
from tui.app import LlamatermApp
from tui.store.saved_chats import ChatStore
from tui.store.text_sessions import COMPLETE_FILE, sessions_dir

MakeApp = Callable[..., LlamatermApp]

LONG = PredictionConfig(temperature=0.0, seed=1, max_tokens=-1)
BIG_CONTEXT = LoadConfig(context_length=16384, threads=1)


async def test_quitting_while_a_reply_streams_saves_it_as_stopped(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app(mode="chat", prediction=LONG, load=BIG_CONTEXT)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Go on forever", wait=False)
        await wait_until(
            pilot, lambda: bool(replies(screen)) and len(replies(screen)[-1].content) > 20
        )
        await burst(pilot, "ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, timeout=20)
    chats, errors = ChatStore(isolated).load_all()
    assert errors == []
    [saved] = chats
    assert [m.role for m in saved.chat.messages] == ["user", "assistant"]
    assert len(saved.chat.messages[1].content) > 20  # type: ignore[union-attr]
    assert saved.stats[1].stop_reason == "userStopped"


async def test_quitting_while_a_completion_streams_saves_it(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app(mode="complete", prediction=LONG, load=BIG_CONTEXT)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_until(pilot, lambda: app.model_state.status == "loaded")
        screen = app.screen
        area = screen.complete_area  # type: ignore[attr-defined]
        area.load_text("Once upon a time")
        await burst(pilot, "ctrl+g")
        await wait_until(pilot, lambda: len(area.generated_text) > 20)
        await burst(pilot, "ctrl+q")
        await wait_until(pilot, lambda: not app.is_running, timeout=20)
    session = json.loads((sessions_dir(isolated) / COMPLETE_FILE).read_text())
    assert session["text"].startswith("Once upon a time")
    assert len(session["text"]) > len("Once upon a time") + 20
    assert session["generated"]


async def test_quitting_while_a_model_loads_waits_for_llama_to_let_go(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model's thread is held inside llama.cpp's load (in its progress callback)
    # until a second after Ctrl+Q: the app must not have exited before then.
    inside_llama = threading.Event()
    let_go = threading.Event()
    reporter = LlamatermApp._load_progress_reporter

    def held_reporter(self: LlamatermApp) -> Callable[[float], None]:
        report = reporter(self)

        def held(fraction: float) -> None:
            inside_llama.set()
            let_go.wait(30)
            report(fraction)

        return held

    monkeypatch.setattr(LlamatermApp, "_load_progress_reporter", held_reporter)
    app = make_app(mode="chat")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_until(pilot, inside_llama.is_set)
        await burst(pilot, "ctrl+q")
        threading.Timer(1.0, let_go.set).start()
        await wait_until(pilot, lambda: not app.is_running, timeout=20)
    assert let_go.is_set(), "the app exited while the model's thread was inside llama.cpp"
