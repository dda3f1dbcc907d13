"""Chat files: round trip with their settings, corrupt files set aside, trash, search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.chat import SystemPrompt, ToolCall
from engine.prediction import PredictionConfig, PredictionStats
from tui.store.saved_chats import (
    NEW_CHAT_TITLE,
    ChatStore,
    SavedChat,
    ToolOptions,
    ToolRun,
    matches,
    new_chat_id,
    title_from,
)


def a_chat() -> SavedChat:
    saved = SavedChat(new_chat_id())
    saved.system_prompt = "Be brief."
    saved.chat.add_user_message("What is 2 + 3?")
    saved.chat.add_assistant_response(
        "", reasoning="add them", tool_calls=[ToolCall(id="call1", name="add", arguments={"a": 2})]
    )
    saved.chat.add_tool_result("call1", "5", name="add")
    saved.chat.add_assistant_response("It is 5.")
    saved.stats[2] = PredictionStats("toolCalls", 10, 4, 0.1, 40.0)
    saved.stats[4] = PredictionStats("eosFound", 20, 3, 0.05, 60.0)
    saved.tool_runs["call1"] = ToolRun(is_error=False, denied=False, duration_sec=0.25, exit_code=0)
    saved.prediction = PredictionConfig.model_validate({"temperature": 0.3, "stop_strings": ["END"]})
    saved.tools = ToolOptions(enabled=True, names=["add"], choice="required")
    saved.retitle()
    return saved


def test_round_trip_keeps_messages_settings_stats_and_tool_runs(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    saved = a_chat()
    store.save(saved)
    path = store.path_of(saved.id)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1
    assert data["chat"]["schema_version"] == 1
    # LM Studio's camelCase keys, and only what the chat changed.
    assert data["prediction"] == {"temperature": 0.3, "stopStrings": ["END"]}

    chats, errors = store.load_all()
    assert errors == []
    [loaded] = chats
    assert loaded.id == saved.id and loaded.title == "What is 2 + 3?"
    assert loaded.chat == saved.chat
    assert loaded.system_prompt == "Be brief."
    assert loaded.stats == saved.stats
    assert loaded.tool_runs == saved.tool_runs
    assert loaded.prediction == saved.prediction
    assert loaded.tools == saved.tools
    assert loaded.updated == saved.updated


def test_a_corrupt_file_is_set_aside_and_the_others_load(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    good = a_chat()
    store.save(good)
    directory = store.directory
    (directory / "broken.json").write_text("{not json")
    (directory / "future.json").write_text('{"schema_version": 7, "chat": {}}')
    (directory / "wrong.json").write_text(
        '{"schema_version": 1, "chat": {"schema_version": 1, "messages": [{"role": "robot"}]}}'
    )
    chats, errors = store.load_all()
    assert [c.id for c in chats] == [good.id]
    assert len(errors) == 3
    [future] = [e for e in errors if "future.json" in e]
    assert "written by a newer llamaterm (schema version 7)" in future
    assert all("set aside" in e for e in errors if e is not future)
    for name in ("broken", "wrong"):
        assert not (directory / f"{name}.json").exists()
        assert (directory / f"{name}.json.corrupt-1").exists()
    # A newer version's chat stays where that version will look for it.
    assert (directory / "future.json").exists()
    assert not (directory / "future.json.corrupt-1").exists()
    # Loading again finds only the good one and reports only the newer file again.
    assert store.load_all()[1] == [future]


def test_delete_moves_to_the_trash(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    saved = a_chat()
    store.save(saved)
    trashed = store.delete(saved)
    assert trashed is not None and trashed.parent.name == "trash" and trashed.exists()
    assert store.load_all() == ([], [])
    # A second chat of the same id does not overwrite the first one in the trash.
    store.save(saved)
    second = store.delete(saved)
    assert second is not None and second != trashed and trashed.exists()
    assert store.delete(SavedChat(new_chat_id())) is None


def test_newest_first(tmp_path: Path) -> None:
    store = ChatStore(tmp_path)
    first, second = a_chat(), a_chat()
    store.save(first)
    store.save(second)
    store.save(first)
    assert [c.id for c in store.load_all()[0]] == [first.id, second.id]


def test_titles_search_and_truncation() -> None:
    assert title_from("\n  Hello there  \nsecond line") == "Hello there"
    assert title_from("   ") == NEW_CHAT_TITLE
    long = title_from("x" * 100)
    assert len(long) == 48 and long.endswith("…")
    saved = SavedChat(new_chat_id(), title="Llamas in the Terminal")
    assert matches(saved, "terminal llama") and matches(saved, "")
    assert not matches(saved, "alpaca")


def test_system_prompt_and_truncate_keep_stats_in_step() -> None:
    saved = a_chat()
    saved.system_prompt = ""
    assert not isinstance(saved.chat.messages[0], SystemPrompt)
    assert set(saved.stats) == {1, 3}
    saved.system_prompt = "Again"
    assert set(saved.stats) == {2, 4}
    saved.truncate(3)
    assert set(saved.stats) == {2} and "call1" in saved.tool_runs
    saved.truncate(2)
    assert saved.stats == {} and saved.tool_runs == {}
    assert not saved.is_empty
    saved.truncate(1)
    assert saved.is_empty


DEEP = "[" * 1000 + "]" * 1000
"""Valid JSON that json.loads cannot parse: RecursionError at Python's default limit."""


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (DEEP, "not valid JSON (nested too deeply)"),
        ('{"schema_version": 1, "chat": ' + DEEP + "}", "not valid JSON (nested too deeply)"),
        ("null", "not a chat file (a JSON null, not an object)"),
        ("[1, 2]", "not a chat file (a JSON array, not an object)"),
        ('"text"', "not a chat file (a JSON string, not an object)"),
        ('{"schema_version": true, "chat": {"messages": []}}', "unknown schema version True"),
        ('{"schema_version": 1.0, "chat": {"messages": []}}', "unknown schema version 1.0"),
    ],
)
def test_every_file_that_is_no_chat_is_reported_and_set_aside(
    tmp_path: Path, content: str, problem: str
) -> None:
    store = ChatStore(tmp_path)
    good = a_chat()
    store.save(good)
    bad = store.directory / "20200101-000000-bad000.json"
    bad.write_text(content)
    chats, errors = store.load_all()
    assert [c.id for c in chats] == [good.id]
    assert errors == [f"{bad}: {problem}; set aside as {bad.name}.corrupt-1"]
    assert (store.directory / f"{bad.name}.corrupt-1").read_text() == content


def test_a_chat_that_exhausts_memory_or_recursion_in_validation_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChatStore(tmp_path)
    store.save(a_chat())
    from tui.store import saved_chats

    failures = iter([MemoryError(), RecursionError("maximum recursion depth exceeded")])

    def failing(chat_id: str, data: object) -> SavedChat:
        raise next(failures)

    monkeypatch.setitem(saved_chats._CONVERTERS, 1, failing)
    store.save(a_chat())
    chats, errors = store.load_all()
    assert chats == []
    assert sorted(e.split(": ", 1)[1].split(";")[0] for e in errors) == [
        "nested too deeply",
        "too large to read",
    ]
