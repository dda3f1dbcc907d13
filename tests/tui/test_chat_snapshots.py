"""Snapshots of the Chat screen in its main states.

The tiny model runs at temperature 0 with a fixed seed, so its text is the same on
every run; a reply "mid-stream" is paused after a fixed number of text deltas (see
`chat_testing.PausedRun`); the measured speeds in stats lines are replaced by fixed
ones. Update with `pytest tests/tui/test_chat_snapshots.py --snapshot-update`, then
look at the SVGs in __snapshots__/ before committing them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chat_testing import (
    THINKING_PREDICTION,
    THINKING_TEMPLATE,
    TOOL_LOAD,
    TOOL_PREDICTION,
    chat_screen,
    freeze_chat_timings,
    open_chat,
    pause_replies,
    send,
    wait_for_card,
    wait_until_paused,
    write_tools_file,
)
from textual.pilot import Pilot
from tui_testing import NARROW_SIZE, TERMINAL_SIZE

from engine.prediction import PredictionConfig
from tui.app import LlamatermApp
from tui.screens.chat import chat_options as chat_options_module
from tui.store.saved_chats import ToolOptions

MakeApp = Callable[..., LlamatermApp]
SnapCompare = Callable[..., bool]

QUESTION = "What do llamas dream of?"
SHOWN_TOOLS_FILE = Path("/home/me/.config/llamaterm/tools.toml")


async def finished_reply(pilot: Pilot[Any]) -> None:
    await open_chat(pilot)
    await send(pilot, QUESTION)
    freeze_chat_timings(pilot)
    await pilot.pause()


def test_chat_empty(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)

    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_chat_finished_with_stats(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=finished_reply)


def test_chat_narrow(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    """80×24: the chat list steps aside; Ctrl+L brings it back."""
    assert snap_compare(make_app(), terminal_size=NARROW_SIZE, run_before=finished_reply)


def test_chat_streaming_mid_reply(
    snap_compare: SnapCompare, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = pause_replies(monkeypatch, after=12)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        await send(pilot, QUESTION, wait=False)
        await wait_until_paused(pilot, runs[0])
        assert chat_screen(pilot).generating

    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_chat_reasoning_streaming(
    snap_compare: SnapCompare,
    make_app: MakeApp,
    make_tiny_model: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model thinks: its reasoning streams into an open block."""
    runs = pause_replies(monkeypatch, after=30)
    model = make_tiny_model(chat_template=THINKING_TEMPLATE)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        await send(pilot, "Hi!", wait=False)
        await wait_until_paused(pilot, runs[0])

    app = make_app(model=str(model), prediction=THINKING_PREDICTION)
    assert snap_compare(app, terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_chat_reasoning_and_answer(
    snap_compare: SnapCompare, make_app: MakeApp, make_tiny_model: Callable[..., Path]
) -> None:
    """Done: the answer in Markdown, the reasoning folded above it (opened here)."""
    model = make_tiny_model(chat_template=THINKING_TEMPLATE)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot)
        screen = await send(pilot, "Hi!")
        for block in screen.query("ReasoningBlock"):
            block.collapsed = False  # type: ignore[attr-defined]
        freeze_chat_timings(pilot)
        await pilot.pause()

    app = make_app(model=str(model), prediction=THINKING_PREDICTION)
    assert snap_compare(app, terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_chat_tool_call_pending_approval(
    snap_compare: SnapCompare, make_app: MakeApp, isolated: Path
) -> None:
    write_tools_file(isolated)

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_chat(pilot)
        screen.current.tools = ToolOptions(enabled=True, names=None, choice="required")
        await send(pilot, "Note that llamas hum.", wait=False)
        await wait_for_card(pilot, "pending")
        freeze_chat_timings(pilot)
        await pilot.pause()

    app = make_app(prediction=TOOL_PREDICTION, load=TOOL_LOAD)
    assert snap_compare(app, terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_chat_settings_modal_narrow(
    snap_compare: SnapCompare, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The form names the tools file; a fixed path keeps the test's temporary one out.
    monkeypatch.setattr(
        chat_options_module, "tools_path", lambda settings, data_dir: SHOWN_TOOLS_FILE
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_chat(pilot, model=False)
        await pilot.press("ctrl+o")
        await pilot.pause()

    assert snap_compare(make_app(autoload=False), terminal_size=NARROW_SIZE, run_before=run_before)


def test_chat_search_that_matches_nothing(snap_compare: SnapCompare, make_app: MakeApp) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await finished_reply(pilot)
        await pilot.press("ctrl+f", *"zebra")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_chat_call_to_an_unknown_tool(
    snap_compare: SnapCompare, make_app: MakeApp, isolated: Path
) -> None:
    write_tools_file(isolated)
    grammar = 'root ::= "Let me try. " ' + json.dumps(
        '[TOOL_REQUEST]{"name": "launch_rocket", "arguments": {}}[END_TOOL_REQUEST]'
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_chat(pilot)
        screen.current.tools = ToolOptions(enabled=True)
        await send(pilot, "Launch it.")
        freeze_chat_timings(pilot)
        await pilot.pause()

    prediction = PredictionConfig(temperature=0.0, seed=1, max_tokens=400, grammar=grammar)
    app = make_app(prediction=prediction, load=TOOL_LOAD)
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)
