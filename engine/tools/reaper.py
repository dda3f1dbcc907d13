"""The reaper: a tiny process that runs one command tool and takes everything it started
down with it. Run as a script (`python -I -S reaper.py STATUS_FD PARENT_PID ARGV...`),
never imported by the engine, so it uses the standard library only.

Why a process of its own: a command can leave its process group (`setsid`, a daemon's
double fork), so killing the group misses what it started. The reaper marks itself a
child subreaper (`PR_SET_CHILD_SUBREAPER`): every process the command starts that is
orphaned is re-parented to the reaper instead of to init, so "everything the command
started" is exactly "every descendant of the reaper", found in /proc. The app cannot
be the subreaper itself: it would inherit the orphans of every other child it runs.

- When the command exits, the reaper kills every remaining descendant, so a background
  child does not outlive the call (and does not hold the output pipes open).
- On SIGTERM (the app's timeout or cancel) it does the same at once.
- It asks for SIGTERM when the app dies (`PR_SET_PDEATHSIG`), and the command for
  SIGKILL when the reaper dies, so an app killed with SIGKILL leaves nothing behind.

It reports on STATUS_FD, one line each: `started PID`, then `exit CODE` (negative: the
signal that killed the command), or `error KIND<TAB>MESSAGE` when the command could not
be started. Its own exit status carries no meaning.

Limits: a process that asks another one to start something (systemd-run, a D-Bus
service, `at`) is outside the tree, and so is a descendant that was moved into another
PID namespace; only a cgroup could catch those, and cgroups are rarely writable for an
ordinary user. Stopping uses SIGKILL, so a tool gets no chance to clean up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# A tool that forks faster than it can be killed gets this long before the reaper gives up.
KILL_DEADLINE_SEC = 5.0


class _Stop(Exception):
    """Raised by the SIGTERM handler to leave the wait at once."""


def _prctl() -> Callable[..., int]:
    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.prctl
    function.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _descendants(root: int) -> list[int]:
    """Every process below `root`, from the parent pid of each process in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # it ended while we looked
        # The command name is in parentheses and may hold anything, so split after the last ')'.
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


class Reaper:
    def __init__(self, status_fd: int) -> None:
        self.status_fd = status_fd
        self.child: int | None = None
        self.code: int | None = None

    def report(self, line: str) -> None:
        try:
            os.write(self.status_fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
        except OSError:
            pass  # the app is gone; there is nobody to tell

    def reap(self, block: bool) -> bool:
        """Collect exited children (the command, and orphans re-parented to us);
        False when there are no children left."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.child and self.code is None:
                self.code = os.waitstatus_to_exitcode(status)
                if block:
                    return True

    def kill_all(self) -> None:
        """SIGKILL every descendant until none is left (new ones a dying tool forked are
        re-parented to us and found on the next round)."""
        deadline = time.monotonic() + KILL_DEADLINE_SEC
        me = os.getpid()
        while True:
            self.reap(block=False)
            remaining = _descendants(me)
            if not remaining or time.monotonic() > deadline:
                return
            for pid in remaining:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.002)


def main(argv: list[str]) -> None:
    status_fd, parent, command = int(argv[1]), int(argv[2]), argv[3:]
    reaper = Reaper(status_fd)

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    prctl = _prctl()
    try:
        if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            raise _Stop  # the app died before the death signal was armed
        me = os.getpid()

        def in_child() -> None:
            # Runs between fork and exec in the command; the reaper has one thread, so
            # this is safe here (it would not be in the app).
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != me:
                os._exit(127)

        try:
            child = subprocess.Popen(command, preexec_fn=in_child)
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            reaper.report(f"error {type(err).__name__}\t{err}")
            return
        reaper.child = child.pid
        reaper.report(f"started {child.pid}")
        while reaper.code is None and reaper.reap(block=True):
            pass
    except _Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reaper.kill_all()
    if reaper.child is not None and reaper.code is None:
        reaper.reap(block=False)
    if reaper.child is not None:
        reaper.report(f"exit {reaper.code if reaper.code is not None else -signal.SIGKILL}")


if __name__ == "__main__":
    main(sys.argv)
    # No interpreter shutdown: nothing is left to flush, and it is faster.
    os._exit(0)
