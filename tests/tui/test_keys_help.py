"""`?` shows the keys of the screen in front, with what they do, as plain text (a key
such as `[` or `/` is no markup); Escape closes it; a text field types `?` instead.
Typed in bursts, as a terminal over SSH delivers keys."""

from __future__ import annotations

from collections.abc import Callable

from chat_testing import open_chat, send
from key_testing import burst
from textual.widgets import Static
from tui_testing import TERMINAL_SIZE, wait_for_model

from tui.app import LlamatermApp
from tui.screens.keys_help import KeyRow, KeysScreen, rows_content

MakeApp = Callable[..., LlamatermApp]


def keys_shown(app: LlamatermApp) -> str:
    """What the modal shows, row by row: keys, then what they do."""
    screen = app.screen
    assert isinstance(screen, KeysScreen), screen
    cells = [str(cell.render()) for cell in screen.query("#keys-list Static").results(Static)]
    return "\n".join(f"{keys}  {what}" for keys, what in zip(cells[::2], cells[1::2]))


def rows_by_id(app: LlamatermApp) -> dict[str, KeyRow]:
    screen = app.screen
    assert isinstance(screen, KeysScreen), screen
    return {row.binding_id: row for row in screen.rows}


async def test_question_mark_in_the_message_box_is_typed(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await burst(pilot, "Why", "question_mark", " not", "question_mark")
        assert screen.chat_input.text == "Why? not?"
        assert app.screen is screen
        # The chat list's search is a text field too.
        await burst(pilot, "ctrl+f", "question_mark")
        assert screen.chat_list.search.value == "?"
        assert app.screen is screen


async def test_question_mark_lists_the_keys_of_the_chat_screen(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hello")
        # From the conversation, with a message selected: its keys are listed too.
        await burst(pilot, "shift+tab", "up", "question_mark")
        rows = rows_by_id(app)
        assert rows["chat.delete_message"].keys == "d / del"
        assert rows["chat.previous_message"].keys == "↑ / k"
        assert rows["chat.export"].description.startswith("Export this chat as Markdown or JSON")
        assert rows["chat.new"].keys == "^n"
        assert "app.keys" in rows and "screen.models" in rows
        text = keys_shown(app)
        assert "Delete the selected message" in text
        assert app.screen.query_one("Vertical").border_title is not None
        # Escape closes it; the conversation keeps the focus and the selection.
        await burst(pilot, "escape")
        assert app.screen is screen and screen.chat_view.has_focus
        assert screen.chat_view.selected is not None


async def test_keys_that_look_like_markup_read_as_written(make_app: MakeApp) -> None:
    # "[" and "/" as keys: in markup, "[/]" would end the app (issue 12's palette crash).
    app = make_app(keymap={"chat.find": "left_square_bracket", "chat.list": "slash"})
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "Hello")
        await burst(pilot, "shift+tab", "question_mark")
        rows = rows_by_id(app)
        assert rows["chat.find"].keys == "["
        assert rows["chat.list"].keys == "/"
        text = keys_shown(app)
        assert "[" in text and "Search the saved chats" in text
        await burst(pilot, "question_mark")
        assert app.screen is screen


async def test_every_screen_lists_its_keys(make_app: MakeApp) -> None:
    app = make_app(mode="models")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        await burst(pilot, "question_mark")
        rows = rows_by_id(app)
        assert rows["models.search"].keys == "/"
        assert "models.load" in rows
        assert "/" in keys_shown(app)
        await burst(pilot, "escape", "f4", "question_mark")
        assert "logs.follow" in rows_by_id(app)
        await burst(pilot, "escape")
        assert not isinstance(app.screen, KeysScreen)


def test_rows_content_is_plain_text() -> None:
    rows = [KeyRow("[", "Open [b]x.gguf[/]", "x.open"), KeyRow("/", "Search", "x.search")]
    text = str(rows_content(rows))
    assert "[b]x.gguf[/]" in text and text.splitlines()[0].startswith("[")
