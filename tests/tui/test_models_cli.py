"""`llamaterm models ...`: list, info, search and download, headless."""

from __future__ import annotations

import _thread
import argparse
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import GOOD_TOKEN, HostedRepo, HubServer, default_repos
from huggingface_hub import constants as hf_constants

from engine.models import catalog as model_catalog
from engine.models import download as hub_download
from engine.models import hub
from engine.models.catalog import clear_info_cache
from engine.models.remembered import ModelSettingsStore
from engine.settings import PathsSettings, Settings
from tui.cli.models import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ProgressPrinter,
    add_models_parser,
    format_progress,
    run_models,
)

TINY = "tester/tiny-GGUF"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llamaterm")
    add_models_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["models", *argv])


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A data directory of our own, no HF cache or LM Studio folder of the person's, and
    no starter model (installed or not here; `starter` puts one in)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(model_catalog, "starter_chunks", tuple)
    clear_info_cache()
    return Settings(
        paths=PathsSettings(data_dir=tmp_path / "data", model_dirs=[tmp_path / "extra"])
    )


@pytest.fixture
def models(settings: Settings) -> Path:
    folder = settings.data_dir() / "models"
    folder.mkdir(parents=True)
    return folder


def run(
    args: argparse.Namespace, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = run_models(args, settings)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- list and info ---------------------------------------------------------------------


def test_list_shows_models_and_broken_files(
    settings: Settings, models: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (models / "tiny.gguf").write_bytes(tiny_model_path.read_bytes())
    (models / "broken.gguf").write_bytes(b"nope")
    code, out, _ = run(parse("list"), settings, capsys)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "PARAMS", "QUANT", "SIZE", "CONTEXT", "ARCH", "WHERE"]
    assert any(line.startswith("tiny ") and "F16" in line and "2048" in line for line in lines)
    assert "  ! broken: not a GGUF file" in out
    # `llamaterm models` alone lists too.
    assert run(parse(), settings, capsys)[1] == out


def test_list_json(
    settings: Settings, models: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (models / "tiny.gguf").write_bytes(tiny_model_path.read_bytes())
    code, out, _ = run(parse("list", "--json"), settings, capsys)
    assert code == EXIT_OK
    payload = json.loads(out)
    (model,) = payload["models"]
    assert model["key"] == "tiny" and model["architecture"] == "llama"
    assert model["source"] == "models_dir" and model["error"] is None


def test_list_with_no_models(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(parse("list"), settings, capsys)
    assert code == EXIT_OK and out.startswith("no local models")


@pytest.fixture
def starter(monkeypatch: pytest.MonkeyPatch, tiny_model_path: Path) -> Path:
    """A starter package holding the tiny model (one chunk), not yet assembled."""
    monkeypatch.setattr(model_catalog, "starter_chunks", lambda: (tiny_model_path,))
    return tiny_model_path


def test_a_fresh_install_lists_the_starter(
    settings: Settings,
    starter: Path,
    models: Path,
    tiny_model_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(parse("list"), settings, capsys)
    assert code == EXIT_OK
    (row,) = out.splitlines()[1:]
    assert row.startswith("gemma-3-270m-q4_k_m ") and "llama" in row
    assert row.endswith("starter, assembled on first load")
    payload = json.loads(run(parse("list", "--json"), settings, capsys)[1])
    (model,) = payload["models"]
    assert model["source"] == "starter"
    assert not (models / "gemma-3-270m-q4_k_m.gguf").exists(), "listing assembles nothing"

    # Another model comes first; the starter stays listed after it.
    (models / "tiny.gguf").write_bytes(tiny_model_path.read_bytes())
    lines = run(parse("list"), settings, capsys)[1].splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["tiny", "gemma-3-270m-q4_k_m"]
    code, out, _ = run(parse("info", "gemma-3-270m"), settings, capsys)
    assert code == EXIT_OK and "where  starter, assembled on first load" in out


def test_info_by_key_uses_remembered_settings(
    settings: Settings, models: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (models / "tiny.gguf").write_bytes(tiny_model_path.read_bytes())
    ModelSettingsStore(settings.data_dir()).remember("tiny", {"context_length": 1024})
    code, out, _ = run(parse("info", "tiny"), settings, capsys)
    assert code == EXIT_OK
    assert "architecture  llama" in out
    assert "load: context 1024" in out
    assert "KV cache (1024 tokens, f16)" in out
    assert "fits: needs" in out or "does not fit: needs" in out


def test_info_json_with_overrides(
    settings: Settings, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(
        "info", str(tiny_model_path), "--json", "--context-length", "512", "--gpu-layers", "max"
    )
    code, out, _ = run(args, settings, capsys)
    assert code == EXIT_OK
    payload = json.loads(out)
    assert payload["model"]["path"] == str(tiny_model_path)
    assert payload["load"]["context_length"] == 512 and payload["load"]["gpu_layers"] == "max"
    assert isinstance(payload["fit"]["fits"], bool) and payload["fit"]["ram_needed"] > 0


def test_info_on_a_broken_file_and_an_unknown_key(
    settings: Settings, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = models / "broken.gguf"
    broken.write_bytes(b"\0" * 64)
    code, out, _ = run(parse("info", str(broken)), settings, capsys)
    assert code == EXIT_ERROR and "error  not a GGUF file" in out
    code, _, err = run(parse("info", "no-such-model"), settings, capsys)
    assert code == EXIT_ERROR and "no local model matches" in err


# --- the Hub -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> list[HostedRepo]:
    return default_repos(tmp_path_factory.mktemp("hosted"))


@pytest.fixture
def server(
    hosted: list[HostedRepo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubServer]:
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub.forget_reachability()
    with HubServer(hosted) as running:
        monkeypatch.setenv("HF_ENDPOINT", running.url)
        yield running
    hub.forget_reachability()


def test_search(server: HubServer, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(parse("search", "tiny"), settings, capsys)
    assert code == EXIT_OK
    assert out.splitlines()[0].split() == ["REPOSITORY", "DOWNLOADS", "LIKES", "UPDATED", "PARAMS"]
    assert out.splitlines()[1].split()[:2] == [TINY, "500"]
    assert "gated/tiny-GGUF (gated)" in out
    code, out, _ = run(parse("search", "tiny", "--sort", "recent", "--json"), settings, capsys)
    assert [m["repo_id"] for m in json.loads(out)] == [TINY, "gated/tiny-GGUF"]


def test_download_without_a_file_lists_the_files(
    server: HubServer, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(parse("download", TINY), settings, capsys)
    assert code == EXIT_OK
    assert "tiny-Q4_K_M.gguf" in out and "projector" in out
    code, out, _ = run(parse("download", "tester/split-GGUF", "--json"), settings, capsys)
    (split,) = json.loads(out)["files"]
    assert len(split["parts"]) == 3


def test_download_by_file_name_and_by_quantisation(
    server: HubServer, settings: Settings, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(parse("download", TINY, "tiny-Q4_K_M.gguf"), settings, capsys)
    assert code == EXIT_OK
    path = Path(out.strip())
    assert path == models / "tester" / "tiny-GGUF" / "tiny-Q4_K_M.gguf" and path.is_file()
    assert "tiny-Q4_K_M.gguf" in err and "done" in err  # progress went to stderr
    code, out, _ = run(parse("download", TINY, "q8_0", "--json"), settings, capsys)
    assert code == EXIT_OK
    assert json.loads(out)["file"] == "tiny-Q8_0.gguf"
    code, out, _ = run(parse("list", "--json"), settings, capsys)
    assert {m["key"] for m in json.loads(out)["models"]} == {"tiny-q4_k_m", "tiny-q8_0"}


def test_download_errors_are_one_line(
    server: HubServer,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(parse("download", "gated/tiny-GGUF", "tiny-Q4_K_M.gguf"), settings, capsys)
    assert code == EXIT_ERROR and out == ""
    assert err.startswith("llamaterm: gated/tiny-GGUF is gated") and err.count("\n") == 1
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    code, _, err = run(parse("download", TINY, "Q2_K"), settings, capsys)
    assert code == EXIT_ERROR and "no GGUF file 'Q2_K'" in err


def test_ctrl_c_cancels_a_download_and_the_next_run_resumes(
    server: HubServer, settings: Settings, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl+C arrives in the main thread while the download runs on its own: the stand-in
    # Hub sends one chunk, presses Ctrl+C, and holds the rest back until the run is over,
    # so the download cannot finish first however busy the machine is.
    release = threading.Event()

    def interrupt_once(sent: int) -> None:
        if not release.is_set():
            _thread.interrupt_main()
            release.wait(timeout=30)

    server.on_chunk = interrupt_once
    try:
        code, out, err = run(parse("download", TINY, "tiny-Q4_K_M.gguf"), settings, capsys)
    finally:
        release.set()
        server.on_chunk = None
    assert code == EXIT_INTERRUPTED and out == ""
    assert "download cancelled" in err and "resume" in err
    kept = hub_download.partial_bytes(models, TINY, "tiny-Q4_K_M.gguf")
    assert kept > 0
    server.throttle = None
    code, out, _ = run(parse("download", TINY, "tiny-Q4_K_M.gguf"), settings, capsys)
    assert code == EXIT_OK and Path(out.strip()).stat().st_size == len(
        server.repos[TINY].files["tiny-Q4_K_M.gguf"]
    )
    assert server.downloads()[-1].headers["range"] == f"bytes={kept}-"


def test_no_network(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.forget_reachability()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run(parse("search", "tiny"), settings, capsys)
    assert code == EXIT_ERROR and out == ""
    assert err == "llamaterm: offline mode is on (HF_HUB_OFFLINE): the Hub is not contacted\n"


# --- progress output -----------------------------------------------------------------------


def test_progress_lines() -> None:
    progress = hub_download.DownloadProgress(
        filename="Q4_K_M/model-00002-of-00003.gguf",
        part=2,
        parts=3,
        bytes_done=1_500_000_000,
        total=3_000_000_000,
        speed=25_000_000.0,
        eta=60.0,
    )
    assert format_progress(progress) == (
        "model-00002-of-00003.gguf (part 2/3)   50.0%  1.5 GB / 3.0 GB  25.0 MB/s  1m00s left"
    )


def test_progress_printer_in_a_pipe_prints_every_tenth(tmp_path: Path) -> None:
    lines: list[str] = []

    class Pipe:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    printer = ProgressPrinter(Pipe())  # type: ignore[arg-type]
    for done in range(101):
        printer(hub_download.DownloadProgress("f.gguf", 1, 1, done, 100, 1.0, 1.0))
    assert len(lines) == 11


def test_the_cli_never_imports_textual_and_its_parser_no_engine(tmp_path: Path) -> None:
    code = (
        "import sys, argparse, tui.cli.models as cli;"
        "cli.add_models_parser(argparse.ArgumentParser().add_subparsers());"
        "assert 'engine' not in sys.modules, 'engine imported';"
        "from engine.models import hub; assert cli.SORT_CHOICES == hub.SORT_ORDERS;"
        "cli.run_models(argparse.Namespace(models_command='list', json=True), __import__("
        "'engine.settings').settings.Settings());"
        "sys.exit('textual' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "HF_HUB_CACHE": str(tmp_path / "hf"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        timeout=60,
        check=False,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.returncode == 0
