"""Hub search, listing and downloads against the local stand-in Hub (tests/hub_server.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from hub_server import GOOD_TOKEN, UNGRANTED_TOKEN, HostedRepo, HubServer, default_repos
from huggingface_hub import constants as hf_constants

from engine.errors import AccessDenied, DownloadCancelled, HubError, HubUnavailable, NotFound
from engine.models import download as downloads
from engine.models import hub
from engine.models.catalog import CatalogSource, scan_catalog
from engine.models.download import DownloadProgress
from engine.models.hub import HubFile

TINY = "tester/tiny-GGUF"
SPLIT = "tester/split-GGUF"


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> list[HostedRepo]:
    return default_repos(tmp_path_factory.mktemp("hosted"))


@pytest.fixture
def server(
    hosted: list[HostedRepo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubServer]:
    """A fresh stand-in Hub at HF_ENDPOINT, with no token and no login around."""
    for variable in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    hub.forget_reachability()
    with HubServer(hosted) as running:
        monkeypatch.setenv("HF_ENDPOINT", running.url)
        yield running
    hub.forget_reachability()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "data" / "models"


def file_bytes(server: HubServer, repo: str, name: str) -> bytes:
    return server.repos[repo].files[name]


# --- search and listing ------------------------------------------------------------------


def test_search_finds_gguf_repositories(server: HubServer) -> None:
    found = hub.search_models("tiny")
    assert [m.repo_id for m in found] == [TINY, "gated/tiny-GGUF"]  # most downloads first
    first = found[0]
    assert first.downloads == 500 and first.likes == 3
    assert first.parameter_count == 130752 and first.architecture == "llama"
    assert found[1].gated
    search = next(r for r in server.requests if r.path == "/api/models")
    assert search.query["filter"] == ["gguf"] and search.query["search"] == ["tiny"]


def test_search_sorts_and_limits(server: HubServer) -> None:
    recent = hub.search_models("", sort="recent")
    assert [m.repo_id for m in recent] == [SPLIT, TINY, "gated/tiny-GGUF"]
    assert recent[0].last_modified is not None and recent[0].last_modified.year == 2025
    assert len(hub.search_models("", limit=1)) == 1
    with pytest.raises(ValueError, match="unknown sort"):
        hub.search_models("x", sort="nope")  # type: ignore[arg-type]


def test_list_gguf_files(server: HubServer) -> None:
    files = hub.list_gguf_files(TINY)
    assert [(f.name, f.quantization, f.is_mmproj) for f in files] == [
        ("tiny-Q4_K_M.gguf", "Q4_K_M", False),
        ("tiny-Q8_0.gguf", "Q8_0", False),
        ("mmproj-tiny-F16.gguf", "F16", True),
    ]
    assert files[0].size == len(file_bytes(server, TINY, "tiny-Q4_K_M.gguf"))
    (split,) = hub.list_gguf_files(SPLIT)
    assert split.is_split and len(split.parts) == 3
    assert split.name == "Q4_K_M/split-Q4_K_M-00001-of-00003.gguf"
    assert split.size == sum(len(d) for d in server.repos[SPLIT].files.values())
    assert split.quantization == "Q4_K_M"


def test_file_names_and_parts() -> None:
    assert hub.quantization_of("Llama-3.2-1B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert hub.quantization_of("model.IQ2_XXS.gguf") == "IQ2_XXS"
    assert hub.quantization_of("gemma-3-270m-it-UD-Q8_K_XL.gguf") == "Q8_K_XL"
    assert hub.quantization_of("qwen3-8b-bf16.gguf") == "BF16"
    assert hub.quantization_of("model-fp16.gguf") == "F16"
    assert hub.quantization_of("notes.gguf") is None
    assert hub.split_parts("a/b-00002-of-00003.gguf") == [
        "a/b-00001-of-00003.gguf",
        "a/b-00002-of-00003.gguf",
        "a/b-00003-of-00003.gguf",
    ]
    assert hub.split_parts("plain.gguf") == ["plain.gguf"]
    files = [
        HubFile("m-Q4_K_M.gguf", ("m-Q4_K_M.gguf",), (10,), "Q4_K_M"),
        HubFile("m-Q8_0.gguf", ("m-Q8_0.gguf",), (20,), "Q8_0"),
        HubFile("mmproj-Q8_0.gguf", ("mmproj-Q8_0.gguf",), (1,), "Q8_0", is_mmproj=True),
    ]
    assert hub.pick_file(files, "q8_0").name == "m-Q8_0.gguf"
    assert hub.pick_file(files, "mmproj-Q8_0.gguf").is_mmproj
    with pytest.raises(NotFound, match="no GGUF file"):
        hub.pick_file(files, "Q2_K")


# --- downloads ---------------------------------------------------------------------------


def test_download_one_file(server: HubServer, models: Path) -> None:
    events: list[DownloadProgress] = []
    path = downloads.download(TINY, "tiny-Q4_K_M.gguf", models, progress=events.append)
    assert path == models / "tester" / "tiny-GGUF" / "tiny-Q4_K_M.gguf"
    assert path.read_bytes() == file_bytes(server, TINY, "tiny-Q4_K_M.gguf")
    assert events[-1].finished and events[-1].bytes_done == events[-1].total == path.stat().st_size
    done = [e.bytes_done for e in events]
    assert done == sorted(done)
    # The catalog sees it, with the repository it came from.
    (entry,) = scan_catalog([CatalogSource("models_dir", models)]).entries
    assert (entry.path, entry.repo_id, entry.ok) == (path, TINY, True)
    # A second download finds the file there and fetches nothing.
    before = len(server.downloads())
    assert downloads.download(TINY, "tiny-Q4_K_M.gguf", models) == path
    assert len(server.downloads()) == before


def test_download_a_split_model_by_any_part(server: HubServer, models: Path) -> None:
    events: list[DownloadProgress] = []
    path = downloads.download(
        SPLIT, "Q4_K_M/split-Q4_K_M-00002-of-00003.gguf", models, progress=events.append
    )
    folder = models / "tester" / "split-GGUF" / "Q4_K_M"
    assert path == folder / "split-Q4_K_M-00001-of-00003.gguf"
    assert sorted(p.name for p in folder.iterdir()) == [
        f"split-Q4_K_M-0000{n}-of-00003.gguf" for n in (1, 2, 3)
    ]
    total = sum(len(d) for d in server.repos[SPLIT].files.values())
    assert events[-1].total == events[-1].bytes_done == total
    assert {e.part for e in events} == {1, 2, 3} and events[-1].parts == 3
    (entry,) = scan_catalog([CatalogSource("models_dir", models)]).entries
    assert entry.is_split and entry.ok and entry.size_bytes == total


def test_cancel_stops_quickly_and_the_next_download_resumes(
    server: HubServer, models: Path
) -> None:
    name = "tiny-Q4_K_M.gguf"
    server.throttle = 100_000  # bytes per second: the file takes ~3 s
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(progress: DownloadProgress) -> None:
        if progress.bytes_done > 40_000 and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    with pytest.raises(DownloadCancelled, match="resume"):
        downloads.download(TINY, name, models, progress=on_progress, cancel=cancel)
    assert time.monotonic() - cancelled_at[0] < 1.0
    target = models / "tester" / "tiny-GGUF" / name
    assert not target.exists()
    kept = downloads.partial_bytes(models, TINY, name)
    assert 40_000 < kept < len(file_bytes(server, TINY, name))

    server.throttle = None
    events: list[DownloadProgress] = []
    path = downloads.download(TINY, name, models, progress=events.append)
    assert path.read_bytes() == file_bytes(server, TINY, name)
    assert events[0].resumed_bytes == kept
    assert server.downloads()[-1].headers["range"] == f"bytes={kept}-"
    assert downloads.partial_bytes(models, TINY, name) == 0


def test_a_dropped_connection_is_resumed_within_the_same_download(
    server: HubServer, models: Path
) -> None:
    server.drop_after = 50_000
    path = downloads.download(TINY, "tiny-Q8_0.gguf", models)
    assert path.read_bytes() == file_bytes(server, TINY, "tiny-Q8_0.gguf")
    ranges = [r.headers.get("range") for r in server.downloads()]
    assert ranges[0] is None and ranges[1] == "bytes=50000-"


def stop_early(server: HubServer, models: Path, name: str) -> None:
    """Start a slow download of `name` and cancel it after 20 kB, leaving a partial file."""
    cancel = threading.Event()
    server.throttle = 200_000

    def on_progress(progress: DownloadProgress) -> None:
        if progress.bytes_done > 20_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        downloads.download(TINY, name, models, progress=on_progress, cancel=cancel)
    server.throttle = None


def test_a_server_that_ignores_ranges_gets_a_clean_restart(server: HubServer, models: Path) -> None:
    name = "tiny-Q4_K_M.gguf"
    stop_early(server, models, name)
    server.ignore_ranges = True
    path = downloads.download(TINY, name, models)
    assert path.read_bytes() == file_bytes(server, TINY, name)


def test_a_damaged_download_is_caught_by_its_checksum(server: HubServer, models: Path) -> None:
    name = "tiny-Q4_K_M.gguf"
    target = models / "tester" / "tiny-GGUF" / name
    server.corrupt_next = True
    with pytest.raises(HubError, match="SHA-256"):
        downloads.download(TINY, name, models)
    assert not target.exists()
    assert downloads.partial_bytes(models, TINY, name) == 0
    assert scan_catalog([CatalogSource("models_dir", models)]).entries == []
    path = downloads.download(TINY, name, models)
    assert path.read_bytes() == file_bytes(server, TINY, name)


def test_a_partial_file_changed_before_the_resume_is_caught(
    server: HubServer, models: Path
) -> None:
    name = "tiny-Q4_K_M.gguf"
    stop_early(server, models, name)
    (partial,) = (models / "tester" / "tiny-GGUF").rglob("*.incomplete")
    kept = bytearray(partial.read_bytes())
    kept[100] ^= 0xFF
    partial.write_bytes(bytes(kept))
    with pytest.raises(HubError, match="SHA-256"):
        downloads.download(TINY, name, models)
    # The resume asked only for the rest: the old bytes were checked from disk.
    assert server.downloads()[-1].headers["range"] == f"bytes={len(kept)}-"
    assert downloads.download(TINY, name, models).read_bytes() == file_bytes(server, TINY, name)


def test_cdn_redirect_keeps_the_token_on_the_hub(
    server: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    server.cdn = True
    path = downloads.download(TINY, "tiny-Q4_K_M.gguf", models)
    assert path.read_bytes() == file_bytes(server, TINY, "tiny-Q4_K_M.gguf")
    head = next(r for r in server.requests if r.method == "HEAD" and "/resolve/" in r.path)
    assert head.headers["authorization"] == f"Bearer {GOOD_TOKEN}"
    (body,) = server.downloads()
    assert body.path.startswith("/cdn/") and "authorization" not in body.headers


# --- access --------------------------------------------------------------------------------


def test_gated_repo_without_a_token(server: HubServer, models: Path) -> None:
    with pytest.raises(AccessDenied) as refused:
        downloads.download("gated/tiny-GGUF", "tiny-Q4_K_M.gguf", models)
    message = str(refused.value)
    assert "gated" in message and "HF_TOKEN" in message and "\n" not in message


def test_gated_repo_with_a_token_not_granted(
    server: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", UNGRANTED_TOKEN)
    with pytest.raises(AccessDenied, match="not been granted access: request it at"):
        downloads.download("gated/tiny-GGUF", "tiny-Q4_K_M.gguf", models)


def test_gated_repo_with_access(
    server: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    path = downloads.download("gated/tiny-GGUF", "tiny-Q4_K_M.gguf", models)
    assert path.is_file()


def test_private_repo_and_bad_tokens(
    server: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AccessDenied, match="private"):
        hub.list_gguf_files("tester/private-GGUF")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(AccessDenied, match="rejected the token"):
        downloads.download(TINY, "tiny-Q4_K_M.gguf", models)
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    assert [f.name for f in hub.list_gguf_files("tester/private-GGUF")] == ["tiny-Q4_K_M.gguf"]


def test_missing_repo_and_file(
    server: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NotFound, match="has no file nope.gguf"):
        downloads.download(TINY, "nope.gguf", models)
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    with pytest.raises(NotFound, match="no repository tester/missing"):
        hub.list_gguf_files("tester/missing")
    with pytest.raises(NotFound, match="not a repository id"):
        hub.list_gguf_files("../etc")


# --- no network ------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_network_is_one_clear_line_and_the_catalog_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_path: Path
) -> None:
    hub.forget_reachability()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    for call in (
        lambda: hub.search_models("tiny"),
        lambda: hub.list_gguf_files(TINY),
        lambda: downloads.download(TINY, "tiny-Q4_K_M.gguf", tmp_path / "models"),
    ):
        with pytest.raises(HubUnavailable) as unavailable:
            call()
        assert str(unavailable.value).startswith("cannot reach the Hugging Face Hub at")
        assert "\n" not in str(unavailable.value)
    assert time.monotonic() - started < 5
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    (models / "local.gguf").write_bytes(tiny_model_path.read_bytes())
    assert [e.key for e in scan_catalog([CatalogSource("models_dir", models)]).entries] == ["local"]


def test_offline_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="offline mode"):
        hub.search_models("tiny")


def test_endpoint_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://example.invalid:1234/")
    assert hub.hub_endpoint() == "http://example.invalid:1234"
    monkeypatch.delenv("HF_ENDPOINT")
    assert hub.hub_endpoint() == "https://huggingface.co"


def test_not_enough_disk_space(
    server: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        downloads.shutil, "disk_usage", lambda _: SimpleNamespace(total=1, used=1, free=10)
    )
    with pytest.raises(HubError, match="not enough disk space"):
        downloads.download(TINY, "tiny-Q4_K_M.gguf", models)


def test_a_second_download_of_the_same_file_waits_its_turn(server: HubServer, models: Path) -> None:
    """Two downloads of one file (two llamaterm processes, say) never write it together."""
    server.throttle = 100_000
    outcomes: list[object] = []

    def fetch() -> None:
        try:
            outcomes.append(downloads.download(TINY, "tiny-Q4_K_M.gguf", models))
        except HubError as error:
            outcomes.append(error)

    first = threading.Thread(target=fetch)
    first.start()
    time.sleep(0.3)
    fetch()
    first.join()
    errors = [o for o in outcomes if isinstance(o, HubError)]
    assert len(errors) == 1 and "being downloaded by another process" in str(errors[0])
    assert (models / "tester" / "tiny-GGUF" / "tiny-Q4_K_M.gguf").read_bytes() == file_bytes(
        server, TINY, "tiny-Q4_K_M.gguf"
    )
