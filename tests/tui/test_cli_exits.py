"""How the headless commands end: Ctrl+C mid-generation, and a reader that went away.

Ctrl+C must stop the prediction, let the model's thread finish, print the text so
far and the stats, and exit 130, never with a traceback (before: KeyboardInterrupt,
then PredictionNotFinished, then rc 1 or a segfault). A closed pipe ends a command
quietly. Each test waits for the command's first output, never for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

ENDLESS = ["--max-tokens", "100000", "--context-length", "16384", "--seed", "1"]
"""Generation that would run for minutes: only Ctrl+C (or a closed pipe) ends it soon."""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        PYTHONPATH=str(REPO),
    )
    environment.pop("LLAMATERM_CONFIG", None)
    return environment


def start(*args: str, env: dict[str, str], stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tui", *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def interrupt_after_first_output(process: subprocess.Popen[bytes]) -> tuple[bytes, str]:
    """Wait for the first byte on stdout, send SIGINT, and collect the rest."""
    assert process.stdout is not None
    first = process.stdout.read(1)
    assert first, "the command printed nothing"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return first + out, err.decode()


def predicted(stderr: str) -> int:
    """The predicted token count of the stats line ("12 tokens · … · stop: …")."""
    [line] = [line for line in stderr.splitlines() if "stop: " in line]
    match = re.search(r"(\d+) tokens? ·", line)  # "1 token" when Ctrl+C lands early
    assert match, line
    return int(match.group(1))


def test_ctrl_c_stops_complete_and_prints_the_text_and_stats(
    env: dict[str, str], tiny_model_path: Path
) -> None:
    process = start("complete", "-m", str(tiny_model_path), *ENDLESS, "Hello", env=env)
    out, err = interrupt_after_first_output(process)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "PredictionNotFinished" not in err, err
    assert out.rstrip(b"\n"), "the text so far is printed"
    assert "stop: userStopped" in err, err
    assert predicted(err) >= 1


def test_ctrl_c_stops_a_chat_reply_and_the_chat_exits_130_from_a_pipe(
    env: dict[str, str], tiny_model_path: Path
) -> None:
    process = start(
        "chat", "-m", str(tiny_model_path), *ENDLESS, env=env, stdin=subprocess.PIPE
    )
    assert process.stdin is not None
    # The pipe stays open: without Ctrl+C the chat would wait for the next line.
    process.stdin.write(b"Hello there\n")
    process.stdin.flush()
    out, err = interrupt_after_first_output(process)
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    assert out.rstrip(b"\n")
    assert "stop: userStopped" in err, err
    assert predicted(err) >= 1


@pytest.fixture
def served(
    env: dict[str, str], tiny_model_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "-m", str(tiny_model_path), "--port", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=env,
    )
    try:
        assert process.stderr is not None
        url = ""
        for line in process.stderr:
            if line.startswith("serving "):
                url = line.split(" at ", 1)[1].strip()
                break
        assert url, "the server did not start"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ctrl_c_stops_serve_while_a_reply_streams(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = served
    body = {"model": "x", "prompt": "Hello", "max_tokens": 100000, "stream": True}
    request = urllib.request.Request(
        f"{url}/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    streaming = threading.Event()

    def client() -> None:
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                for line in response:
                    if line.startswith(b"data: {"):
                        streaming.set()
        except OSError:
            pass  # the server went away mid-stream: expected
        finally:
            streaming.set()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    assert streaming.wait(60)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    assert "stopping" in err


@pytest.mark.parametrize(
    "args",
    [("models", "list", "--json"), ("models", "list"), ("--help",)],
    ids=["models-list-json", "models-list", "help"],
)
def test_a_closed_pipe_ends_a_command_quietly(env: dict[str, str], args: tuple[str, ...]) -> None:
    process = start(*args, env=env)
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the command writes
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err.decode() and "BrokenPipeError" not in err.decode(), err
    assert process.returncode in (0, 128 + signal.SIGPIPE)


def test_a_closed_pipe_stops_a_completion(env: dict[str, str], tiny_model_path: Path) -> None:
    process = start("complete", "-m", str(tiny_model_path), *ENDLESS, "Hello", env=env)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(1)
    process.stdout.close()  # as `| head -c 1` does
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert process.returncode == 128 + signal.SIGPIPE, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
