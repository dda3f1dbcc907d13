"""Every surface loads a model through the one loader (engine.models.loader), so a setting
remembered in the Models screen reaches `llamaterm chat`, `llamaterm serve` and the app
alike. Before, only the app read model_settings.json: `chat --json` reported the config's
context length and `serve` ignored what was remembered."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from tui_testing import wait_for_model, wait_until

from engine.models.remembered import ModelSettingsStore
from tui.app import LlamatermApp

REPO = Path(__file__).resolve().parents[2]
# No LM Studio SDK port: 41343 is for the tests that mean to bind it.
CONFIG = "[load]\ncontext_length = 2048\nthreads = 1\n[server]\nsdk_port = 0\n"
REMEMBERED = 1024


@pytest.fixture
def home(tmp_path: Path, tiny_model_path: Path) -> Path:
    """Config and data directories: [load] says 2048, the Models screen remembered 1024
    for the model `tiny` in the data directory's models/."""
    data = tmp_path / "data" / "llamaterm"
    (data / "models").mkdir(parents=True)
    shutil.copyfile(tiny_model_path, data / "models" / "tiny.gguf")
    config = tmp_path / "config" / "llamaterm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(CONFIG)
    ModelSettingsStore(data).remember("tiny", {"context_length": REMEMBERED})
    return tmp_path


def environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        PYTHONPATH=str(REPO),
    )
    env.pop("LLAMATERM_CONFIG", None)
    return env


def test_chat_json_reports_the_remembered_context_length(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tui", "chat", "-m", "tiny", "-n", "2", "--json", "--no-thinking",
         "hi"],
        capture_output=True, text=True, env=environment(home), timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model_info"]["context_length"] == REMEMBERED


def test_complete_options_win_over_the_remembered_settings(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tui", "complete", "-m", "tiny", "-n", "1", "--json",
         "--context-length", "512", "hi"],
        capture_output=True, text=True, env=environment(home), timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model_info"]["context_length"] == 512


def test_serve_loads_the_model_with_the_remembered_settings(home: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "-m", "tiny", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment(home),
    )
    try:
        assert server.stderr is not None
        url = ""
        for line in server.stderr:
            if line.startswith("serving "):
                url = line.split(" at ", 1)[1].strip()
                break
        assert url, "the server did not start"
        with urllib.request.urlopen(f"{url}/models", timeout=30) as response:
            models = json.load(response)["data"]
        assert [(m["id"], m["context_length"]) for m in models] == [("tiny", REMEMBERED)]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def test_the_app_loads_through_the_loader_and_says_what_it_ignored(
    make_app: Callable[..., LlamatermApp], isolated: Path, tiny_model_path: Path
) -> None:
    models = isolated / "models"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_model_path, models / "tiny.gguf")
    # Remembered by hand or by an older version: a context the schema no longer allows.
    entries = {"tiny": {"context_length": 4}, "other": {"threads": -1}}
    (isolated / "model_settings.json").write_text(
        json.dumps({"schema_version": 1, "models": entries})
    )
    app = make_app(model="tiny")
    async with app.run_test() as pilot:
        await wait_for_model(pilot)
        assert app.model is not None and app.model.key == "tiny"
        assert app.model.info is not None and app.model.info.context_length == 512
        # Not applied, and the app says so; another model's entry is not this load's business.
        await wait_until(pilot, lambda: bool(app._notifications))
        shown = [str(n.message) for n in app._notifications]
        assert any("tiny: ignored" in message for message in shown), shown
        assert not any("other" in message for message in shown), shown
