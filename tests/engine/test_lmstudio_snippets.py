"""LM Studio's text-completion snippets, run unchanged but for the import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SNIPPETS = Path(__file__).parent / "snippets"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def snippet_env(tmp_path: Path, tiny_model_path: Path) -> dict[str, str]:
    """A data dir whose catalog holds the tiny model under the name the snippets ask for."""
    models = tmp_path / "data" / "llamaterm" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_model_path, models / "qwen2.5-7b-instruct.gguf")
    config = tmp_path / "config.toml"
    config.write_text('[model]\ndefault = "qwen2.5-7b-instruct"\n\n[load]\ncontext_length = 1024\n')
    env = dict(os.environ)
    env.update(
        XDG_DATA_HOME=str(tmp_path / "data"),
        LLAMATERM_CONFIG=str(config),
        PYTHONPATH=str(REPO),
    )
    return env


def run_snippet(name: str, env: dict[str, str], stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, str(SNIPPETS / name)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_text_completion_snippet(snippet_env: dict[str, str]) -> None:
    out = run_snippet("text_completion.py", snippet_env)
    assert "Model used: tiny-test-model" in out
    predicted = int(out.split("Predicted tokens:")[1].split()[0])
    assert 1 <= predicted <= 100
    assert "Time to first token (seconds): 0." in out
    assert "Stop reason: " in out
    assert "Custom params stop reason: " in out


def test_progress_callback_snippet(snippet_env: dict[str, str]) -> None:
    out = run_snippet("progress_callbacks.py", snippet_env)
    lines = [line for line in out.splitlines() if line.endswith("% complete")]
    assert lines[0] == "0.0% complete"
    assert lines[-1] == "100.0% complete"


def test_terminal_simulation_snippet(snippet_env: dict[str, str]) -> None:
    out = run_snippet("terminal_simulation.py", snippet_env, stdin="ls -la\npwd\nexit\n")
    # Each command got a reply and a fresh prompt; the stop string "$" never leaks into a reply.
    assert out.count("$ ") == 3
    replies = out.split("$ ")[1:-1]
    assert all("$" not in reply for reply in replies)


# --- chat completion (seeds 001 and 002) ---------------------------------------


@pytest.fixture
def chat_env(snippet_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    # Replies are capped so the random-weight model, which rarely stops, stays quick.
    config = Path(snippet_env["LLAMATERM_CONFIG"])
    config.write_text(config.read_text() + "\n[prediction]\nmax_tokens = 24\n")
    return snippet_env


def test_chat_respond_snippet(chat_env: dict[str, str]) -> None:
    out = run_snippet("chat_respond.py", chat_env)
    assert len(out.strip().splitlines()) >= 1


def test_chat_object_snippet(chat_env: dict[str, str]) -> None:
    out = run_snippet("chat_object.py", chat_env)
    assert "Model used: tiny-test-model" in out
    predicted = int(out.split("Predicted tokens:")[1].split()[0])
    assert 1 <= predicted <= 50
    assert "Stop reason: maxPredictedTokensReached" in out or "Stop reason: eosFound" in out


def test_chat_loop_snippet_keeps_the_conversation(chat_env: dict[str, str]) -> None:
    out = run_snippet("chat_loop.py", chat_env, stdin="Hello\nHow are you?\n\n")
    assert out.count("Bot: ") == 2
    # system + (user + assistant) x 2: on_message=chat.append added each reply.
    assert "TURNS: 5" in out


def test_chat_progress_snippet(chat_env: dict[str, str]) -> None:
    out = run_snippet("chat_progress.py", chat_env)
    lines = [line for line in out.splitlines() if line.endswith("% complete")]
    assert lines[0] == "0.0% complete" and lines[-1] == "100.0% complete"
