"""Tool calls in the chat: cards that fill in live, approval by key, denial, stopping."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from chat_testing import (
    THINKING_PREDICTION,
    THINKING_TEMPLATE,
    TOOL_LOAD,
    TOOL_PREDICTION,
    cards,
    open_chat,
    replies,
    send,
    wait_for_card,
    write_tools_file,
)
from tui_testing import TERMINAL_SIZE, wait_for_prediction

from engine.agent import DENIED
from engine.chat import AssistantResponse, ToolResultMessage
from engine.prediction import PredictionConfig
from tui.app import LlamatermApp
from tui.store.saved_chats import ToolOptions
from tui.widgets.chat.reasoning_block import ReasoningBlock

MakeApp = Callable[..., LlamatermApp]

REQUIRED = ToolOptions(enabled=True, names=None, choice="required")


async def test_approve_runs_the_tool_and_the_model_answers(
    make_app: MakeApp, isolated: Path
) -> None:
    write_tools_file(isolated)
    app = make_app(prediction=TOOL_PREDICTION, load=TOOL_LOAD)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        screen.current.tools = REQUIRED
        await send(pilot, "Note that llamas hum.", wait=False)
        card = await wait_for_card(pilot, "pending")
        assert card.has_focus, "the pending call takes the keys"
        assert card.tool_name == "take_note"
        assert json.loads(card.arguments)["note"] is not None
        await pilot.press("y")
        await wait_for_prediction(pilot)
        assert card.state == "done"
        assert card.result.startswith("noted:") and card.duration_sec > 0
        assert "done in" in str(card.query_one(".tool-card--status").render())
        messages = screen.current.chat.messages
        assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
        assert isinstance(messages[1], AssistantResponse)
        assert messages[1].tool_calls[0].id == card.call_id
        assert isinstance(messages[2], ToolResultMessage) and messages[2].content == card.result
        assert len(replies(screen)) == 2
        assert screen.chat_input.has_focus
        saved = json.loads(next((isolated / "chats").glob("*.json")).read_text())
        assert saved["tool_runs"][card.call_id]["denied"] is False

    # Reopened, the card shows the same outcome.
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot, model=False)
        [restored] = cards(screen)
        assert restored.state == "done" and restored.result == card.result


async def test_deny_sends_the_refusal_and_runs_nothing(make_app: MakeApp, isolated: Path) -> None:
    write_tools_file(isolated)
    app = make_app(prediction=TOOL_PREDICTION, load=TOOL_LOAD)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        screen.current.tools = REQUIRED
        await send(pilot, "Note this", wait=False)
        card = await wait_for_card(pilot, "pending")
        await pilot.press("n")
        await wait_for_prediction(pilot)
        assert card.state == "denied" and card.has_class("-denied")
        tool_message = screen.current.chat.messages[2]
        assert isinstance(tool_message, ToolResultMessage) and tool_message.content == DENIED
        assert screen.current.tool_runs[card.call_id].denied


async def test_escape_while_waiting_for_approval_stops_the_reply(
    make_app: MakeApp, isolated: Path
) -> None:
    write_tools_file(isolated)
    app = make_app(prediction=TOOL_PREDICTION, load=TOOL_LOAD)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        screen.current.tools = REQUIRED
        await send(pilot, "Note this", wait=False)
        card = await wait_for_card(pilot, "pending")
        await pilot.press("escape")
        await wait_for_prediction(pilot)
        assert card.state == "denied"
        assert [m.role for m in screen.current.chat.messages] == ["user", "assistant", "tool"]
        assert not screen.generating and screen.chat_input.has_focus


async def test_tools_off_offers_none(make_app: MakeApp, isolated: Path) -> None:
    write_tools_file(isolated)
    app = make_app(prediction=TOOL_PREDICTION, load=TOOL_LOAD)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Note this")
        assert cards(screen) == []
        assert [m.role for m in screen.current.chat.messages] == ["user", "assistant"]


async def test_reasoning_streams_into_a_block_that_folds_when_the_answer_starts(
    make_app: MakeApp, make_tiny_model: Callable[..., Path]
) -> None:
    model = make_tiny_model(chat_template=THINKING_TEMPLATE)
    app = make_app(model=str(model), prediction=THINKING_PREDICTION)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hi!")
        [reply] = replies(screen)
        assert reply.reasoning == "The person greets me. A short, friendly answer will do."
        assert reply.content.startswith("Hello! Here is **some Markdown**")
        block = reply.query_one(ReasoningBlock)
        assert block.collapsed and block.title == "Reasoning"
        assert block.markdown.source == reply.reasoning
        message = screen.current.chat.messages[1]
        assert isinstance(message, AssistantResponse) and message.reasoning == reply.reasoning


UNKNOWN_CALL = '[TOOL_REQUEST]{"name": "launch_rocket", "arguments": {}}[END_TOOL_REQUEST]'
UNKNOWN_GRAMMAR = 'root ::= "Let me try. " ' + json.dumps(UNKNOWN_CALL)
"""The tiny model, made to call a tool the chat does not have (the grammar writes it)."""


async def test_a_call_to_an_unknown_tool_is_a_card_not_raw_text(
    make_app: MakeApp, isolated: Path
) -> None:
    write_tools_file(isolated)
    prediction = PredictionConfig(temperature=0.0, seed=1, max_tokens=400, grammar=UNKNOWN_GRAMMAR)
    app = make_app(prediction=prediction, load=TOOL_LOAD)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        screen.current.tools = ToolOptions(enabled=True)
        await send(pilot, "Launch it.")
        (reply,) = replies(screen)
        (card,) = cards(screen)
        assert card.state == "unknown" and card.tool_name == "launch_rocket"
        status = str(card.query_one(".tool-card--status").render())
        assert status.startswith("unknown tool launch_rocket")
        assert "launch_rocket" in card.arguments
        # The card shows the call; the text around it stays, the raw call does not.
        assert "TOOL_REQUEST" not in reply.markdown.source
        assert reply.markdown.source.strip() == "Let me try."
        # The model's own message keeps what it wrote.
        message = screen.current.chat.messages[-1]
        assert isinstance(message, AssistantResponse) and UNKNOWN_CALL in message.content


MEMO_TOOL = '''
[[tool]]
name = "take_memo"
description = "Write a memo down."
command = ["true"]

[tool.parameters]
type = "object"
required = ["note"]

[tool.parameters.properties.note]
type = "string"
'''
BROKEN_THEN_GOOD = 'root ::= ' + json.dumps(
    '[TOOL_REQUEST]{"name": "take_memo", "arguments": {"note": tru}}[END_TOOL_REQUEST]'
) + " " + json.dumps(
    '[TOOL_REQUEST]{"name": "take_note", "arguments": {"note": "hi"}}[END_TOOL_REQUEST]'
)
"""A call that fails once its name is known (so it was announced), then one that parses
and takes its index."""


async def test_a_call_that_takes_a_failed_calls_index_gets_a_card_of_its_own(
    make_app: MakeApp, isolated: Path
) -> None:
    tools_file = write_tools_file(isolated)
    tools_file.write_text(tools_file.read_text() + MEMO_TOOL)
    prediction = PredictionConfig(temperature=0.0, seed=1, max_tokens=400, grammar=BROKEN_THEN_GOOD)
    app = make_app(prediction=prediction, load=TOOL_LOAD)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        screen.current.tools = ToolOptions(enabled=True)
        await send(pilot, "Note it.", wait=False)
        card = await wait_for_card(pilot, "pending")
        (only,) = cards(screen)
        assert only is card and card.tool_name == "take_note"
        assert json.loads(card.arguments) == {"note": "hi"}
        await pilot.press("escape")
        await wait_for_prediction(pilot)
        (message,) = [m for m in screen.current.chat.messages if isinstance(m, AssistantResponse)]
        assert [(c.name, c.id) for c in message.tool_calls] == [("take_note", card.call_id)]
