"""Ctrl+Q while a prediction streams: what was generated is saved, marked as stopped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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
        await wait_until(pilot, lambda: bool(replies(screen)) and len(replies(screen)[-1].content) > 20)
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
