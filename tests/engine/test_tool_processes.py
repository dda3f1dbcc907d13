"""Nothing a command tool starts outlives its call: background children, `setsid`
escapes and a dying app included (issue 13, "Tools that outlive their call")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from engine.chat import ToolCall
from engine.tools import ToolDefinition, run_tool

REPO = Path(__file__).resolve().parents[2]

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the reaper needs Linux (prctl, /proc)"
)


def command_tool(command: list[str], **extra: Any) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {"name": "cmd", "parameters": {"type": "object", "properties": {}}, "command": command}
        | extra
    )


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


def read_pid(path: Path, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"no pid written to {path}")


def spawner(pid_file: Path, *, new_session: bool, keep_pipes: bool, then_sleep: float) -> str:
    """A script that starts a `sleep 60` child, writes its pid, then sleeps or exits."""
    out = "None" if keep_pipes else "subprocess.DEVNULL"
    return textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            stdout={out}, stderr={out}, start_new_session={new_session},
        )
        with open({str(pid_file)!r}, "w") as f:
            f.write(f"{{child.pid}}\\n")
        print("started", child.pid, flush=True)
        time.sleep({then_sleep})
        """
    )


async def test_a_background_child_does_not_outlive_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = spawner(pid_file, new_session=False, keep_pipes=False, then_sleep=0)
    tool = command_tool([sys.executable, "-c", script])
    result = await run_tool(tool, ToolCall(id="1", name="cmd"))
    assert not result.is_error, result.content
    child = read_pid(pid_file)
    assert wait_dead(child), "the background child kept running after the command exited"


async def test_a_background_child_holding_the_pipes_does_not_hold_up_the_call(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"
    script = spawner(pid_file, new_session=False, keep_pipes=True, then_sleep=0)
    started = time.monotonic()
    result = await run_tool(
        command_tool([sys.executable, "-c", script], timeout_sec=20), ToolCall(id="1", name="cmd")
    )
    # The command itself exits at once; its child must not keep the call open.
    assert time.monotonic() - started < 5
    assert not result.timed_out and result.exit_code == 0, result.content
    assert "started" in result.content
    assert wait_dead(read_pid(pid_file))


@linux_only
async def test_a_setsid_child_does_not_escape_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = spawner(pid_file, new_session=True, keep_pipes=True, then_sleep=60)
    tool = command_tool([sys.executable, "-c", script], timeout_sec=1)
    started = time.monotonic()
    result = await run_tool(tool, ToolCall(id="1", name="cmd"))
    elapsed = time.monotonic() - started
    assert result.timed_out and "timed out after 1 s" in result.content
    assert "started" in result.content  # what it wrote before the kill is kept
    assert elapsed < 1 + 1.0, f"the call took {elapsed:.1f} s for a 1 s timeout"
    assert wait_dead(read_pid(pid_file)), "the setsid child survived the timeout"


@linux_only
async def test_a_setsid_child_does_not_outlive_a_command_that_exits(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = spawner(pid_file, new_session=True, keep_pipes=False, then_sleep=0)
    tool = command_tool([sys.executable, "-c", script])
    result = await run_tool(tool, ToolCall(id="1", name="cmd"))
    assert result.exit_code == 0, result.content
    assert wait_dead(read_pid(pid_file))


@linux_only
def test_nothing_survives_the_app_being_killed(tmp_path: Path) -> None:
    """SIGKILL of the process that runs the tool: the reaper's parent-death signal
    takes everything the command started down with it."""
    pid_file = tmp_path / "pid"
    script = spawner(pid_file, new_session=True, keep_pipes=False, then_sleep=60)
    app = textwrap.dedent(
        f"""
        import asyncio, sys
        from engine.chat import ToolCall
        from engine.tools import ToolDefinition, run_tool
        tool = ToolDefinition.model_validate({{
            "name": "cmd", "parameters": {{"type": "object", "properties": {{}}}},
            "command": [sys.executable, "-c", {script!r}], "timeout_sec": 60,
        }})
        asyncio.run(run_tool(tool, ToolCall(id="1", name="cmd")))
        """
    )
    process = subprocess.Popen([sys.executable, "-c", app], cwd=REPO)
    try:
        child = read_pid(pid_file)
        assert is_alive(child)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert wait_dead(child), "the tool's child outlived the app"
