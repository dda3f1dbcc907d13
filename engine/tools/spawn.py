"""Starting a command tool so that nothing it starts outlives the call, and stopping it.

On Linux the command runs under the reaper (engine/tools/reaper.py, a small process of
its own: a child subreaper with parent-death signals), which kills every descendant of
the command when the command exits, when it is told to stop, and when the app dies;
`setsid` and double forks included. Its docstring says what it cannot catch.

Elsewhere (or without a Python interpreter to run it) the command runs directly in a
session and process group of its own, and the group is killed when the command exits
or is stopped: a child that leaves the group (`setsid`) escapes that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REAPER = Path(__file__).with_name("reaper.py")

_START_ERRORS: dict[str, type[OSError]] = {
    "FileNotFoundError": FileNotFoundError,
    "PermissionError": PermissionError,
}


def reaper_available() -> bool:
    """Whether commands run under the reaper here."""
    return sys.platform.startswith("linux") and bool(sys.executable) and REAPER.is_file()


@dataclass
class RunningCommand:
    """A started command: the process the app waits on (the reaper, or the command)."""

    process: asyncio.subprocess.Process
    status_fd: int | None
    """The read end of the reaper's status pipe; None when the command runs directly."""
    exit_code: int | None = None
    """The command's exit status once it ended (negative: the signal that killed it)."""
    start_error: OSError | None = None
    """Why the command could not be started, as the reaper reported it."""

    def stop(self) -> None:
        """Kill the command and everything it started; returns at once (no awaiting, so
        it also works while the caller is being cancelled)."""
        if self.status_fd is None:
            self.kill_group()
            return
        # SIGTERM, not SIGKILL: the reaper needs a moment to kill the tree under it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.process.returncode is None:
                os.kill(self.process.pid, signal.SIGTERM)

    def kill_group(self) -> None:
        """SIGKILL the process group the command started in."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if hasattr(os, "killpg"):
                os.killpg(self.process.pid, signal.SIGKILL)
            else:  # pragma: no cover - Windows has no process groups to kill
                self.process.kill()

    async def wait(self) -> None:
        """Wait for the command to end, then see that nothing it started is left."""
        if self.status_fd is None:
            # Not process.wait(): asyncio's also waits for the pipes to close, which a
            # background child holding them would put off until the timeout.
            while self.process.returncode is None:
                await asyncio.sleep(0.02)
            # Background children still in the group must not outlive the command.
            self.kill_group()
            self.exit_code = self.process.returncode
            await self.process.wait()
        else:
            # The reaper has killed what the command left before it exits, so the pipes
            # close with it.
            await self.process.wait()
            self._read_status()

    def close(self) -> None:
        if self.status_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.status_fd)
            self.status_fd = None

    def _read_status(self) -> None:
        assert self.status_fd is not None
        data = b""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.status_fd, 4096):
                data += chunk
        for line in data.decode("utf-8", "replace").splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "exit":
                with contextlib.suppress(ValueError):
                    self.exit_code = int(rest)
            elif kind == "error":
                name, _, message = rest.partition("\t")
                self.start_error = _START_ERRORS.get(name, OSError)(message)


async def start_command(
    argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str]
) -> RunningCommand:
    """Start `argv` with stdin closed and stdout/stderr piped.

    Raises what starting a process raises (FileNotFoundError, PermissionError, OSError,
    ValueError for a NUL in an argument) when that is known at once; under the reaper a
    missing program is found later and lands in `start_error`.
    """
    devnull, pipe = asyncio.subprocess.DEVNULL, asyncio.subprocess.PIPE
    if not reaper_available():
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=dict(env), start_new_session=True,
            stdin=devnull, stdout=pipe, stderr=pipe,
        )
        return RunningCommand(process, None)
    for element in argv:
        if "\0" in element:
            raise ValueError("embedded null byte")
    read_fd, write_fd = os.pipe()
    try:
        os.set_blocking(read_fd, False)
        process = await asyncio.create_subprocess_exec(
            # -I -S: the tool's env (PYTHONPATH, ...) and site packages do not reach the
            # reaper; it needs only the standard library and starts in ~20 ms.
            sys.executable, "-I", "-S", str(REAPER), str(write_fd), str(os.getpid()), *argv,
            cwd=cwd,
            env=dict(env),
            # Its own session and group: the terminal's Ctrl+C does not reach the tool,
            # and the group is a last resort if the reaper itself fails.
            start_new_session=True,
            pass_fds=(write_fd,),
            stdin=devnull,
            stdout=pipe,
            stderr=pipe,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return RunningCommand(process, read_fd)
