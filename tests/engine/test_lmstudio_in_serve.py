"""The LM Studio SDK through the server as `llamaterm serve` runs it, not the test helper's app.

`ServerHandle` serves the SDK's own port beside its main one and closes its loader on
stop; its Host check covers the websockets too, and a web page's Origin cannot open
them; and the real SDK drives `llamaterm serve` itself, from the banner it prints to a
model its catalog loader loads.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import lmstudio as lms
import pytest
from gguf_factory import write_tiny_gguf
from httpx_ws import WebSocketUpgradeError, connect_ws
from serve_testing import ServerThread

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.serve.lmstudio import CatalogLoader
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle
from engine.serve.settings import ServerSettings

REPO = Path(__file__).resolve().parents[2]
HELLO = {"authVersion": 1, "clientIdentifier": "x", "clientPasskey": "y"}


@pytest.fixture(scope="module")
def registry(tiny_model_path: Path) -> Iterator[ModelRegistry]:
    model = LoadedModel.load(tiny_model_path, LoadConfig.model_validate({"context_length": 1024,
                                                                         "threads": 1}))
    yield ModelRegistry([ServedModel("tiny", model)])
    model.unload()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def greeting(address: str, **headers: str) -> httpx.Response:
    return httpx.get(f"http://{address}/lmstudio-greeting", headers=headers, timeout=30)


def upgrade_status(url: str, **headers: str) -> int:
    """101 when the websocket opened (and answered the SDK's handshake), else the HTTP status."""
    try:
        with connect_ws(url, headers=headers) as ws:
            ws.send_json(HELLO)
            assert ws.receive_json(timeout=30) == {"success": True}
            return 101
    except WebSocketUpgradeError as err:
        return int(err.response.status_code)


# --- ServerHandle: the SDK port, the loader --------------------------------------------


class RecordingLoader(CatalogLoader):
    """A loader over an empty catalog that says whether the server closed it."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_the_sdk_port_is_served_by_the_same_server(registry: ModelRegistry) -> None:
    sdk_port, loader = free_port(), RecordingLoader(registry, [])
    handle = ServerHandle(registry, port=0, sdk_port=sdk_port, loader=loader)
    with ServerThread(handle):
        assert handle.sdk_url == f"127.0.0.1:{sdk_port}"
        for address in (f"127.0.0.1:{handle.port}", handle.sdk_url):
            assert greeting(address).json() == {"lmstudio": True}
            with lms.Client(address) as client:
                assert [m.identifier for m in client.llm.list_loaded()] == ["tiny"]
        assert httpx.get(f"http://{handle.sdk_url}/v1/models").json()["data"][0]["id"] == "tiny"
        assert not loader.closed
    # What SDK clients loaded goes with the server.
    assert loader.closed and handle.sdk_url is None


def test_no_sdk_port_unless_asked_and_a_taken_one_is_skipped(registry: ModelRegistry) -> None:
    with ServerThread(ServerHandle(registry, port=0)) as handle:
        assert handle.sdk_url is None
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with ServerThread(ServerHandle(registry, port=0, sdk_port=taken)) as handle:
            assert handle.sdk_url is None
            assert greeting(f"127.0.0.1:{handle.port}").status_code == 200


# --- web pages: the Host check and the Origin on the websockets ------------------------------


def test_a_web_page_cannot_drive_the_sdk_socket(registry: ModelRegistry) -> None:
    with ServerThread(ServerHandle(registry, port=0)) as handle:
        address = f"127.0.0.1:{handle.port}"
        url = f"ws://{address}/llm"
        # The SDK (no Origin) and loopback names get through, the greeting included.
        assert upgrade_status(url) == 101
        assert upgrade_status(url, host=f"localhost:{handle.port}") == 101
        assert greeting(address, host=f"localhost:{handle.port}").status_code == 200
        # DNS rebinding: evil.com resolved to 127.0.0.1.
        assert upgrade_status(url, host=f"evil.com:{handle.port}") == 403
        assert greeting(address, host="evil.com").status_code == 403
        # A page on evil.com opening ws://127.0.0.1 itself: the Host is loopback, the
        # Origin the browser adds is not a listed one.
        assert upgrade_status(url, origin="http://evil.com") == 403
        assert upgrade_status(f"ws://{address}/system", origin="null") == 403
    listed = ServerSettings(cors_origins=["http://localhost:3000"])
    with ServerThread(ServerHandle(registry, port=0, settings=listed)) as handle:
        url = f"ws://127.0.0.1:{handle.port}/llm"
        assert upgrade_status(url, origin="http://localhost:3000") == 101
        assert upgrade_status(url, origin="http://evil.com") == 403


# --- `llamaterm serve` itself, driven by the SDK ---------------------------------------------


def test_llamaterm_serve_speaks_the_sdk(tiny_model_path: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    write_tiny_gguf(catalog / "spare-model.gguf")
    sdk_port = free_port()
    config = tmp_path / "config" / "llamaterm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f"[paths]\nmodel_dirs = [{str(catalog)!r}]\n"
        "[load]\ncontext_length = 1024\nthreads = 1\n"
        "[prediction]\nmax_tokens = 4\n"
        f"[server]\nsdk_port = {sdk_port}\n"
    )
    # Nothing outside the test's directories: no HF cache, no LM Studio folder.
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "HF_HUB_CACHE": str(tmp_path / "hf"),
           "HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    for name in ("LLAMATERM_CONFIG", "LLAMATERM_API_KEY"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "--model", str(tiny_model_path), "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
    )
    try:
        assert process.stderr is not None
        banner: list[str] = []
        while not banner or banner[-1] != "Ctrl+C stops the server":
            line = process.stderr.readline()
            assert line, f"the server stopped: {banner}"
            banner.append(line.strip())
        port = banner[0].rsplit(":", 1)[1].removesuffix("/v1")
        assert banner[1:4] == [
            "no API key required",
            f"LM Studio SDK: lms.Client('127.0.0.1:{port}')",
            f"lms.llm() finds it on 127.0.0.1:{sdk_port}",
        ]
        with lms.Client(f"127.0.0.1:{sdk_port}") as client:
            model = client.llm.model()
            assert model.identifier == "tiny-test-model"
            assert model.complete("Hi").stats.predicted_tokens_count <= 4
            # The catalog of the config file, through the loader run_server gives the server.
            assert "spare-model" in [m.model_key for m in client.llm.list_downloaded()]
            spare = client.llm.model("spare-model")
            assert spare.get_context_length() == 1024
            assert spare.respond("Hi").stats.predicted_tokens_count <= 4
        with lms.Client(f"127.0.0.1:{port}") as client:
            loaded = {m.identifier for m in client.llm.list_loaded()}
            assert loaded == {"tiny-test-model", "spare-model"}
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "LM Studio SDK loaded spare-model as spare-model" in err
