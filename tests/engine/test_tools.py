"""Tool definitions on disk, argument validation, and running tools safely."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w

from engine.chat import ToolCall
from engine.tools import (
    BUILTIN_NAMES,
    ToolDefinition,
    ToolRegistry,
    ToolResult,
    build_argv,
    load_tools,
    run_tool,
    run_tool_sync,
    save_tools,
    validate_arguments,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tools.example.toml"
ECHO_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"

HOSTILE = [
    'it\'s "quoted"',
    "a; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "line one\nline two; touch {marker}",
    "x && touch {marker} || touch {marker}",
    "| tee {marker}",
    "> {marker}",
    "-rf",
    "--output={marker}",
    "*",
    "~",
    "$HOME ${PATH}",
    "{arg}",
    "  spaces  around  ",
    "",
    "ünïcödé ✓",
]


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call-{name}", name=name, arguments=arguments)


def command_tool(
    command: list[str], properties: dict[str, Any] | None = None, **extra: Any
) -> ToolDefinition:
    props = properties if properties is not None else {"arg": {"type": "string"}}
    return ToolDefinition.model_validate(
        {
            "name": "cmd",
            "parameters": {"type": "object", "properties": props},
            "command": command,
            **extra,
        }
    )


def builtin(name: str, **extra: Any) -> ToolDefinition:
    return ToolDefinition.model_validate({"name": name, "builtin": name, **extra})


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead; only its parent has not reaped it yet


def wait_dead(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


# --- loading and saving -------------------------------------------------------------


def test_example_file_loads_every_tool() -> None:
    tools, errors = load_tools(EXAMPLE)
    assert errors == []
    names = [tool.name for tool in tools]
    assert names[:3] == ["get_current_time", "analyze_directory", "read_text_file"]
    assert {"count_lines", "search_file"} <= set(names)
    by_name = {tool.name: tool for tool in tools}
    assert by_name["get_current_time"].requires_approval is False
    assert by_name["count_lines"].requires_approval is True
    assert by_name["count_lines"].command == ["wc", "-l", "--", "{path}"]
    # Built-ins bring their own description and schema when the file gives none.
    assert by_name["read_text_file"].description
    assert by_name["read_text_file"].parameters["required"] == ["path"]


def test_openai_schema_shape() -> None:
    tools, _ = load_tools(EXAMPLE)
    schema = ToolRegistry(tools).get("search_file").openai_schema()  # type: ignore[union-attr]
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "search_file"
    assert function["description"].startswith("Find the lines")
    assert function["parameters"]["type"] == "object"
    assert set(function["parameters"]["required"]) == {"pattern", "path"}
    json.dumps(schema)  # templates need plain JSON


def test_missing_file_is_no_tools_and_no_error(tmp_path: Path) -> None:
    assert load_tools(tmp_path / "nope.toml") == ([], [])


def test_toml_syntax_error_reports_file_and_line_and_loads_nothing(tmp_path: Path) -> None:
    path = write(
        tmp_path / "tools.toml",
        '[[tool]]\nname = "ok"\nbuiltin = "get_current_time"\n\n[[tool]]\nname = "bad\n',
    )
    tools, errors = load_tools(path)
    assert tools == []
    assert len(errors) == 1
    assert errors[0].startswith(f"{path}:6:")
    assert "invalid TOML" in errors[0]


BROKEN_FILE = """
[[tool]]
name = "good_time"
builtin = "get_current_time"

[[tool]]
name = "bad_schema"
command = ["echo", "{x}"]
parameters = { type = "objekt", properties = { x = { type = "string" } } }

[[tool]]
description = "no name at all"
builtin = "get_current_time"

[[tool]]
name = "both_ways"
builtin = "get_current_time"
command = ["date"]

[[tool]]
name = "stray_placeholder"
command = ["echo", "{nope}"]
parameters = { type = "object", properties = { x = { type = "string" } } }

[[tool]]
name = "good_echo"
command = ["echo", "--", "{x}"]
parameters = { type = "object", properties = { x = { type = "string" } } }

[[tool]]
name = "typo"
builtin = "get_current_time"
timeout_secs = 3

[[tool]]
name = "string_schema"
builtin = "read_text_file"
parameters = { type = "string" }

[[tool]]
name = "good_echo"
command = ["echo", "again"]
"""


def test_invalid_tools_are_reported_by_file_and_name_and_the_rest_load(tmp_path: Path) -> None:
    path = write(tmp_path / "tools.toml", BROKEN_FILE)
    tools, errors = load_tools(path)
    assert [tool.name for tool in tools] == ["good_time", "good_echo"]
    assert len(errors) == 7, errors
    assert all(error.startswith(f"{path}: tool ") for error in errors)
    by_label = dict(error.removeprefix(f"{path}: ").split(": ", 1) for error in errors)
    assert "not a valid JSON schema" in by_label["tool 'bad_schema' (#2)"]
    assert "name" in by_label["tool #3 (no name)"]
    assert "exactly one of `builtin` and `command`" in by_label["tool 'both_ways' (#4)"]
    assert "{nope}" in by_label["tool 'stray_placeholder' (#5)"]
    assert "timeout_secs: unknown key (did you mean 'timeout_sec'?)" in by_label["tool 'typo' (#7)"]
    assert "object schema" in by_label["tool 'string_schema' (#8)"]
    assert "already has this name" in by_label["tool 'good_echo' (#9)"]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"name": "has space", "builtin": "get_current_time"}, "name"),
        ({"name": "x", "builtin": "launch_rockets"}, "builtin"),
        ({"name": "x", "command": []}, "command"),
        (
            {
                "name": "x",
                "command": ["{arg}"],
                "parameters": {"type": "object", "properties": {"arg": {}}},
            },
            "program",
        ),
        ({"name": "x", "command": ["ls"], "timeout_sec": 0}, "timeout_sec"),
        ({"name": "x", "command": ["ls"], "path_parameters": ["nope"]}, "path_parameters"),
        ({"name": "x", "builtin": "read_text_file", "cwd": "/tmp"}, "commands only"),
        ({"name": "x", "command": ["ls"], "env": {"N": 1}}, "env"),
    ],
)
def test_definition_problems_are_rejected(
    table: dict[str, Any], problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "tools.toml"
    write(path, tomli_w.dumps({"tool": [table]}))
    tools, errors = load_tools(path)
    assert tools == []
    assert len(errors) == 1 and problem in errors[0], errors


def test_top_level_must_be_tool_tables(tmp_path: Path) -> None:
    path = write(tmp_path / "tools.toml", '[tools]\nname = "x"\n')
    tools, errors = load_tools(path)
    assert tools == []
    assert errors and "did you mean 'tool'" in errors[0]


def test_loading_never_rewrites_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "tools.toml", BROKEN_FILE)
    before = path.read_bytes(), path.stat().st_mtime_ns
    load_tools(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tools.toml"]


def test_save_round_trips_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    tools, _ = load_tools(EXAMPLE)
    path = tmp_path / "sub" / "tools.toml"
    save_tools(path, tools)
    again, errors = load_tools(path)
    assert errors == []
    assert again == tools
    assert sorted(p.name for p in path.parent.iterdir()) == ["tools.toml"]
    text = path.read_text()
    # A built-in's own description is not copied into the person's file.
    assert "Read a UTF-8 text file" not in text


# --- arguments ----------------------------------------------------------------------


def test_validate_arguments_accepts_dicts_and_json_strings() -> None:
    tool = builtin("read_text_file")
    assert validate_arguments(tool, {"path": "a.txt"}) == []
    assert validate_arguments(tool, '{"path": "a.txt", "max_bytes": 10}') == []
    problems = validate_arguments(tool, '{"max_bytes": 0, "path": 3}')
    assert len(problems) == 2
    assert any("max_bytes" in p and "minimum" in p for p in problems)
    assert any("arguments.path" in p and "string" in p for p in problems)
    assert "required" in validate_arguments(tool, {})[0]
    assert "not valid JSON" in validate_arguments(tool, "{path: ")[0]
    assert "JSON object" in validate_arguments(tool, "[1, 2]")[0]


async def test_invalid_arguments_are_an_error_result_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tool = ToolDefinition.model_validate(
        {
            "name": "cmd",
            "parameters": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer", "minimum": 1},
                    "name": {"type": "string"},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
            "command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')", "{count}"],
        }
    )
    result = await run_tool(tool, call("cmd", count=0, extra=True))
    assert result.is_error
    assert result.exit_code is None
    assert "invalid arguments" in result.content
    assert "minimum" in result.content
    assert "'name' is a required property" in result.content
    assert "extra" in result.content
    assert not marker.exists()
    assert result.to_message().content == result.content


async def test_unknown_tool_is_an_error_result() -> None:
    result = await run_tool(None, call("nope"))
    assert result.is_error and "unknown tool 'nope'" in result.content
    mismatched = await run_tool(builtin("get_current_time"), call("read_text_file", path="x"))
    assert mismatched.is_error
    registry = ToolRegistry([builtin("get_current_time")])
    listed = await registry.run(call("nope"))
    assert listed.is_error and "available: get_current_time" in listed.content
    assert registry.run_sync(call("nope")).is_error


# --- commands -----------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_arguments_reach_the_program_verbatim(tmp_path: Path, hostile: str) -> None:
    marker = tmp_path / "pwned"
    value = hostile.replace("{marker}", str(marker))
    # allow_options: "-rf" and "--output=..." must reach it verbatim too (python -c reads
    # no options after the code); refusing them otherwise is test_tool_options.py's.
    tool = command_tool(
        [sys.executable, "-c", ECHO_ARGV, "{arg}", "--name={arg}"],
        cwd=str(tmp_path),
        allow_options=True,
    )
    result = await run_tool(tool, call("cmd", arg=value))
    assert not result.is_error, result.content
    assert json.loads(result.content) == [value, f"--name={value}"]
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_shell_injection_into_a_real_shell_program_does_not_run(tmp_path: Path) -> None:
    # Even `sh` as the program gets the argument as data ($1), never as a script.
    marker = tmp_path / "pwned"
    tool = command_tool(["sh", "-c", 'printf "%s" "$1"', "sh", "{arg}"])
    value = f"$(touch {marker}); `touch {marker}`"
    result = await run_tool(tool, call("cmd", arg=value))
    assert result.content == value
    assert not marker.exists()


def test_build_argv_substitutes_whole_elements_and_drops_absent_optionals() -> None:
    tool = command_tool(
        ["prog", "-n", "--max={limit}", "{{literal}}", "{a}:{b}", "--", "{a}"],
        {"a": {"type": "string"}, "b": {"type": "integer"}, "limit": {"type": "integer"}},
    )
    assert build_argv(tool, {"a": "x y", "b": 3}) == [
        "prog",
        "-n",
        "{literal}",
        "x y:3",
        "--",
        "x y",
    ]
    assert build_argv(tool, {"a": "x", "b": 1, "limit": 5})[2] == "--max=5"


def test_build_argv_uses_schema_defaults_and_json_for_structures() -> None:
    tool = command_tool(
        ["prog", "{flag}", "{n}", "{items}"],
        {
            "flag": {"type": "boolean"},
            "n": {"type": "integer", "default": 7},
            "items": {"type": "array"},
        },
    )
    assert build_argv(tool, {"flag": True, "items": ["a", "b c"]}) == [
        "prog",
        "true",
        "7",
        '["a", "b c"]',
    ]


async def test_timeout_kills_the_whole_process_group_and_keeps_partial_output() -> None:
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    tool = command_tool([sys.executable, "-c", script], {}, timeout_sec=1)
    started = time.monotonic()
    result = await run_tool(tool, call("cmd"))
    elapsed = time.monotonic() - started
    assert elapsed < 1 + 1.5
    assert result.timed_out and result.is_error
    assert "timed out after 1 s" in result.content
    assert "child" in result.content
    child_pid = int(result.content.split("child ", 1)[1].split()[0])
    assert wait_dead(child_pid), "the grandchild survived the timeout"


async def test_cancelling_a_run_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    tool = command_tool([sys.executable, "-c", script], {}, timeout_sec=60)
    task = asyncio.create_task(run_tool(tool, call("cmd")))
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_dead(int(pid_file.read_text()))


async def test_failing_command_reports_exit_code_and_stderr() -> None:
    script = "import sys; print('some output'); print('it broke', file=sys.stderr); sys.exit(3)"
    result = await run_tool(command_tool([sys.executable, "-c", script], {}), call("cmd"))
    assert result.is_error and not result.timed_out
    assert result.exit_code == 3
    assert "exited with code 3" in result.content
    assert "[stderr]\nit broke" in result.content
    assert "[stdout]\nsome output" in result.content


async def test_successful_command_with_stderr_is_not_an_error() -> None:
    script = "import sys; print('done'); print('a warning', file=sys.stderr)"
    result = await run_tool(command_tool([sys.executable, "-c", script], {}), call("cmd"))
    assert not result.is_error and result.exit_code == 0
    assert "done" in result.content and "a warning" in result.content
    assert result.duration_sec > 0


async def test_output_is_truncated_at_the_limit_with_a_note() -> None:
    script = "import sys; sys.stdout.write('x' * 5000 + 'END')"
    tool = command_tool([sys.executable, "-c", script], {}, max_output_chars=1000)
    result = await run_tool(tool, call("cmd"))
    assert not result.is_error
    body, note = result.content.split("\n", 1)
    assert body == "x" * 1000
    assert note == "[output truncated: showing the first 1000 characters of 5003 bytes]"
    assert "END" not in result.content


async def test_builtin_output_is_truncated_in_characters(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    (root / "long.txt").write_text("é" * 300)
    tool = builtin("read_text_file", max_output_chars=100)
    result = await run_tool(tool, call("read_text_file", path="long.txt"), allowed_roots=[root])
    assert (
        result.content
        == "é" * 100 + "\n[output truncated: showing the first 100 characters of 300 characters]"
    )


async def test_huge_output_is_not_held_in_memory_and_stderr_survives() -> None:
    script = (
        "import sys\n"
        "for _ in range(200): sys.stdout.write('y' * 10000)\n"
        "sys.stderr.write('the real error'); sys.exit(1)\n"
    )
    tool = command_tool([sys.executable, "-c", script], {}, max_output_chars=500)
    result = await run_tool(tool, call("cmd"))
    assert result.exit_code == 1
    assert "the real error" in result.content
    assert result.content.count("y") <= 500
    assert "2000000 bytes" in result.content


async def test_missing_program_and_working_directory_are_clear_errors(tmp_path: Path) -> None:
    missing = await run_tool(command_tool(["no-such-program-xyz", "{arg}"]), call("cmd", arg="a"))
    assert missing.is_error and "program not found: 'no-such-program-xyz'" in missing.content
    no_cwd = command_tool(["ls"], {}, cwd=str(tmp_path / "gone"))
    result = await run_tool(no_cwd, call("cmd"))
    assert result.is_error and "working directory does not exist" in result.content


async def test_nul_in_an_argument_is_an_error_result() -> None:
    result = await run_tool(
        command_tool([sys.executable, "-c", ECHO_ARGV, "{arg}"]), call("cmd", arg="a\0b")
    )
    assert result.is_error and "cannot start" in result.content


async def test_env_additions_and_cwd(tmp_path: Path) -> None:
    script = "import os; print(os.environ['LT_TEST'], os.getcwd())"
    tool = command_tool(
        [sys.executable, "-c", script], {}, env={"LT_TEST": "hello"}, cwd=str(tmp_path)
    )
    result = await run_tool(tool, call("cmd"))
    assert result.content.split() == ["hello", str(tmp_path.resolve())]


async def test_path_parameters_are_confined_and_made_absolute(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret").write_text("no")
    tool = command_tool(
        [sys.executable, "-c", ECHO_ARGV, "{path}"],
        {"path": {"type": "string"}},
        path_parameters=["path"],
    )
    inside = await run_tool(tool, call("cmd", path="sub"), allowed_roots=[root])
    assert json.loads(inside.content) == [str((root / "sub").resolve())]
    dashed = await run_tool(tool, call("cmd", path="-rf"), allowed_roots=[root])
    assert json.loads(dashed.content) == [str(root.resolve() / "-rf")]
    for escape in ["../secret", str(tmp_path / "secret"), "sub/../../secret"]:
        outside = await run_tool(tool, call("cmd", path=escape), allowed_roots=[root])
        assert outside.is_error and "outside the allowed directories" in outside.content
    unconfigured = await run_tool(tool, call("cmd", path="sub"))
    assert unconfigured.is_error and "no allowed directories" in unconfigured.content


# --- built-ins ----------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """An allowed root with a few files, and a directory outside it."""
    root = tmp_path / "allowed"
    outside = tmp_path / "outside"
    (root / "docs").mkdir(parents=True)
    outside.mkdir()
    write(root / "notes.txt", "hello\nworld\n")
    write(root / "docs" / "a.md", "# A\n")
    write(outside / "secret.txt", "top secret")
    (root / "link_out").symlink_to(outside / "secret.txt")
    (root / "dir_out").symlink_to(outside)
    (root / "link_in").symlink_to(root / "notes.txt")
    return root, outside


def test_builtins_are_the_three_promised() -> None:
    assert set(BUILTIN_NAMES) == {"get_current_time", "analyze_directory", "read_text_file"}


def test_read_text_file_inside_the_roots(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    tool = builtin("read_text_file")
    for path in ["notes.txt", str(root / "notes.txt"), "docs/../notes.txt", "link_in"]:
        result = run_tool_sync(tool, call("read_text_file", path=path), allowed_roots=[root])
        assert not result.is_error, result.content
        assert result.content == "hello\nworld\n"


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "docs/../../outside/secret.txt",
        "link_out",
        "dir_out/secret.txt",
        "{outside}/secret.txt",
        "/etc/passwd",
        "~/.bashrc",
    ],
)
def test_file_builtins_refuse_paths_outside_the_roots(roots: tuple[Path, Path], path: str) -> None:
    root, outside = roots
    path = path.replace("{outside}", str(outside))
    result = run_tool_sync(
        builtin("read_text_file"), call("read_text_file", path=path), allowed_roots=[root]
    )
    assert result.is_error
    assert "outside the allowed directories" in result.content
    assert "top secret" not in result.content


def test_analyze_directory_refuses_outside_and_symlinked_directories(
    roots: tuple[Path, Path],
) -> None:
    root, outside = roots
    tool = builtin("analyze_directory")
    for path in ["..", "dir_out", str(outside), "docs/../.."]:
        result = run_tool_sync(tool, call("analyze_directory", path=path), allowed_roots=[root])
        assert result.is_error and "outside the allowed directories" in result.content, path
        assert "secret.txt" not in result.content


def test_file_builtins_refuse_without_allowed_roots(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    for name in ["read_text_file", "analyze_directory"]:
        result = run_tool_sync(
            builtin(name), call(name, path=str(root / "notes.txt")), allowed_roots=[]
        )
        assert result.is_error and "no allowed directories are configured" in result.content


def test_read_text_file_refuses_oversized_binary_and_non_text(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    tool = builtin("read_text_file")
    (root / "big.txt").write_text("z" * 150_000)
    (root / "blob.bin").write_bytes(b"\x7fELF\x00\x01\x02")
    (root / "latin1.txt").write_bytes("café".encode("latin-1"))

    def read(**arguments: Any) -> ToolResult:
        return run_tool_sync(tool, call("read_text_file", **arguments), allowed_roots=[root])

    big = read(path="big.txt")
    assert big.is_error and "150000 bytes, over the limit of 100000" in big.content
    assert read(path="notes.txt", max_bytes=5).is_error
    assert read(path="blob.bin").is_error and "binary" in read(path="blob.bin").content
    assert "not UTF-8" in read(path="latin1.txt").content
    assert "is a directory" in read(path="docs").content
    assert "no such file" in read(path="missing.txt").content
    # The schema caps max_bytes: the model cannot lift the limit past it.
    assert "maximum" in read(path="big.txt", max_bytes=10**9).content


def test_read_text_file_refuses_fifos_without_hanging(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    os.mkfifo(root / "pipe")
    result = run_tool_sync(
        builtin("read_text_file"), call("read_text_file", path="pipe"), allowed_roots=[root]
    )
    assert result.is_error and "not a regular file" in result.content


def test_analyze_directory_lists_types_sizes_and_counts(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    result = run_tool_sync(
        builtin("analyze_directory"), call("analyze_directory", path="."), allowed_roots=[root]
    )
    assert not result.is_error, result.content
    report = json.loads(result.content)
    assert report["path"] == str(root.resolve())
    assert (report["files"], report["directories"], report["symlinks"]) == (1, 1, 3)
    assert report["total_size"] == len("hello\nworld\n")
    entries = {entry["name"]: entry for entry in report["entries"]}
    assert entries["notes.txt"] == {"name": "notes.txt", "type": "file", "size": 12}
    assert entries["docs"]["type"] == "directory"
    assert entries["link_out"]["type"] == "symlink"  # listed, never followed
    assert report["entries"][0]["name"] == "docs"  # directories first
    assert report["truncated"] is False
    limited = run_tool_sync(
        builtin("analyze_directory"),
        call("analyze_directory", path=".", max_entries=2),
        allowed_roots=[root],
    )
    assert len(json.loads(limited.content)["entries"]) == 2
    assert json.loads(limited.content)["truncated"] is True
    not_dir = run_tool_sync(
        builtin("analyze_directory"),
        call("analyze_directory", path="notes.txt"),
        allowed_roots=[root],
    )
    assert not_dir.is_error and "not a directory" in not_dir.content


def test_get_current_time_in_a_time_zone() -> None:
    result = run_tool_sync(
        builtin("get_current_time"), call("get_current_time", timezone="Asia/Kolkata")
    )
    assert not result.is_error and result.exit_code is None
    report = json.loads(result.content)
    moment = datetime.fromisoformat(report["datetime"])
    assert moment.utcoffset() == timedelta(hours=5, minutes=30)
    assert abs(moment - datetime.now(ZoneInfo("Asia/Kolkata"))) < timedelta(seconds=5)
    assert report["timezone"] == "Asia/Kolkata"
    assert report["weekday"] == moment.strftime("%A")


def test_get_current_time_local_and_unknown_zone() -> None:
    local = json.loads(run_tool_sync(builtin("get_current_time"), call("get_current_time")).content)
    moment = datetime.fromisoformat(local["datetime"])
    assert moment.tzinfo is not None
    assert abs(moment - datetime.now().astimezone()) < timedelta(seconds=5)
    for bad in ["Mars/Olympus_Mons", "../../etc/passwd"]:
        result = run_tool_sync(builtin("get_current_time"), call("get_current_time", timezone=bad))
        assert result.is_error and "unknown time zone" in result.content


# --- runners and the registry -------------------------------------------------------


async def test_sync_runner_works_inside_a_running_loop() -> None:
    tool = command_tool([sys.executable, "-c", ECHO_ARGV, "{arg}"])
    result = run_tool_sync(tool, call("cmd", arg="from a loop"))
    assert json.loads(result.content) == ["from a loop"]
    assert result.tool_call_id == "call-cmd" and result.name == "cmd"


def test_sync_runner_without_a_loop_and_async_runner_agree() -> None:
    tool = command_tool([sys.executable, "-c", ECHO_ARGV, "{arg}"])
    sync_result = run_tool_sync(tool, call("cmd", arg="same"))
    async_result = asyncio.run(run_tool(tool, call("cmd", arg="same")))
    assert sync_result.content == async_result.content == '["same"]\n'


async def test_builtins_run_in_parallel_calls() -> None:
    tool = builtin("get_current_time")
    results = await asyncio.gather(*(run_tool(tool, call("get_current_time")) for _ in range(5)))
    assert all(not result.is_error for result in results)


def test_registry_schemas_and_lookup() -> None:
    tools, _ = load_tools(EXAMPLE)
    registry = ToolRegistry(tools)
    assert len(registry) == len(tools) and "count_lines" in registry
    assert registry.get("nope") is None
    names = [
        s["function"]["name"]
        for s in registry.openai_schemas(["read_text_file", "get_current_time"])
    ]
    assert names == ["read_text_file", "get_current_time"]
    assert len(registry.openai_schemas()) == len(tools)
    with pytest.raises(KeyError):
        registry.openai_schemas(["missing"])
    with pytest.raises(ValueError):
        registry.add(tools[0])


def test_registry_from_file(tmp_path: Path) -> None:
    registry, errors = ToolRegistry.from_file(write(tmp_path / "tools.toml", BROKEN_FILE))
    assert registry.names() == ["good_time", "good_echo"]
    assert len(errors) == 7


async def test_example_command_tools_run_confined(roots: tuple[Path, Path]) -> None:
    root, _ = roots
    registry = ToolRegistry(load_tools(EXAMPLE)[0])
    counted = await registry.run(call("count_lines", path="notes.txt"), allowed_roots=[root])
    assert counted.content.split()[0] == "2"
    found = await registry.run(
        call("search_file", pattern="wor", path="notes.txt"), allowed_roots=[root]
    )
    assert found.content.strip() == "2:world"
    refused = await registry.run(
        call("search_file", pattern=".", path="link_out"), allowed_roots=[root]
    )
    assert refused.is_error and "top secret" not in refused.content


def test_tools_path_follows_the_config(isolated_dirs: Path, tmp_path: Path) -> None:
    # isolated_dirs: the person's own config directory (and any tools.toml there) is not read.
    from engine.settings import Settings
    from engine.tools import tools_path

    data = Settings.model_validate({"paths": {"data_dir": str(tmp_path / "data")}})
    assert tools_path(data) == tmp_path / "data" / "tools.toml"
    chosen = Settings.model_validate({"tools": {"file": str(tmp_path / "mine.toml")}})
    assert tools_path(chosen) == tmp_path / "mine.toml"
