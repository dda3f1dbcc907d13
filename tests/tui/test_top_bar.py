"""The top bar at 80 columns: the server status and the model's name share the line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static
from tui_testing import NARROW_SIZE, wait_for_model

from tui.app import LlamatermApp
from tui.services.in_app_server import LastRequest, ServerState
from tui.widgets.status.server_status import ServerStatus

MakeApp = Callable[..., LlamatermApp]

BUSY = ServerState(
    running=True,
    url="http://127.0.0.1:1234/v1",
    requests=12,
    last=LastRequest("POST", "/v1/chat/completions", 200, 0.25),
)


async def show_busy_server(pilot: Pilot[Any]) -> None:
    await wait_for_model(pilot)
    pilot.app.server_state = BUSY  # type: ignore[attr-defined]
    await pilot.pause()


async def test_the_model_name_keeps_its_share_beside_the_server(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=NARROW_SIZE) as pilot:
        await show_busy_server(pilot)
        server = app.screen.query_one(ServerStatus)
        model = app.screen.query_one("#model-text", Static)
        assert server.display and server.size.width <= NARROW_SIZE[0] * 0.45 // 1 + 1
        assert model.size.width >= len("● tiny-test-model"), model.size
        assert model.region.right <= NARROW_SIZE[0]


def test_snapshot_server_and_model_at_80_columns(
    snap_compare: Callable[..., bool], make_app: MakeApp
) -> None:
    assert snap_compare(make_app(), terminal_size=NARROW_SIZE, run_before=show_busy_server)
