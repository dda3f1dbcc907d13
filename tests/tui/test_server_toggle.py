"""The in-app OpenAI-compatible server: toggled from the app, watched in its status line (issue 7)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
from openai import OpenAI
from textual.command import CommandList
from tui_testing import TERMINAL_SIZE, wait_for_model, wait_until

from tui.app import LlamatermApp
from tui.config import AppSettings
from tui.services.in_app_server import InAppServer
from tui.widgets.status.server_status import ServerStatus

MakeApp = Callable[..., LlamatermApp]


def server_text(app: LlamatermApp) -> str:
    return str(app.screen.query_one(ServerStatus).render())


async def test_f8_serves_the_loaded_model_and_counts_requests(make_app: MakeApp) -> None:
    app = make_app()
    app.server.port = 0
    app.server.sdk_port = 0
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await wait_for_model(pilot)
        assert not app.screen.query_one(ServerStatus).display

        await pilot.press("f8")
        await wait_until(pilot, lambda: app.server_state.running)
        url = app.server_state.url
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/v1")
        await pilot.pause()
        assert app.screen.query_one(ServerStatus).display
        assert url in server_text(app) and "0 requests" in server_text(app)

        def ask() -> str:
            client = OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
            reply = client.chat.completions.create(
                model=app.model.key,  # type: ignore[union-attr]
                messages=[{"role": "user", "content": "Hi"}],
                max_tokens=8,
                temperature=0,
                seed=1,
            )
            return reply.choices[0].finish_reason

        # From a thread: the server runs on the app's event loop, which must keep going.
        finish = await asyncio.to_thread(ask)
        assert finish in ("stop", "length")
        await wait_until(pilot, lambda: app.server_state.requests == 1)
        await pilot.pause()
        text = server_text(app)
        assert "1 request " in text + " " and "POST /v1/chat/completions 200" in text

        # Every screen's status line shows it.
        await pilot.press("f4")
        await pilot.pause()
        assert "POST /v1/chat/completions 200" in server_text(app)

        await pilot.press("f8")
        await wait_until(pilot, lambda: not app.server_state.running)
        await pilot.pause()
        assert not app.screen.query_one(ServerStatus).display
        assert not app.server.running


async def test_palette_commands_follow_the_server_and_exit_stops_it(make_app: MakeApp) -> None:
    app = make_app()
    app.server.port = 0
    app.server.sdk_port = 0
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "server: start" in titles and "server: stop" not in titles
        assert "server: toggle" in titles

        await pilot.press("ctrl+p")
        await pilot.press(*"server: start")
        await wait_until(pilot, lambda: app.screen.query(CommandList).first().option_count > 0)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.server_state.running)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "server: stop" in titles and "server: start" not in titles
        served = [m.id for m in app.server.registry.served_models()]
        assert served == [app.model.key]  # type: ignore[union-attr]

        # A new model replaces the served one; unloading serves none.
        await pilot.press("f9")
        await pilot.pause()
        assert app.server.registry.served_models() == []
    assert not app.server.running


async def test_the_in_app_server_follows_the_server_table() -> None:
    # As `llamaterm serve`: the whole [server] table, the LM Studio SDK's port included.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        sdk_port = probe.getsockname()[1]
    table = {"port": 0, "sdk_port": sdk_port, "allowed_hosts": ["gpu-box.lan"]}
    server = InAppServer(AppSettings.model_validate({"server": table}), lambda state: None)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            models = f"{server.state.url}/models"
            assert (await client.get(models, headers={"host": "gpu-box.lan"})).status_code == 200
            assert (await client.get(models, headers={"host": "evil.com"})).status_code == 403
            greeting = await client.get(f"http://127.0.0.1:{sdk_port}/lmstudio-greeting")
            assert greeting.json() == {"lmstudio": True}
    finally:
        await server.stop()
    assert not server.running
