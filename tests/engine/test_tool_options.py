"""Option injection: a model's argument that starts with `-` reaches a command as an
option only where the tool says so (issue 13, "option injection")."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from engine.chat import ToolCall
from engine.errors import ToolError
from engine.tools import ToolDefinition, build_argv, load_tools, read_tools_file, run_tool

ECHO_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"


def command_tool(command: list[str], **extra: Any) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {
            "name": "cmd",
            "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}},
            "command": command,
            **extra,
        }
    )


def call(**arguments: Any) -> ToolCall:
    return ToolCall(id="call-1", name="cmd", arguments=arguments)


@pytest.mark.skipif(shutil.which("sort") is None, reason="needs sort")
async def test_sort_with_an_output_option_does_not_write_the_file(tmp_path: Path) -> None:
    target = tmp_path / "x"
    tool = command_tool(["sort", "{arg}"])
    result = await run_tool(tool, call(arg=f"--output={target}"))
    assert result.is_error and result.exit_code is None
    assert "starts with '-'" in result.content and "option" in result.content
    assert "allow_options" in result.content
    assert not target.exists()


@pytest.mark.parametrize("value", ["-rf", "--output=/tmp/x", "-", "--", "-5"])
def test_a_leading_placeholder_before_double_dash_refuses_dashes(value: str) -> None:
    tool = command_tool(["prog", "{arg}", "--", "x"])
    with pytest.raises(ToolError, match="arg"):
        build_argv(tool, {"arg": value})


def test_only_the_start_of_an_element_counts() -> None:
    tool = command_tool(["prog", "--name={arg}", "x{arg}", "{{{arg}}}"])
    assert build_argv(tool, {"arg": "-rf"}) == ["prog", "--name=-rf", "x-rf", "{-rf}"]


def test_after_double_dash_a_dash_is_data() -> None:
    tool = command_tool(["prog", "-n", "--", "{arg}"])
    assert build_argv(tool, {"arg": "--output=/tmp/x"}) == ["prog", "-n", "--", "--output=/tmp/x"]


def test_a_double_dash_made_by_a_placeholder_does_not_count() -> None:
    tool = ToolDefinition.model_validate(
        {
            "name": "cmd",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            },
            "command": ["prog", "--{a}", "{b}"],
        }
    )
    with pytest.raises(ToolError):
        build_argv(tool, {"a": "", "b": "-rf"})


def test_values_that_do_not_start_with_a_dash_pass() -> None:
    tool = command_tool(["prog", "{arg}"])
    assert build_argv(tool, {"arg": "a-b --c"}) == ["prog", "a-b --c"]


async def test_allow_options_lets_them_through(tmp_path: Path) -> None:
    tool = command_tool([sys.executable, "-c", ECHO_ARGV, "{arg}"], allow_options=True)
    result = await run_tool(tool, call(arg="--output=x"))
    assert not result.is_error, result.content
    assert json.loads(result.content) == ["--output=x"]


def test_allow_options_is_for_commands_only() -> None:
    with pytest.raises(ValueError, match="commands only"):
        ToolDefinition.model_validate(
            {"name": "x", "builtin": "get_current_time", "allow_options": True}
        )


def write_tools(path: Path, *tables: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps({"tool": list(tables)}), encoding="utf-8")
    return path


PARAMETERS = {"type": "object", "properties": {"input": {"type": "string"}}}


def test_a_bare_placeholder_without_double_dash_is_warned_about_and_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_tools(
        tmp_path / "tools.toml",
        {"name": "sorter", "command": ["sort", "{input}"], "parameters": PARAMETERS},
    )
    found = read_tools_file(path)
    assert [tool.name for tool in found.tools] == ["sorter"] and found.errors == []
    assert len(found.warnings) == 1, found.warnings
    warning = found.warnings[0]
    assert warning.startswith(f"{path}: tool 'sorter' (#1): warning: ")
    assert "{input}" in warning and '"--"' in warning and "allow_options" in warning
    # load_tools' callers show its second list as errors: the warning is logged instead.
    with caplog.at_level(logging.WARNING, logger="llamaterm.tools"):
        tools, errors = load_tools(path)
    assert [tool.name for tool in tools] == ["sorter"] and errors == []
    assert [record.getMessage() for record in caplog.records] == [warning]


@pytest.mark.parametrize(
    "extra",
    [
        {"command": ["sort", "--", "{input}"]},
        {"command": ["sort", "{input}"], "allow_options": True},
        {"command": ["grep", "--regexp={input}"]},
    ],
)
def test_no_warning_where_options_cannot_be_injected(tmp_path: Path, extra: dict[str, Any]) -> None:
    path = write_tools(tmp_path / "tools.toml", {"name": "t", "parameters": PARAMETERS, **extra})
    found = read_tools_file(path)
    assert len(found.tools) == 1 and found.errors == [] and found.warnings == []


def test_allow_options_round_trips_and_is_left_out_when_false(tmp_path: Path) -> None:
    on = command_tool(["prog", "{arg}"], allow_options=True)
    off = command_tool(["prog", "--", "{arg}"])
    assert on.to_toml_table()["allow_options"] is True
    assert "allow_options" not in off.to_toml_table()
