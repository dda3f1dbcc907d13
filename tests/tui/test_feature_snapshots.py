"""Snapshots of the states issue 12's last items added, at 80×24 where a person over SSH
sees them: prompt progress in tokens, the live speed, the keys modal, the export
dialog, deleting a message, a search that matched inside a chat, a reopened call to an
unknown tool.

As in the other snapshot tests, the tiny model runs at temperature 0 with a fixed seed;
a prediction is held at a fixed event (held_testing), the live speed is measured on a
steady clock, and paths that hold the test's temporary directory are fixed ones. Update
with `pytest tests/tui/test_feature_snapshots.py --snapshot-update`, then look at the
SVGs in __snapshots__/ before committing them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from chat_testing import (
    TOOL_LOAD,
    freeze_chat_timings,
    open_chat,
    send,
    write_tools_file,
)
from held_testing import HeldEvents, hold_chat, second_batch
from key_testing import burst
from textual.pilot import Pilot
from tui_testing import NARROW_SIZE, TERMINAL_SIZE, wait_for_model, wait_until

from engine.chat import AssistantResponse, Chat
from engine.load_config import LoadConfig
from engine.prediction import ContentDelta, PredictionConfig
from tui import token_rate
from tui.app import LlamatermApp
from tui.screens.chat import chat_keeping
from tui.screens.complete import complete_screen as complete_module
from tui.store.saved_chats import ChatStore, SavedChat, ToolOptions, UnknownCall

MakeApp = Callable[..., LlamatermApp]
SnapCompare = Callable[..., bool]

SMALL_BATCH = LoadConfig(context_length=512, threads=1, batch_size=8)
PREDICTION = PredictionConfig(temperature=0.0, seed=42, max_tokens=40)
SHOWN_EXPORT = Path("/home/me/.local/share/llamaterm/exports/hello-there-20260101.md")


def steady_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live speed measured on a clock that ticks 10 ms a token: 100.0 tok/s."""
    ticks = count()
    monkeypatch.setattr(token_rate, "monotonic", lambda: next(ticks) / 100)
    # The engine's measured time to first token would move the figure: from the first
    # token's arrival instead, on the steady clock.
    monkeypatch.setattr(token_rate.TokenRate, "first_token", lambda self, seconds: None)


def test_chat_prompt_progress_in_tokens(
    snap_compare: SnapCompare, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = hold_chat(monkeypatch, second_batch)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        await burst(pilot, "What do llamas dream of, in a long story?", "enter")
        await wait_until(pilot, lambda: bool(runs) and runs[0].held.is_set())
        await pilot.pause(0.1)

    app = make_app(load=SMALL_BATCH, prediction=PREDICTION)
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)


def test_complete_live_speed(
    snap_compare: SnapCompare, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    steady_clock(monkeypatch)
    held: list[HeldEvents] = []
    original = complete_module.pump_prediction
    deltas = 0

    def tenth_delta(event: object) -> bool:
        nonlocal deltas
        deltas += isinstance(event, ContentDelta)
        return deltas == 10

    async def pump(stream: Any, *args: Any, **kwargs: Any) -> None:
        run = HeldEvents(stream, tenth_delta)
        held.append(run)
        await original(run, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(complete_module, "pump_prediction", pump)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_for_model(pilot)
        await burst(pilot, "Once upon a time", "ctrl+g")
        await wait_until(pilot, lambda: bool(held) and held[0].held.is_set())
        await pilot.pause(0.2)

    app = make_app(prediction=PREDICTION)
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)


def test_chat_keys_modal(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        await send(pilot, "Hello there")
        await burst(pilot, "shift+tab", "up", "question_mark")

    assert snap_compare(make_app(), terminal_size=NARROW_SIZE, run_before=run_before)


def test_chat_export_dialog(
    snap_compare: SnapCompare, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_keeping, "default_path", lambda *args: SHOWN_EXPORT)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        await send(pilot, "Hello there")
        freeze_chat_timings(pilot)
        await burst(pilot, "ctrl+s")

    assert snap_compare(make_app(), terminal_size=NARROW_SIZE, run_before=run_before)


def test_chat_delete_message_confirm(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        await send(pilot, "Hello there")
        freeze_chat_timings(pilot)
        await burst(pilot, "shift+tab", "up", "up", "d")

    assert snap_compare(make_app(), terminal_size=NARROW_SIZE, run_before=run_before)


def test_chat_search_inside_messages(
    snap_compare: SnapCompare, make_app: MakeApp, isolated: Path
) -> None:
    store = ChatStore(isolated)
    for chat_id, title, answer in (
        ("20260101-000000-aaaaaa", "About llamas", "They dream of green grass on the hills."),
        ("20260101-000001-bbbbbb", "Alpacas", "Alpacas hum when calm."),
    ):
        chat = Chat()
        chat.add_user_message(f"Tell me {title.lower()}")
        chat.messages.append(AssistantResponse(content=answer))
        store.save(SavedChat(chat_id, chat=chat, title=title, named=True))

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        await burst(pilot, "ctrl+f", "grass")

    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_chat_reopened_unknown_tool(
    snap_compare: SnapCompare, make_app: MakeApp, isolated: Path
) -> None:
    write_tools_file(isolated)
    call = '[TOOL_REQUEST]{"name": "launch_rocket", "arguments": {}}[END_TOOL_REQUEST]'
    chat = Chat()
    chat.add_user_message("Launch it.")
    chat.messages.append(AssistantResponse(content=f"Let me try. {call}"))
    saved = SavedChat("20260101-000000-cccccc", chat=chat, title="Launch it.")
    saved.tools = ToolOptions(enabled=True)
    saved.unknown_calls = {1: [UnknownCall("launch_rocket", f" {call}")]}
    ChatStore(isolated).save(saved)
    assert json.loads(ChatStore(isolated).path_of(saved.id).read_text())["unknown_calls"]

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)

    app = make_app(load=TOOL_LOAD)
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)
