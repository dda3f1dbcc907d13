"""Snapshots of the Models screen: list, details, not-enough-memory warning, Hub search
results and a download in progress (shown from a fixed progress report)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hub_server import HubServer
from test_models_screen import SCARCE, hosted, hub_server, local_models, open_models, search_hub
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_testing import NARROW_SIZE, TERMINAL_SIZE, wait_for_model, wait_until

from engine.models import hub
from engine.models.download import DownloadProgress
from tui.app import LlamatermApp
from tui.screens.models.models_screen import ModelsScreen

__all__ = ["hosted", "hub_server", "local_models"]  # fixtures, used by name

MakeApp = Callable[..., LlamatermApp]
SnapCompare = Callable[..., bool]


def test_list_with_details(
    snap_compare: SnapCompare, make_app: MakeApp, local_models: Path
) -> None:
    (local_models / "broken.gguf").write_bytes(b"GGUF but not really")

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_for_model(pilot)
        screen = await open_models(pilot)
        screen.query_one("#models-table", DataTable).move_cursor(row=1)
        await pilot.pause()

    assert snap_compare(make_app(mode="models"), terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_not_enough_memory(
    snap_compare: SnapCompare,
    make_app: MakeApp,
    local_models: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ModelsScreen, "memory_probe", staticmethod(lambda: SCARCE))

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_models(pilot)
        await pilot.press("l")
        await pilot.pause()

    app = make_app(mode="models", autoload=False)
    assert snap_compare(app, terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_search_results(
    snap_compare: SnapCompare, make_app: MakeApp, local_models: Path, hub_server: HubServer
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_models(pilot)
        await search_hub(pilot)

    app = make_app(mode="models", autoload=False)
    assert snap_compare(app, terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_download_in_progress(
    snap_compare: SnapCompare, make_app: MakeApp, local_models: Path, hub_server: HubServer
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_models(pilot)
        browser = await search_hub(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: browser.view == "files")
        # Paused: a fixed report instead of a running download, so speed and time stay put.
        browser.downloading = True
        browser.show_progress(
            DownloadProgress("tiny-Q4_K_M.gguf", 1, 1, 120_000, 280_000, 50_000.0, 3.2)
        )
        await pilot.pause()

    app = make_app(mode="models", autoload=False)
    assert snap_compare(app, terminal_size=TERMINAL_SIZE, run_before=run_before)


def test_hub_unreachable_at_80_columns(
    snap_compare: SnapCompare,
    make_app: MakeApp,
    local_models: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    hub.forget_reachability()

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await open_models(pilot)
        await pilot.press("slash", *"tiny", "enter")
        status = screen.hub.query_one("#hub-status")
        await wait_until(pilot, lambda: status.has_class("-error"))
        await pilot.press("escape")
        await pilot.pause()

    app = make_app(mode="models", autoload=False)
    assert snap_compare(app, terminal_size=NARROW_SIZE, run_before=run_before)
    hub.forget_reachability()
