"""Helpers for the Chat screen tests: open it, send, pause a reply, tools, fixed stats.

Like the other TUI tests, these run the real engine on the tiny random-weight model
at temperature 0 with a fixed seed (see tui_testing), so replies are the same on
every run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_testing import wait_for_model, wait_for_prediction, wait_until

from engine.load_config import LoadConfig
from engine.prediction import ContentDelta, PredictionConfig, PredictionStats, ReasoningDelta
from tui import token_rate
from tui.screens.chat.chat_screen import ChatScreen
from tui.screens.chat.reply_stream import Run
from tui.widgets.chat.message_views import AssistantMessageView
from tui.widgets.chat.tool_card import ToolCard

TOOL_PREDICTION = PredictionConfig(temperature=0.0, seed=3, max_tokens=120)
"""Long enough for the tiny model to write a whole (grammar-forced) tool call."""
TOOL_LOAD = LoadConfig(context_length=2048, threads=1)
"""Room for the default format's tool prompt (which teaches the model [TOOL_REQUEST])."""

THINKING_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)
"""ChatML that opens the thinking block itself (as QwQ and the R1 distills do), so
everything the model writes is reasoning until it closes the block."""

THINKING_GRAMMAR = (
    'root ::= "The person greets me. A short, friendly answer will do." "</think>" "\\n\\n" '
    '"Hello! Here is **some Markdown**:\\n\\n- a list item\\n- `inline code`\\n"'
)
THINKING_PREDICTION = PredictionConfig(
    temperature=0.0, seed=42, max_tokens=300, grammar=THINKING_GRAMMAR
)

NOTE_TOOL = """
[[tool]]
name = "take_note"
description = "Write a note down."
# "--" before the placeholder: a note that starts with "-" is still a note, not an option.
command = [{python!r}, "-c", "import sys; print('noted:', len(sys.argv[-1]), 'characters')", "--", "{{note}}"]
timeout_sec = 20

[tool.parameters]
type = "object"
required = ["note"]

[tool.parameters.properties.note]
type = "string"
maxLength = 12
"""


def write_tools_file(data_dir: Path) -> Path:
    """A tools file with one command tool that needs approval."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "tools.toml"
    path.write_text(NOTE_TOOL.format(python=sys.executable))
    return path


def chat_screen(pilot: Pilot[Any]) -> ChatScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen), screen
    return screen


async def open_chat(pilot: Pilot[Any], *, model: bool = True) -> ChatScreen:
    if model:
        await wait_for_model(pilot)
    await pilot.press("f1")
    await pilot.pause()
    return chat_screen(pilot)


async def send(pilot: Pilot[Any], text: str, *, wait: bool = True) -> ChatScreen:
    screen = chat_screen(pilot)
    screen.chat_input.focus()
    screen.chat_input.set_text(text)
    await pilot.press("enter")
    if wait:
        await wait_for_prediction(pilot)
    return screen


def replies(screen: ChatScreen) -> list[AssistantMessageView]:
    return [v for v in screen.chat_view.messages() if isinstance(v, AssistantMessageView)]


def cards(screen: ChatScreen) -> list[ToolCard]:
    return list(screen.chat_view.query(ToolCard))


async def wait_for_card(pilot: Pilot[Any], state: str) -> ToolCard:
    screen = chat_screen(pilot)
    await wait_until(pilot, lambda: any(card.state == state for card in cards(screen)))
    await pilot.pause()
    return next(card for card in cards(screen) if card.state == state)


FIXED = {"tokens_per_second": 1234.5, "time_to_first_token_sec": 0.01}


def freeze_chat_timings(pilot: Pilot[Any]) -> None:
    """Fixed speeds in every stats line, for snapshots."""
    screen = chat_screen(pilot)
    for view in replies(screen):
        if view.stats is not None:
            view.stats = dataclasses.replace(view.stats, **FIXED)  # type: ignore[arg-type]


def fixed_stats(stats: PredictionStats) -> PredictionStats:
    return dataclasses.replace(stats, **FIXED)  # type: ignore[arg-type]


class PausedRun:
    """Wraps a run and stops passing its events on after `after` text deltas, until
    `resume()`: a reply frozen mid-stream, the same on every run."""

    def __init__(self, run: Run, after: int) -> None:
        self.run = run
        self.after = after
        self.passed = 0
        self.resumed = asyncio.Event()
        self.paused = asyncio.Event()

    def cancel(self) -> None:
        self.resumed.set()
        self.run.cancel()

    def resume(self) -> None:
        self.resumed.set()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        async for event in self.run:
            if isinstance(event, (ContentDelta, ReasoningDelta)):
                if self.passed == self.after:
                    self.paused.set()
                    await self.resumed.wait()
                self.passed += 1
            yield event


def pause_replies(monkeypatch: pytest.MonkeyPatch, after: int) -> list[PausedRun]:
    """Make every reply of the Chat screen pause after `after` text deltas, its live
    speed measured on a clock that ticks 10 ms a token (the same figure every run)."""
    ticks = count()
    monkeypatch.setattr(token_rate, "monotonic", lambda: next(ticks) / 100)
    # The engine's measured time to first token would move the figure: from the first
    # token's arrival instead, on the steady clock.
    monkeypatch.setattr(token_rate.TokenRate, "first_token", lambda self, seconds: None)
    runs: list[PausedRun] = []
    original = ChatScreen.open_run

    def open_run(self: ChatScreen, *args: Any, **kwargs: Any) -> Run:
        paused = PausedRun(original(self, *args, **kwargs), after)
        runs.append(paused)
        return paused

    monkeypatch.setattr(ChatScreen, "open_run", open_run)
    return runs


async def wait_until_paused(pilot: Pilot[Any], run: PausedRun) -> None:
    """Until the run is paused and everything before the pause is on screen."""
    screen = chat_screen(pilot)
    await wait_until(pilot, run.paused.is_set)

    def shown() -> bool:
        if screen.has_pending_text() or not replies(screen):
            return False
        view = replies(screen)[-1]
        block = view.reasoning_block
        return (
            bool(view.content or view.reasoning)
            and view.markdown.source == view.content
            and (block is None or block.markdown.source == view.reasoning)
        )

    await wait_until(pilot, shown)
    await pilot.pause(0.2)
    await pilot.pause()


__all__ = [
    "THINKING_PREDICTION",
    "THINKING_TEMPLATE",
    "TOOL_LOAD",
    "TOOL_PREDICTION",
    "cards",
    "chat_screen",
    "freeze_chat_timings",
    "open_chat",
    "pause_replies",
    "replies",
    "send",
    "wait_for_card",
    "wait_until_paused",
    "write_tools_file",
]
