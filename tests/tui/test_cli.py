"""The `llamaterm` command line: headless completion and config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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


def llamaterm(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_complete_streams_to_stdout_and_stats_to_stderr(
    env: dict[str, str], tiny_model_path: Path
) -> None:
    done = llamaterm(
        "complete", "--model", str(tiny_model_path), "-n", "8", "--seed", "1", "hello", env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert "8 tokens" in done.stderr and "stop: maxPredictedTokensReached" in done.stderr


def test_complete_reads_stdin_and_prints_json(env: dict[str, str], tiny_model_path: Path) -> None:
    done = llamaterm(
        "complete", "-m", str(tiny_model_path), "--json", "--stop", "c", env=env, stdin="go",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "c" not in result["content"]
    assert result["model_info"]["architecture"] == "llama"
    assert result["stats"]["prompt_tokens_count"] >= 1


def test_bad_config_names_file_and_key_and_is_not_rewritten(env: dict[str, str]) -> None:
    config = Path(env["XDG_CONFIG_HOME"]) / "llamaterm" / "config.toml"
    config.parent.mkdir(parents=True)
    original = b"[load]\ncontext_length = 'big'\n"
    config.write_bytes(original)
    done = llamaterm("complete", "hi", env=env)
    assert done.returncode == 2
    assert str(config) in done.stderr and "load.context_length" in done.stderr
    assert config.read_bytes() == original


def test_missing_model_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    done = llamaterm("complete", "-m", str(tmp_path / "gone.gguf"), "hi", env=env)
    assert done.returncode == 1
    assert "not found" in done.stderr and "gone.gguf" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_prediction_value_is_a_clear_error(env: dict[str, str], tiny_model_path: Path) -> None:
    done = llamaterm("complete", "-m", str(tiny_model_path), "-t", "-2", "hi", env=env)
    assert done.returncode == 2
    assert "temperature" in done.stderr and "Traceback" not in done.stderr


def test_chat_repl_in_a_pipe(env: dict[str, str], tiny_model_path: Path) -> None:
    done = llamaterm(
        "chat", "-m", str(tiny_model_path), "-n", "6", "--system", "Be terse.",
        env=env, stdin="hello\n\nhow are you\n",
    )
    assert done.returncode == 0, done.stderr
    # Two answers, one per non-empty line, each followed by its stats on stderr.
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr.count("stop: maxPredictedTokensReached") == 2
    # The second turn reused the first one's cache.
    second = done.stderr.splitlines()[-1]
    prompt, evaluated = second.split("prompt ")[1].split(" evaluated")[0].split(" (")
    assert int(evaluated) < int(prompt)


def test_chat_json_one_shot(env: dict[str, str], tiny_model_path: Path) -> None:
    done = llamaterm("chat", "-m", str(tiny_model_path), "-n", "4", "--json", "--no-thinking",
                     "What is up?", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["stats"]["predicted_tokens_count"] == 4
    assert result["model_info"]["chat_template"] == "tiny-test-model (from GGUF)"


def test_a_headless_command_runs_without_textual(env: dict[str, str], tiny_model_path: Path) -> None:
    # Textual is for the app only: `python -m tui complete` must not even import it.
    code = (
        "import sys; from tui.__main__ import main;"
        f"code = main(['complete', '-m', {str(tiny_model_path)!r}, '-n', '2', 'hi']);"
        "assert 'textual' not in sys.modules, 'textual imported';"
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
