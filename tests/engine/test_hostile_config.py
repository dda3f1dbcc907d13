"""The config, the tools file and model_settings.json against hostile content.

TOML nested past tomllib's recursion limit, JSON nested past json's, and paths holding
a NUL character: each is a clear error naming the file (and the key), never a crash
later on (issue 13).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.chat import Chat
from engine.errors import ChatFormatError, ConfigError
from engine.models.remembered import ModelSettingsStore
from engine.settings import load_settings
from engine.tools.definitions import read_tools_file

DEEP_ARRAY = "[" * 1000 + "]" * 1000
DEEP_TABLE = "{a = " * 1000 + "1" + "}" * 1000
"""TOML values that make tomllib raise RecursionError at Python's default limit."""

NUL = "\\u0000"
"""A NUL character as TOML writes it in a string."""

NUL_MESSAGE = "contains a NUL character (\\u0000), which no file name may hold"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (f'[paths]\ndata_dir = "a{NUL}b"\n', "paths.data_dir"),
        (f'[paths]\nmodel_dirs = ["ok", "x{NUL}"]\n', "paths.model_dirs.1"),
        (f'[load]\nchatTemplateFile = "t{NUL}.jinja"\n', "load.chatTemplateFile"),
        (f'[load]\nchat_template_file = "t{NUL}.jinja"\n', "load.chat_template_file"),
        (
            f'[models."m.gguf"]\nchat_template_file = "{NUL}"\n',
            'models."m.gguf".chat_template_file',
        ),
        (f'[tools]\nfile = "tools{NUL}.toml"\n', "tools.file"),
        (f'[tools]\nallowed_roots = ["~/{NUL}"]\n', "tools.allowed_roots.0"),
    ],
    ids=lambda value: value.split("\n")[0] if "\n" in value else None,
)
def test_a_nul_in_any_path_setting_is_refused_with_its_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == f"{config}: {key}: {NUL_MESSAGE}"


def test_paths_without_a_nul_still_load(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[paths]\ndata_dir = "~/llama data"\n[load]\nchatTemplateFile = "t.jinja"\n')
    settings = load_settings(config)
    assert settings.paths.data_dir == Path("~/llama data").expanduser()
    assert settings.load.chat_template_file == Path("t.jinja")


@pytest.mark.parametrize("value", [DEEP_ARRAY, DEEP_TABLE], ids=["array", "inline-table"])
def test_a_config_nested_too_deeply_is_a_config_error(tmp_path: Path, value: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[ui]\ntheme = {value}\n")
    with pytest.raises(ConfigError, match="invalid TOML: nested too deeply"):
        load_settings(config)


@pytest.mark.parametrize("value", [DEEP_ARRAY, DEEP_TABLE], ids=["array", "inline-table"])
def test_a_tools_file_nested_too_deeply_is_an_error_not_a_crash(tmp_path: Path, value: str) -> None:
    tools = tmp_path / "tools.toml"
    tools.write_text(f'[[tool]]\nname = "x"\nparameters = {value}\n')
    found = read_tools_file(tools)
    assert found.tools == []
    assert found.errors == [f"{tools}: invalid TOML: nested too deeply"]


def test_model_settings_nested_too_deeply_are_set_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "model_settings.json"
    path.write_text('{"schema_version": 1, "models": ' + DEEP_ARRAY + "}")
    store = ModelSettingsStore(tmp_path)
    assert store.all() == {}
    assert store.problems == [
        f"{path}: not valid JSON (nested too deeply); set aside as model_settings.json.corrupt-1"
    ]
    store.remember("m", {"threads": 2})
    assert ModelSettingsStore(tmp_path).get("m").threads == 2
    assert (tmp_path / "model_settings.json.corrupt-1").exists()


def test_a_remembered_template_path_with_a_nul_is_reported_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "model_settings.json"
    entry = {"chatTemplateFile": "t\u0000.jinja", "threads": 3}
    path.write_text(json.dumps({"schema_version": 1, "models": {"m": entry}}))
    store = ModelSettingsStore(tmp_path)
    assert store.get("m").is_empty()
    assert any(NUL_MESSAGE in problem and ": m: ignored" in problem for problem in store.problems)
    store.remember("other", {"threads": 2})
    assert json.loads(path.read_text())["models"]["m"] == entry


def test_a_chat_json_nested_too_deeply_is_a_chat_format_error() -> None:
    with pytest.raises(ChatFormatError, match="chat file is not valid JSON: maximum recursion"):
        Chat.from_json('{"schema_version": 1, "messages": ' + DEEP_ARRAY + "}")
