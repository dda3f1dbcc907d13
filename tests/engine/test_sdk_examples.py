"""The LM Studio SDK's text-only examples (tests/data/sdk_examples), each run to the end
in a fresh interpreter with `import engine as lms`, on the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "sdk_examples"
REPO = Path(__file__).resolve().parents[2]
MODEL_KEY = "qwen2.5-7b-instruct-1m"
"""The key the SDK's examples ask for; the catalog holds the tiny model under it."""


@pytest.fixture
def example_env(tmp_path: Path, tiny_model_path: Path) -> dict[str, str]:
    models = tmp_path / "data" / "llamaterm" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_model_path, models / f"{MODEL_KEY}.gguf")
    config = tmp_path / "config.toml"
    # `lms.llm()` with no key loads the configured default, as LM Studio's loaded model.
    # A seed makes each run the same; replies are capped so the random model stays quick.
    config.write_text(
        f'[model]\ndefault = "{MODEL_KEY}"\n\n[load]\ncontext_length = 2048\n\n'
        "[prediction]\nmax_tokens = 24\nseed = 7\n"
    )
    env = dict(os.environ)
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), LLAMATERM_CONFIG=str(config),
               PYTHONPATH=str(REPO))
    return env


def run_example(name: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        input=stdin, capture_output=True, text=True, env=env, timeout=240, check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_imports_engine_not_lmstudio() -> None:
    for script in EXAMPLES.glob("*.py"):
        text = script.read_text()
        assert "import engine as lms" in text and "lmstudio" not in text, script.name


def test_chatbot(example_env: dict[str, str]) -> None:
    out = ok(run_example("chatbot.py", example_env, stdin="Hello\nAnd then?\n\n"))
    assert out.count("Bot: ") == 2


def test_structured_response(example_env: dict[str, str]) -> None:
    # The schema's grammar writes JSON of any length: no reply cap for this one.
    config = Path(example_env["LLAMATERM_CONFIG"])
    config.write_text(config.read_text().replace("max_tokens = 24", "max_tokens = -1")
                      .replace("context_length = 2048", "context_length = 4096"))
    book = json.loads(ok(run_example("structured_response.py", example_env)))
    assert isinstance(book, dict) and list(book) == ["title", "author", "year"]
    assert isinstance(book["year"], int)


def test_terminal_sim(example_env: dict[str, str]) -> None:
    out = ok(run_example("terminal_sim.py", example_env, stdin="ls -la\npwd\nexit\n"))
    assert out.count("$ ") == 3
    assert all("$" not in reply for reply in out.split("$ ")[1:-1])


def test_tool_use(example_env: dict[str, str]) -> None:
    out = ok(run_example("tool_use.py", example_env))
    # print(chat): the turns act added through on_message=chat.append.
    assert out.startswith("assistant")


def test_tool_use_multiple(example_env: dict[str, str]) -> None:
    out = ok(run_example("tool_use_multiple.py", example_env))
    assert "role='assistant'" in out


def test_speculative_decoding_is_refused_with_the_reason(example_env: dict[str, str]) -> None:
    done = run_example("speculative_decoding.py", example_env)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("engine.errors.PredictionConfigError: invalid prediction config: "
                           "draftModel: speculative decoding with a draft model is not supported")
