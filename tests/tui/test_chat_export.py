"""Exporting a chat: Markdown or JSON, to a path the person confirms (under exports/ in
the data directory unless they change it), atomically; a path that cannot be written
and a full disk are said in one notification, never a traceback.

The app runs the tiny model; keys are typed in bursts, as a terminal delivers them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chat_testing import open_chat, send
from key_testing import burst
from textual.widgets import Input
from tui_testing import TERMINAL_SIZE, wait_until

from engine.chat import AssistantResponse, Chat, ToolCall, ToolResultMessage
from engine.prediction import PredictionStats
from tui.app import LlamatermApp
from tui.screens.dialogs import ExportChatScreen
from tui.store.chat_export import (
    ExportError,
    default_path,
    export_chat,
    fence,
    to_json,
    to_markdown,
)
from tui.store.saved_chats import SavedChat, ToolRun

MakeApp = Callable[..., LlamatermApp]


def notes(app: LlamatermApp) -> list[Any]:
    return list(app._notifications)  # what the person was told


def sample_chat() -> SavedChat:
    chat = Chat("Be brief.")
    chat.add_user_message("Show me `code`")
    call = ToolCall(id="c1", name="take_note", arguments={"note": "hi"})
    chat.messages.append(
        AssistantResponse(content="Here:\n\n```py\nprint(1)\n```", reasoning="Easy.", tool_calls=[call])
    )
    chat.messages.append(ToolResultMessage(tool_call_id="c1", name="take_note", content="noted ```"))
    saved = SavedChat("20260101-000000-abcdef", chat=chat, title="Code [b]x/y")
    saved.stats = {
        2: PredictionStats(stop_reason="toolCalls", predicted_tokens_count=9, tokens_per_second=3.0)
    }
    saved.tool_runs = {"c1": ToolRun()}
    return saved


def test_markdown_reads_as_the_chat_did() -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    text = to_markdown(sample_chat(), when)
    assert text.startswith("# Code [b]x/y\n\n*Exported from llamaterm, 2026-01-02 03:04 UTC.*\n")
    for part in (
        "## System prompt\n\nBe brief.",
        "## You\n\nShow me `code`",
        "## Assistant\n\n> **Reasoning**\n>\n> Easy.",
        "```py\nprint(1)\n```",
        '**Tool call** `take_note`\n\n```json\n{\n  "note": "hi"\n}\n```',
        "*9 tokens · 3.0 tok/s · stop: toolCalls*",
        # The result holds three backticks: its fence is longer.
        "**Tool result** `take_note`\n\n````\nnoted ```\n````",
    ):
        assert part in text, part


def test_json_reads_back_as_the_chat() -> None:
    saved = sample_chat()
    data = to_json(saved)
    assert data["title"] == "Code [b]x/y" and data["exported_by"] == "llamaterm"
    assert Chat.from_dict(data["chat"]).messages == saved.chat.messages
    assert data["stats"]["2"]["predicted_tokens_count"] == 9


def test_fence_outlasts_backticks_inside() -> None:
    assert fence("a ````` b").startswith("``````\n")
    assert fence("plain") == "```\nplain\n```"


def test_a_path_that_cannot_be_written_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError) as caught:
        export_chat(sample_chat(), blocker / "chat.md")
    message = str(caught.value)
    assert message.startswith(f"could not export to {blocker / 'chat.md'}: ")
    assert "\n" not in message
    with pytest.raises(ExportError, match="NUL"):
        export_chat(sample_chat(), Path("bad\x00name.md"))
    # A folder: the file is named after the chat inside it.
    written = export_chat(sample_chat(), tmp_path)
    assert written.parent == tmp_path and written.name == "code-b-x-y-20260101-000000-abcdef.md"


async def test_ctrl_s_exports_to_the_exports_folder_after_asking(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hello there")
        await burst(pilot, "ctrl+s")
        dialog = app.screen
        assert isinstance(dialog, ExportChatScreen)
        field = dialog.query_one(Input)
        expected = default_path(isolated, screen.current)
        assert field.value == str(expected)
        assert expected.parent == isolated / "exports"
        await burst(pilot, "enter")
        await wait_until(pilot, expected.exists)
        assert app.screen is screen
        text = expected.read_text()
        assert text.startswith("# Hello there\n") and "## You\n\nHello there" in text
        await wait_until(pilot, lambda: any(str(expected) in n.message for n in notes(app)))
        (note,) = [n for n in notes(app) if str(expected) in n.message]
        assert note.title == "Chat exported as Markdown" and note.severity == "information"
        # No temporary file left beside it.
        assert [p.name for p in expected.parent.iterdir()] == [expected.name]

        # Ctrl+T switches to JSON; the path is the person's to change.
        await burst(pilot, "ctrl+s", "ctrl+t")
        field = app.screen.query_one(Input)
        assert field.value == str(expected.with_suffix(".json"))
        other = isolated / "elsewhere" / "mine.json"
        await burst(pilot, "ctrl+u", str(other), "enter")
        await wait_until(pilot, other.exists)
        data = json.loads(other.read_text())
        assert [m["role"] for m in data["chat"]["messages"]] == ["user", "assistant"]


async def test_an_unwritable_path_is_an_error_notice_and_the_app_goes_on(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hello there")
        blocker = isolated / "a-file"
        blocker.write_text("not a folder")
        await burst(pilot, "ctrl+s", "ctrl+u", str(blocker / "chat.md"), "enter")
        await wait_until(pilot, lambda: any(n.title == "Not exported" for n in notes(app)))
        (note,) = [n for n in notes(app) if n.title == "Not exported"]
        assert note.severity == "error"
        assert note.message.startswith(f"could not export to {blocker / 'chat.md'}: ")
        assert app.screen is screen and app.is_running
        # Palette-free: the empty chat says there is nothing to export.
        await burst(pilot, "ctrl+n", "ctrl+s")
        assert app.screen is screen
        assert any("Nothing to export" in n.message for n in notes(app))


async def test_a_full_disk_is_an_error_notice_and_leaves_no_file(
    make_app: MakeApp, isolated: Path, full_filesystem: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hello there")
        # A chat bigger than the disk.
        screen.current.chat.messages[-1] = AssistantResponse(content="llama " * 40_000)
        target = full_filesystem / "big.md"
        await burst(pilot, "ctrl+s", "ctrl+u", str(target), "enter")
        await wait_until(pilot, lambda: any(n.title == "Not exported" for n in notes(app)))
        (note,) = [n for n in notes(app) if n.title == "Not exported"]
        assert note.message == (
            f"could not export to {target}: No space left on device; nothing was written"
        )
        assert list(full_filesystem.iterdir()) == []
