"""A person's session through a real terminal: the app in tmux at 80×24, keys sent in
bursts with `tmux send-keys` (as they arrive over SSH), the screen read back with
`tmux capture-pane`. Skipped where tmux is not installed.

It checks what the Pilot tests check through Textual's own driver: typed keys take
effect in order, Esc + Ctrl+N + a message + Enter typed at once keeps the message,
and Ctrl+Q while a reply streams saves it, marked as stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

CONFIG = """
[load]
context_length = 16384
threads = 1

[prediction]
max_tokens = -1
seed = 1
"""
"""Replies that run until stopped."""


class Tmux:
    def __init__(self, session: str, env: dict[str, str]) -> None:
        self.session = session
        self.env = env

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", *args], capture_output=True, text=True, env=self.env, check=True
        )
        return done.stdout

    def keys(self, *keys: str) -> None:
        """All in one send-keys: the app reads them in one go."""
        self.run("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-t", self.session, "-p")

    def alive(self) -> bool:
        done = subprocess.run(["tmux", "has-session", "-t", self.session], env=self.env,
                              capture_output=True)
        return done.returncode == 0

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if predicate(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen:\n{shown}")
            time.sleep(0.1)


def input_line(screen: str) -> str:
    """The message box's first line of text (the line under its top border)."""
    lines = screen.splitlines()
    top = max(i for i, line in enumerate(lines) if line.startswith("╭"))
    return lines[top + 1].strip("│ ").rstrip()


@pytest.fixture
def app_in_tmux(tmp_path: Path, tiny_model_path: Path) -> Iterator[tuple[Tmux, Path]]:
    config = tmp_path / "config" / "llamaterm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(CONFIG)
    data = tmp_path / "data"
    env = dict(os.environ)
    env.pop("LLAMATERM_CONFIG", None)
    # A tmux server of our own, so that nothing of the person's tmux is touched.
    env["TMUX_TMPDIR"] = str(tmp_path)
    env.pop("TMUX", None)
    command = (
        f"cd {REPO} && XDG_CONFIG_HOME={tmp_path / 'config'} XDG_DATA_HOME={data} "
        f"PYTHONPATH={REPO} {sys.executable} -m tui --model {tiny_model_path}"
    )
    tmux = Tmux("llamaterm-test", env)
    tmux.run("new-session", "-d", "-s", tmux.session, "-x", "80", "-y", "24", command)
    try:
        tmux.wait_for(lambda s: "Message the model" in s and "ctx 16384" in s)
        yield tmux, data / "llamaterm"
    finally:
        subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)


def titles(data: Path) -> set[str]:
    """The titles of the chats saved so far (a file being replaced is skipped)."""
    found = set()
    for path in (data / "chats").glob("*.json"):
        try:
            found.add(json.loads(path.read_text())["title"])
        except (OSError, ValueError, KeyError):
            continue
    return found


def test_a_session_typed_in_bursts(app_in_tmux: tuple[Tmux, Path]) -> None:
    tmux, data = app_in_tmux
    bursts = [
        (("abc", "BSpace", "XY"), "abXY"),
        (("C-u", "hello", "C-u", "world"), "world"),
        (("C-u", "abc", "Left", "XY"), "abXYc"),
    ]
    for keys, expected in bursts:
        tmux.keys(*keys)
        shown = tmux.wait_for(lambda s, e=expected: input_line(s) == e, timeout=10)  # type: ignore[misc]
        assert input_line(shown) == expected

    # A long reply; then Esc, Ctrl+N, a message and Enter, all at once.
    tmux.keys("End", "C-u", "Go on and on", "Enter")
    tmux.wait_for(lambda s: "generating" in s)
    tmux.keys("Escape", "C-n", "Hello again", "Enter")
    # The message shows in the box at once, and the first reply's "generating" may linger
    # on a busy machine: wait for the second chat on disk (it is saved when it is sent,
    # after the first reply stopped), then for its reply to stream.
    deadline = time.monotonic() + 60
    while "Hello again" not in titles(data):
        assert time.monotonic() < deadline, tmux.screen()
        time.sleep(0.1)
    tmux.wait_for(lambda s: "generating" in s and "Hello again" not in input_line(s))
    # Ctrl+Q while the second reply streams: it is saved, marked as stopped.
    tmux.keys("C-q")
    deadline = time.monotonic() + 30
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tmux.alive(), "the app did not quit"

    chats = [json.loads(p.read_text()) for p in (data / "chats").glob("*.json")]
    by_title = {chat["title"]: chat for chat in chats}
    assert set(by_title) == {"Go on and on", "Hello again"}
    for chat in chats:
        roles = [m["role"] for m in chat["chat"]["messages"]]
        assert roles == ["user", "assistant"], chat["title"]
        assert chat["stats"]["1"]["stop_reason"] == "userStopped"
