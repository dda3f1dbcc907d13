"""The app's tables of the config file ([ui], [keymap], [remotes]) over the engine's."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from config_example import EXAMPLE, missing_fields, uncomment_settings, write_config

from engine.settings import ConfigError, Settings, load_settings
from tui.config import AppSettings, UISettings, load_app_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLAMATERM_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_app_settings(path)
    return str(caught.value)


def test_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    settings = load_app_settings(tmp_path / "nowhere" / "config.toml")
    assert settings == AppSettings()
    assert settings.ui.theme == "llamaterm-dark" and settings.keymap == {}
    assert settings.load.context_length == 4096
    assert list(tmp_path.iterdir()) == []


def test_default_path_comes_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    xdg_config = tmp_path / "xdg" / "llamaterm" / "config.toml"
    xdg_config.parent.mkdir(parents=True)
    xdg_config.write_text('[ui]\ntheme = "from-xdg"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert load_app_settings().ui.theme == "from-xdg"

    mine = write_config(tmp_path, '[ui]\ntheme = "from-env"\n')
    monkeypatch.setenv("LLAMATERM_CONFIG", str(mine))
    assert load_app_settings().ui.theme == "from-env"


def test_the_engine_reads_past_the_app_tables_and_the_app_checks_them(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, '[load]\ncontext_length = 2048\n[ui]\nshow_reasoning = "maybe"\n[keymap]\n'
    )
    assert load_settings(path).load.context_length == 2048
    assert not hasattr(load_settings(path), "ui")
    assert config_error(path).startswith(f"{path}: ui.show_reasoning: Input should be a valid boolean")


def test_every_problem_on_its_own_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, '[load]\ncontext_length = 8\nbatch_size = 0\n[ui]\nshow_reasoning = "maybe"\n'
    )
    lines = config_error(path).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "load.context_length",
        "load.batch_size",
        "ui.show_reasoning",
    ]


def test_section_of_the_wrong_type(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'keymap = "ctrl+n"\nload = 3\n')
    assert [line.split(": ")[1] for line in config_error(path).splitlines()] == [
        "load",
        "keymap",
    ]


def test_spelling_hints_know_the_app_tables(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[ui]\nthemes = "x"\n')
    assert config_error(path) == f"{path}: ui.themes: unknown setting (did you mean 'theme'?)"
    assert "'ui'" in config_error(write_config(tmp_path, '[uii]\ntheme = "x"\n'))


def test_keymap_accepts_quoted_and_dotted_ids(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[keymap]\n"chat.new" = "ctrl+n"\napp.quit = "ctrl+q"\n')
    assert load_app_settings(path).keymap == {"chat.new": "ctrl+n", "app.quit": "ctrl+q"}


def test_keymap_errors_name_the_binding(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[keymap]\napp.quit = 3\n")
    assert config_error(path).startswith(f'{path}: keymap."app.quit": ')
    empty = write_config(tmp_path, '[keymap]\n"chat.new" = " "\n')
    assert "chat.new" in config_error(empty)


def test_remote_servers_are_read(tmp_path: Path) -> None:
    text = '[[remotes]]\nbase_url = "http://gpu-box:8080/v1"\napi_key = "k"\n\n[[remotes]]\nbase_url = "http://other/v1"\n'
    settings = load_app_settings(write_config(tmp_path, text))
    assert [r.base_url for r in settings.remotes] == ["http://gpu-box:8080/v1", "http://other/v1"]
    assert settings.remotes[0].api_key == "k" and settings.remotes[1].api_key is None
    with pytest.raises(ConfigError, match="remotes"):
        load_app_settings(write_config(tmp_path, "[[remotes]]\napi_key = 'no url'\n"))


def test_example_config_shows_the_app_defaults() -> None:
    settings = load_app_settings(EXAMPLE)
    assert settings.ui == UISettings() and settings.keymap == {} and settings.remotes == []


def test_example_config_commented_settings_are_valid(tmp_path: Path) -> None:
    text = uncomment_settings(EXAMPLE.read_text(encoding="utf-8"))
    settings = load_app_settings(write_config(tmp_path, text))
    assert settings.keymap and settings.remotes and settings.models


def test_example_config_covers_every_app_field() -> None:
    data = tomllib.loads(uncomment_settings(EXAMPLE.read_text(encoding="utf-8")))
    assert missing_fields(AppSettings, data) == []
    assert "keymap.<an example entry>" in missing_fields(AppSettings, {"keymap": {}})


def test_app_settings_are_engine_settings() -> None:
    # The engine's functions take the app's settings as they are.
    assert issubclass(AppSettings, Settings)
    assert set(Settings.model_fields) < set(AppSettings.model_fields)
    assert set(AppSettings.model_fields) - set(Settings.model_fields) == Settings.FRONT_END_TABLES
