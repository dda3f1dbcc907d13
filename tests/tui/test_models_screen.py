"""The Models screen: catalog, load settings, the memory check, Hub search and downloads
against the local stand-in Hub (tests/hub_server.py), and remote servers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_server import HostedRepo, HubServer, default_repos
from huggingface_hub import constants as hf_constants
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import DataTable, Input
from tui_testing import NARROW_SIZE, TERMINAL_SIZE, wait_for_model, wait_until

from engine.models import catalog, hub
from engine.models import download as hub_download
from engine.models.memory import MemorySnapshot
from engine.models.remembered import ModelSettingsStore
from engine.models.starter import STARTER_FILE, STARTER_KEY
from engine.remote import RemoteModel, RemoteSource
from tui.app import LlamatermApp
from tui.screens.dialogs import ConfirmScreen
from tui.screens.models.model_dialogs import AddRemoteScreen, LoadSettingsScreen, RemoteServer
from tui.screens.models.models_screen import STARTER_WHERE, ModelsScreen
from tui.widgets.models.model_details import traits
from tui.widgets.models.model_hub import OFFLINE_HINT, HubBrowser

MakeApp = Callable[..., LlamatermApp]

PLENTY = MemorySnapshot(ram_available=16 * 10**9, ram_total=32 * 10**9, gpus=None)
SCARCE = MemorySnapshot(ram_available=10 * 10**6, ram_total=32 * 10**9, gpus=None)
"""Less than the tiny model needs at a 512-token context (about 26 MB)."""


@pytest.fixture
def local_models(
    isolated: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The data directory's models/ with the tiny model in it, and no other catalog source
    (no Hugging Face cache, no LM Studio folder) and plenty of free memory."""
    models = isolated / "models"
    models.mkdir(parents=True)
    os.symlink(tiny_model_path, models / "tiny-test-model.gguf")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    monkeypatch.setattr(catalog, "lmstudio_dirs", list)
    monkeypatch.setattr(ModelsScreen, "memory_probe", staticmethod(lambda: PLENTY))
    return models


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> list[HostedRepo]:
    return default_repos(tmp_path_factory.mktemp("hosted"))


@pytest.fixture
def hub_server(
    hosted: list[HostedRepo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HubServer]:
    """A fresh stand-in Hub at HF_ENDPOINT, with no token around."""
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    hub.forget_reachability()
    with HubServer(hosted) as running:
        monkeypatch.setenv("HF_ENDPOINT", running.url)
        yield running
    hub.forget_reachability()


def models_screen(pilot: Pilot[Any]) -> ModelsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ModelsScreen)
    return screen


async def open_models(pilot: Pilot[Any]) -> ModelsScreen:
    screen = models_screen(pilot)
    await wait_until(pilot, lambda: bool(screen.rows))
    await pilot.pause()
    return screen


async def search_hub(pilot: Pilot[Any], text: str = "tiny") -> HubBrowser:
    screen = models_screen(pilot)
    await pilot.press("slash")
    await pilot.press(*text, "enter")
    browser = screen.hub
    await wait_until(pilot, lambda: bool(browser.models))
    await pilot.pause()
    return browser


async def test_the_catalog_lists_marks_and_details(make_app: MakeApp, local_models: Path) -> None:
    (local_models / "broken.gguf").write_bytes(b"GGUF but not really")
    app = make_app(mode="models")
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        screen = await open_models(pilot)
        keys = [row.key for row in screen.rows]
        assert keys[:2] == ["broken", "tiny-test-model"]
        table = screen.query_one("#models-table", DataTable)
        assert "⚠" in str(table.get_cell("0", "where"))
        assert table.get_cell("1", "mark") == "●"
        assert table.get_cell("1", "traits") == "chat"
        table.move_cursor(row=1)
        await pilot.pause()
        shown = "\n".join(screen.query_one("#models-details").lines)  # type: ignore[attr-defined]
        assert "architecture: llama" in shown and "✓ fits" in shown


async def test_load_settings_are_remembered_and_used(make_app: MakeApp, local_models: Path) -> None:
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_models(pilot)
        screen.query_one("#models-table", DataTable).move_cursor(row=0)
        await pilot.press("e")
        assert isinstance(app.screen, LoadSettingsScreen)
        context = app.screen.query_one("#ls-context", Input)
        context.value = "256"
        await pilot.press("ctrl+s")
        assert app.screen is screen
        remembered = ModelSettingsStore(app.data_dir).get("tiny-test-model")
        assert remembered.model_dump(exclude_none=True) == {"context_length": 256}
        shown = "\n".join(screen.query_one("#models-details").lines)  # type: ignore[attr-defined]
        assert "memory at 256 tokens" in shown

        # A bad value stays in the dialog with its reason; nothing is saved.
        await pilot.press("e")
        app.screen.query_one("#ls-batch", Input).value = "0"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, LoadSettingsScreen)
        assert "batch_size" in str(app.screen.query_one("#load-settings-error").render())
        await pilot.press("escape")

        await pilot.press("l")
        await wait_for_model(pilot)
        assert screen.query_one("#models-table", DataTable).get_cell("0", "mark") == "●"


async def test_the_loaded_model_gets_the_remembered_context(
    make_app: MakeApp, local_models: Path
) -> None:
    app = make_app(mode="models", autoload=False)
    ModelSettingsStore(app.data_dir).remember("tiny-test-model", {"context_length": 256})
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await open_models(pilot)
        await pilot.press("l")
        await wait_for_model(pilot)
        assert app.model_state.context_length == 256


async def test_a_load_that_will_not_fit_asks_first(
    make_app: MakeApp, local_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ModelsScreen, "memory_probe", staticmethod(lambda: SCARCE))
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_models(pilot)
        shown = "\n".join(screen.query_one("#models-details").lines)  # type: ignore[attr-defined]
        assert "does not fit" in shown
        await pilot.press("l")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.model_state.status == "none"
        await pilot.press("l", "y")
        await wait_for_model(pilot)


async def test_search_list_download_cancel_and_resume(
    make_app: MakeApp, local_models: Path, hub_server: HubServer
) -> None:
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_models(pilot)
        browser = await search_hub(pilot)
        assert [m.repo_id for m in browser.models] == ["tester/tiny-GGUF", "gated/tiny-GGUF"]

        await pilot.press("enter")
        await wait_until(pilot, lambda: browser.view == "files")
        names = [f.name for f in browser.files]
        assert names[:2] == ["tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"]
        assert browser.files[-1].is_mmproj

        hub_server.throttle = 100_000  # bytes per second: the file takes ~3 s
        await pilot.press("d")
        await wait_until(
            pilot,
            lambda: (
                browser.downloading
                and "KB /" in str(browser.query_one("#hub-download-label").render())
            ),
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: not browser.downloading)
        assert "Cancelled tiny-Q4_K_M.gguf" in str(browser.query_one("#hub-status").render())
        partial = hub_download.partial_bytes(local_models, "tester/tiny-GGUF", "tiny-Q4_K_M.gguf")
        assert partial > 0

        hub_server.throttle = None
        await pilot.press("d")
        await wait_until(pilot, lambda: any(r.key == "tiny-q4_k_m" for r in screen.rows))
        assert (local_models / "tester" / "tiny-GGUF" / "tiny-Q4_K_M.gguf").is_file()
        ranges = [r.headers.get("range") for r in hub_server.downloads()]
        assert any(r and r.startswith(f"bytes={partial}") for r in ranges), ranges

        # Backspace goes back to the repositories; the gated one says access is refused.
        await pilot.press("backspace")
        assert browser.view == "repos"
        browser.query_one("#hub-results", DataTable).move_cursor(row=1)
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: browser.view == "files" and browser.repo.startswith("gated")
        )
        await pilot.press("d")
        await wait_until(pilot, lambda: browser.query_one("#hub-status").has_class("-error"))
        assert "Access refused" in str(browser.query_one("#hub-status").render())


async def test_no_network_is_one_line_and_the_catalog_still_works(
    make_app: MakeApp, local_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    hub.forget_reachability()
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=NARROW_SIZE) as pilot:
        screen = await open_models(pilot)
        await pilot.press("slash", *"tiny", "enter")
        status = screen.hub.query_one("#hub-status")
        await wait_until(pilot, lambda: status.has_class("-error"))
        text = str(status.render())
        assert "\n" not in text and text.endswith(OFFLINE_HINT)
        # At 80 columns the error wraps inside the screen rather than run off it.
        assert status.size.height > 1 and status.region.right <= NARROW_SIZE[0]
        # Escape leaves the search box, and the screen's keys work again.
        assert screen.hub.query_one("#hub-search").has_focus
        await pilot.press("escape")
        assert screen.hub.query_one("#hub-results").has_focus
        await pilot.press("h")
        assert not screen._hub_shown()
        await pilot.press("l")
        await wait_for_model(pilot)
    hub.forget_reachability()


async def test_remote_models_are_listed_and_chosen(
    make_app: MakeApp, local_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def two_models(self: RemoteSource) -> list[RemoteModel]:
        return [RemoteModel(self.base_url, name) for name in ("qwen3-8b", "llama-3.1-8b")]

    monkeypatch.setattr(RemoteSource, "list_models", two_models)
    chosen: list[Message] = []

    def hook(message: Message) -> None:
        if isinstance(message, ModelsScreen.RemoteModelChosen):
            chosen.append(message)

    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE, message_hook=hook) as pilot:
        screen = await open_models(pilot)
        await pilot.press("a", *"gpu-box:1234", "enter", "enter")
        await wait_until(pilot, lambda: any(r.remote is not None for r in screen.rows))
        remote_rows = [i for i, r in enumerate(screen.rows) if r.remote is not None]
        assert [screen.rows[i].key for i in remote_rows] == ["qwen3-8b", "llama-3.1-8b"]
        screen.query_one("#models-table", DataTable).move_cursor(row=remote_rows[0])
        await pilot.press("l")
        await pilot.pause()
        assert chosen, "the screen asks the app to use the remote model"
        model = chosen[0].model  # type: ignore[attr-defined]
        assert model.model_id == "qwen3-8b" and model.base_url.startswith("http://gpu-box:1234")


async def test_the_starter_is_listed_from_the_catalog_until_assembled(
    make_app: MakeApp,
    local_models: Path,
    tiny_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A starter package holding the tiny model: the row carries what its header says.
    monkeypatch.setattr(catalog, "starter_chunks", lambda: (tiny_model_path,))
    app = make_app(mode="models", autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        screen = await open_models(pilot)
        starter = screen.rows[-1]
        assert starter.entry is not None and starter.entry.source == "starter"
        assert starter.where == STARTER_WHERE
        assert not (local_models / STARTER_FILE).exists()
        table = screen.query_one("#models-table", DataTable)
        index = len(screen.rows) - 1
        assert table.get_cell(str(index), "traits") == "chat"
        assert table.get_cell(str(index), "quant") == "F16"
        table.move_cursor(row=index)
        await pilot.pause()
        shown = "\n".join(screen.query_one("#models-details").lines)  # type: ignore[attr-defined]
        assert "architecture: llama" in shown and STARTER_WHERE in shown
        requested: list[str] = []
        with monkeypatch.context() as patch:
            patch.setattr(
                screen,
                "post_message",
                lambda message: requested.append(getattr(message, "spec", "")) or True,
            )
            screen.action_load()
        assert requested == [STARTER_KEY]


def test_the_kind_column_says_what_a_model_is_for_in_words() -> None:
    def entry(**facts: Any) -> catalog.CatalogEntry:
        path = Path("m.gguf")
        return catalog.CatalogEntry(key="m", path=path, parts=(path,), size_bytes=1, **facts)

    assert traits(entry()) == "base"
    assert traits(entry(has_chat_template=True)) == "chat"
    rich = entry(has_chat_template=True, tool_format="hermes", reasoning="qwen3")
    assert traits(rich) == "chat tools think"


async def test_one_enter_adds_a_remote_server(make_app: MakeApp) -> None:
    app = make_app(mode="models", autoload=False)
    added: list[RemoteServer | None] = []
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        app.push_screen(AddRemoteScreen(), added.append)
        await pilot.pause()
        await pilot.press(*"localhost:1234/v1", "enter")
        await pilot.pause()
        assert added == [RemoteServer("http://localhost:1234/v1", None)]

        app.push_screen(AddRemoteScreen(), added.append)
        await pilot.pause()
        await pilot.press(*"http://h/v1", "tab", *"sk-1", "enter")
        await pilot.pause()
        assert added[-1] == RemoteServer("http://h/v1", "sk-1")
        await pilot.press("enter")  # nothing left open to take it
        assert len(added) == 2
