"""The chat list's search looks inside the chats, not only at their titles, and says
where it matched; "no chats match" when none does. Typed in bursts, as over SSH."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chat_testing import open_chat
from key_testing import burst
from tui_testing import TERMINAL_SIZE, wait_until

from engine.chat import AssistantResponse, Chat
from tui.app import LlamatermApp
from tui.store.saved_chats import ChatStore, SavedChat, search_chat
from tui.widgets.chat.chat_list import NO_MATCH, where_matched

MakeApp = Callable[..., LlamatermApp]


def write_chats(data_dir: Path) -> None:
    store = ChatStore(data_dir)
    for chat_id, title, question, answer in (
        ("20260101-000000-aaaaaa", "About llamas", "What do llamas dream of?", "Of green grass."),
        ("20260101-000001-bbbbbb", "Alpacas", "Tell me of alpacas", "Alpacas HUM when calm."),
    ):
        chat = Chat()
        chat.add_user_message(question)
        chat.messages.append(AssistantResponse(content=answer))
        store.save(SavedChat(chat_id, chat=chat, title=title, named=True))


def shown(app: LlamatermApp) -> list[str]:
    options = app.screen.chat_list.options  # type: ignore[attr-defined]
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


def test_search_chat_says_where() -> None:
    texts = [("user", "What do llamas dream of?"), ("assistant", "They dream of green GRASS.")]
    assert search_chat("About llamas", texts, "LLAMAS") is not None
    assert search_chat("About llamas", texts, "llamas").role == ""  # type: ignore[union-attr]
    found = search_chat("About llamas", texts, "about grass")
    assert found is not None and found.role == "assistant"
    assert found.snippet[found.start : found.start + found.length] == "GRASS"
    assert search_chat("About llamas", texts, "grass zebra") is None
    line = str(where_matched(found))
    assert line.startswith("reply: …") and "GRASS" in line and len(line) <= 24


async def test_the_search_finds_words_inside_messages_and_says_where(
    make_app: MakeApp, isolated: Path
) -> None:
    write_chats(isolated)
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_chat(pilot)
        await burst(pilot, "ctrl+f", "grass")
        (entry,) = shown(app)
        title, where = entry.split("\n")
        assert title.strip(" ●") == "About llamas"
        assert where.strip().startswith("reply: ") and "grass" in where

        # In a title: no second line. In any case.
        await burst(pilot, "ctrl+u", "ALPACAS")
        assert [e.strip(" ●") for e in shown(app)] == ["Alpacas"]
        # A word in the title and one inside: both must be there.
        await burst(pilot, "ctrl+u", "alpacas hum")
        (entry,) = shown(app)
        assert entry.split("\n")[1].strip() == "reply: Alpacas HUM when…"
        await burst(pilot, "ctrl+u", "dream")
        (entry,) = shown(app)
        assert entry.split("\n")[1].strip().startswith("you: …")

        await burst(pilot, "ctrl+u", "zebra")
        assert [e.strip() for e in shown(app)] == [NO_MATCH]

        # Enter opens the chat found.
        await burst(pilot, "ctrl+u", "grass", "enter")
        await wait_until(pilot, lambda: screen.current.title == "About llamas")
