"""Where the tools file is looked for: beside the config file first, then in the data
directory (issue 12: a tools.toml in the config directory was silently ignored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import Settings
from engine.tools import (
    default_tools_path,
    read_configured_tools,
    tools_file_candidates,
    tools_path,
)

TOOL = '[[tool]]\nname = "{name}"\nbuiltin = "get_current_time"\n'


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("LLAMATERM_CONFIG", raising=False)
    config, data = tmp_path / "config" / "llamaterm", tmp_path / "data" / "llamaterm"
    config.mkdir(parents=True)
    data.mkdir(parents=True)
    return config, data


def write_tool(directory: Path, name: str) -> Path:
    path = directory / "tools.toml"
    path.write_text(TOOL.format(name=name), encoding="utf-8")
    return path


def test_a_tools_file_in_the_config_directory_is_read(dirs: tuple[Path, Path]) -> None:
    config, data = dirs
    path = write_tool(config, "from_config")
    assert default_tools_path(data) == path
    assert tools_path(Settings()) == path
    found = read_configured_tools(Settings())
    assert found.path == path
    assert [tool.name for tool in found.tools] == ["from_config"]


def test_the_config_directory_comes_first_and_the_other_file_is_named(
    dirs: tuple[Path, Path],
) -> None:
    config, data = dirs
    first = write_tool(config, "from_config")
    second = write_tool(data, "from_data")
    assert tools_file_candidates(data) == [first, second]
    found = read_configured_tools(Settings())
    assert found.path == first
    assert [tool.name for tool in found.tools] == ["from_config"]
    assert len(found.warnings) == 1
    assert str(second) in found.warnings[0] and str(first) in found.warnings[0]


def test_the_data_directory_still_works(dirs: tuple[Path, Path]) -> None:
    _, data = dirs
    path = write_tool(data, "from_data")
    assert tools_path(Settings()) == path
    assert [tool.name for tool in read_configured_tools(Settings()).tools] == ["from_data"]


def test_with_no_file_the_data_directory_is_where_one_goes(dirs: tuple[Path, Path]) -> None:
    _, data = dirs
    assert tools_path(Settings()) == data / "tools.toml"
    found = read_configured_tools(Settings())
    assert found.path == data / "tools.toml" and found.tools == [] and found.errors == []


def test_an_explicit_config_file_puts_its_directory_first(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("LLAMATERM_CONFIG", str(elsewhere / "my.toml"))
    path = write_tool(elsewhere, "beside_my_config")
    assert tools_path(Settings()) == path


def test_tools_file_in_the_config_wins_over_both(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    config, data = dirs
    write_tool(config, "from_config")
    write_tool(data, "from_data")
    mine = write_tool(tmp_path, "mine")
    settings = Settings.model_validate({"tools": {"file": str(mine)}})
    assert tools_path(settings) == mine
    found = read_configured_tools(settings)
    assert [tool.name for tool in found.tools] == ["mine"] and found.warnings == []


def test_a_data_dir_given_by_the_app_is_honoured(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "other-data"
    other.mkdir()
    path = write_tool(other, "other")
    assert tools_path(Settings(), data_dir=other) == path
