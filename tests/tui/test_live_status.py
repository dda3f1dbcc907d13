"""The status line while a prediction runs: prompt tokens done of those to do, then
the reply's tokens and tokens a second as it streams (Chat and Complete).

The tiny model runs with a small batch, so its prompt takes several batches; a run is
held at a chosen event (see `HeldEvents`) and the line read while it waits. Messages
are typed as bursts, the way a terminal delivers them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from chat_testing import chat_screen, open_chat
from held_testing import HeldEvents, hold_chat, second_batch
from key_testing import burst
from textual.widgets import Static
from tui_testing import TERMINAL_SIZE, wait_for_model, wait_for_prediction, wait_until

from engine.load_config import LoadConfig
from engine.prediction import ContentDelta, PredictionConfig, PromptProgress
from tui.app import LlamatermApp
from tui.screens.chat.chat_screen import ChatScreen
from tui.screens.complete import complete_screen as complete_module
from tui.screens.complete.complete_screen import CompleteScreen
from tui.token_rate import TokenRate
from tui.widgets.status.prediction_status import StatsLine, phase_text

MakeApp = Callable[..., LlamatermApp]

SMALL_BATCH = LoadConfig(context_length=512, threads=1, batch_size=8)
"""Eight prompt tokens a batch: a prompt of a few dozen tokens reports progress often."""
PREDICTION = PredictionConfig(temperature=0.0, seed=42, max_tokens=40)


def chat_line(screen: ChatScreen) -> str:
    return str(screen.status.query_one("#chat-status-text", Static).render())


def total_prompt(run: HeldEvents) -> int:
    totals = {e.total_tokens for e in run.seen if isinstance(e, PromptProgress)}
    (total,) = totals
    return total


def test_phase_text_counts_and_rate() -> None:
    assert phase_text("processing prompt", prompt_done=512, prompt_total=1130) == (
        "processing prompt… 512/1130 tokens"
    )
    # A model that does not count (a remote one): the share done.
    assert phase_text("processing prompt", progress=0.25) == "processing prompt… 25%"
    assert phase_text("generating", generated=1) == "generating… 1 token"
    assert phase_text("generating", generated=42, rate=35.14) == (
        "generating… 42 tokens · 35.1 tok/s"
    )
    assert phase_text("stopping", generated=42, rate=3.0) == "stopping…"


def test_token_rate_measures_from_the_first_token() -> None:
    times = iter([10.0, 10.5, 11.0])
    rate = TokenRate(clock=lambda: next(times))
    assert rate.per_second is None
    rate.count(1)
    assert rate.generated == 1 and rate.per_second is None
    rate.count(1)
    rate.count(2)
    # Three tokens in the second after the first one.
    assert rate.generated == 4 and rate.per_second == pytest.approx(3.0)


def test_token_rate_takes_the_first_token_time_from_the_engine() -> None:
    # The loop was busy: the first tokens arrive 2 s after the engine sampled the
    # first one, then 9 more at once. Measured on arrival, that is 90 tokens a second.
    times = iter([0.0, 2.5, 2.6])
    rate = TokenRate(clock=lambda: next(times))
    rate.start()
    rate.first_token(0.5)  # sampled at 0.5 s
    rate.count(1)
    rate.count(9)
    assert rate.generated == 10
    # Nine tokens after the first, in the 2.1 s since it was sampled.
    assert rate.per_second == pytest.approx(9 / 2.1)


async def test_chat_line_counts_prompt_tokens_then_the_reply_speed(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = hold_chat(monkeypatch, second_batch)
    app = make_app(load=SMALL_BATCH, prediction=PREDICTION)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await burst(pilot, "What do llamas dream of, in a long story?", "enter")
        await wait_until(pilot, lambda: bool(runs) and runs[0].held.is_set())
        total = total_prompt(runs[0])
        assert total > 16
        await wait_until(pilot, lambda: "8/" in chat_line(screen))
        assert chat_line(screen) == f"processing prompt… 8/{total} tokens"
        runs[0].release()
        await wait_for_prediction(pilot)
        # The reply's own stats line has the measured speed; the status line is back
        # to the context.
        assert chat_line(screen).startswith("context:")


async def test_chat_line_shows_tokens_and_rate_while_the_reply_streams(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    deltas = 0

    def tenth_delta(event: object) -> bool:
        nonlocal deltas
        if isinstance(event, ContentDelta):
            deltas += 1
        return deltas == 10

    runs = hold_chat(monkeypatch, tenth_delta)
    app = make_app(prediction=PREDICTION)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await burst(pilot, "Hi", "enter")
        await wait_until(pilot, lambda: bool(runs) and runs[0].held.is_set())
        shown = r"generating… (\d+) tokens · (\d+\.\d) tok/s"
        await wait_until(pilot, lambda: re.fullmatch(shown, chat_line(screen)) is not None)
        match = re.fullmatch(shown, chat_line(screen))
        assert match is not None
        counted = sum(
            e.tokens_count for e in runs[0].seen if isinstance(e, ContentDelta)
        )
        assert int(match.group(1)) == counted
        assert float(match.group(2)) > 0
        runs[0].release()
        await wait_for_prediction(pilot)
        assert chat_line(chat_screen(pilot)).startswith("context:")


async def test_complete_line_counts_prompt_tokens_and_the_speed(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[HeldEvents] = []
    original = complete_module.pump_prediction
    deltas = 0

    def hold_at(event: object) -> bool:
        nonlocal deltas
        if isinstance(event, ContentDelta):
            deltas += 1
        return second_batch(event) or deltas == 10

    async def pump(stream: Any, *args: Any, **kwargs: Any) -> None:
        run = HeldEvents(stream, hold_at)
        held.append(run)
        await original(run, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(complete_module, "pump_prediction", pump)
    app = make_app(load=SMALL_BATCH, prediction=PREDICTION)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = app.screen
        assert isinstance(screen, CompleteScreen)
        line = screen.query_one(StatsLine)
        await burst(pilot, "Once upon a time, in the high mountains of Peru, a llama", "ctrl+g")
        await wait_until(pilot, lambda: bool(held) and held[0].held.is_set())
        total = total_prompt(held[0])
        await wait_until(pilot, lambda: "8/" in str(line.render()))
        assert str(line.render()) == f"processing prompt… 8/{total} tokens"
        # On to the tenth piece of text: the count and the speed.
        held[0].held.clear()
        held[0].released.set()
        held[0].released = asyncio.Event()
        await wait_until(pilot, lambda: held[0].held.is_set())
        shown = r"generating… (\d+) tokens · (\d+\.\d) tok/s"
        await wait_until(pilot, lambda: re.fullmatch(shown, str(line.render())) is not None)
        held[0].release()
        await wait_for_prediction(pilot)
        assert "tok/s" in str(line.render()) and "generating" not in str(line.render())
