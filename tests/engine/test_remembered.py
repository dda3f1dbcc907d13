"""Remembered load settings (model_settings.json) that this version does not fully
understand: set aside when the file is not one at all, kept as they were otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.models.remembered import ModelSettingsStore


def write(path: Path, data: Any) -> str:
    text = json.dumps(data)
    (path / "model_settings.json").write_text(text)
    return text


def read(path: Path) -> Any:
    return json.loads((path / "model_settings.json").read_text())


@pytest.mark.parametrize("data", [[1, 2], {"modelz": {"m": {"threads": 2}}}, {"models": [1]}, None])
def test_a_file_of_the_wrong_shape_is_set_aside_before_a_save(tmp_path: Path, data: Any) -> None:
    text = write(tmp_path, data)
    store = ModelSettingsStore(tmp_path)
    assert store.get("m").is_empty()
    assert store.problems and "set aside as model_settings.json.corrupt-1" in store.problems[0]
    assert (tmp_path / "model_settings.json.corrupt-1").read_text() == text
    store.remember("m", {"threads": 3})
    assert ModelSettingsStore(tmp_path).get("m").threads == 3
    assert (tmp_path / "model_settings.json.corrupt-1").read_text() == text


def test_entries_not_understood_are_written_back_as_they_were(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "schema_version": 1,
            "models": {
                "bad": {"threads": -1},
                "future": {"threads": 2, "rope_scaling": "yarn"},
                "odd": "not a table",
            },
        },
    )
    store = ModelSettingsStore(tmp_path)
    # What this version knows of an entry applies; the rest waits in the file.
    assert store.get("future").threads == 2
    assert store.get("bad").is_empty()
    assert any("bad: ignored" in p for p in store.problems)
    assert any("future" in p and "rope_scaling" in p for p in store.problems)
    store.remember("ok", {"context_length": 1024})
    store.remember("future", {"threads": 4})
    models = read(tmp_path)["models"]
    assert models["ok"] == {"context_length": 1024}
    assert models["bad"] == {"threads": -1}
    assert models["odd"] == "not a table"
    assert models["future"] == {"threads": 4, "rope_scaling": "yarn"}


def test_a_newer_file_keeps_its_version_and_its_other_tables(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"schema_version": 2, "models": {"m": {"threads": 2}}, "profiles": {"fast": {"a": 1}}},
    )
    ModelSettingsStore(tmp_path).remember("n", {"threads": 1})
    data = read(tmp_path)
    assert data["schema_version"] == 2
    assert data["profiles"] == {"fast": {"a": 1}}
    assert data["models"] == {"m": {"threads": 2}, "n": {"threads": 1}}


def test_forget_drops_what_was_not_understood_too(tmp_path: Path) -> None:
    write(tmp_path, {"schema_version": 1, "models": {"m": {"threads": -1}, "n": {"threads": 1}}})
    store = ModelSettingsStore(tmp_path)
    store.forget("m")
    assert read(tmp_path)["models"] == {"n": {"threads": 1}}


def test_a_valid_entry_remembered_over_an_invalid_one_replaces_it(tmp_path: Path) -> None:
    write(tmp_path, {"schema_version": 1, "models": {"m": {"threads": -1}}})
    ModelSettingsStore(tmp_path).remember("m", {"threads": 2})
    assert read(tmp_path)["models"] == {"m": {"threads": 2}}
