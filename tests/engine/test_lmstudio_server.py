"""llamaterm's LM Studio endpoints, seen from the `lmstudio` SDK and from the wire.

Finding the server (the greeting, the SDK's default port), the API key in the
handshake, listing, loading (with progress, TTLs, two clients at once) and unloading
models, what the SDK cannot send (unknown fields and messages), and the namespaces
that are not served.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import lmstudio as lms
import pytest
from httpx_ws import connect_ws
from lmstudio import LMStudioModelNotFoundError, LMStudioServerError
from lmstudio_sdk_server import (  # noqa: F401 - fixtures, used by name
    Served,
    UvicornThread,
    catalog_dir,
    client,
    host,
    sdk_app,
    served,
)
from serve_testing import ServerThread

from engine.logbus import LOG_BUS
from engine.prediction import LogRecord
from engine.serve.lmstudio import CatalogLoader
from engine.serve.lmstudio.protocol import LmsError
from engine.serve.lmstudio.sdk_port import DEFAULT_SDK_PORT, bind_sdk_port
from engine.serve.models import ModelRegistry
from engine.serve.run import ServerHandle
from engine.settings import Settings

API_KEY = "sdk-secret"


# --- finding the server ------------------------------------------------------------


def test_greeting_answers_the_sdk_probe(host: str) -> None:
    assert httpx.get(f"http://{host}/lmstudio-greeting").json() == {"lmstudio": True}
    assert lms.Client.is_valid_api_host(host)


def test_the_openai_routes_still_answer(host: str) -> None:
    assert [m["id"] for m in httpx.get(f"http://{host}/v1/models").json()["data"]] == ["tiny"]


# --- models: listing, loading, unloading ---------------------------------------------


def test_list_loaded_and_downloaded(client: lms.Client) -> None:
    assert "tiny" in [m.identifier for m in client.llm.list_loaded()]
    assert "tiny" in [m.identifier for m in client.list_loaded_models()]
    downloaded = {m.model_key: m for m in client.list_downloaded_models()}
    assert {"spare-model", "qwen2.5-7b-instruct"} <= set(downloaded)
    assert downloaded["spare-model"].type == "llm"
    assert [m.model_key for m in client.llm.list_downloaded()] == sorted(downloaded)
    assert client.embedding.list_loaded() == []


def test_load_on_demand_with_progress_then_unload(client: lms.Client) -> None:
    progress: list[float] = []
    spare = client.llm.model("spare-model", on_load_progress=progress.append,
                             config={"contextLength": 1024})
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    assert spare.identifier == "spare-model"
    assert spare.get_context_length() == 1024
    # Loaded once: asking again finds it.
    assert client.llm.model("spare-model").identifier == "spare-model"
    assert spare.complete("Hi", config={"maxTokens": 3}).stats.predicted_tokens_count <= 3
    spare.unload()
    assert "spare-model" not in [m.identifier for m in client.llm.list_loaded()]


def test_unknown_model_is_not_found(client: lms.Client) -> None:
    with pytest.raises(LMStudioModelNotFoundError):
        client.llm.model("no-such-model")
    with pytest.raises(LMStudioModelNotFoundError):
        client.llm.get_model_info("no-such-model")


def test_the_apps_own_model_is_not_unloaded_by_a_client(client: lms.Client) -> None:
    with pytest.raises(LMStudioServerError, match="not loaded through the SDK"):
        client.llm.unload("tiny")
    assert "tiny" in [m.identifier for m in client.llm.list_loaded()]


def test_load_new_instance_under_an_identifier(client: lms.Client) -> None:
    second = client.llm.load_new_instance("spare-model", "spare-two", config={"contextLength": 512})
    try:
        assert second.identifier == "spare-two"
        assert second.get_info().model_key == "spare-model"
        assert second.get_context_length() == 512
    finally:
        second.unload()
    assert "spare-two" not in [m.identifier for m in client.llm.list_loaded()]


# --- the loader a server builds from its config ----------------------------------------


def test_catalog_loader_from_settings(
    catalog_dir: Path, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing outside the test's directories: no HF cache, no LM Studio folder.
    monkeypatch.setenv("HF_HUB_CACHE", str(isolated_dirs / "hf"))
    monkeypatch.setenv("HOME", str(isolated_dirs / "home"))
    settings = Settings.model_validate({
        "paths": {"model_dirs": [str(catalog_dir)]},
        "load": {"context_length": 768, "threads": 1},
        "prediction": {"max_tokens": 7},
    })
    registry = ModelRegistry()
    loader = CatalogLoader.from_settings(registry, settings)
    assert {"spare-model", "qwen2.5-7b-instruct"} <= {e.key for e in loader.downloaded()}
    with pytest.raises(LmsError, match="no local model matches"):
        loader.entry("missing")
    spare = asyncio.run(loader.load("spare", {}, None, lambda fraction: None))
    try:
        assert spare.id == "spare-model" and registry.get("spare-model") is spare
        assert spare.model.config.context_length == 768
        assert spare.defaults.max_tokens == 7
    finally:
        loader.close()
    assert registry.get("spare-model") is None and not spare.model.is_loaded


def test_a_model_loaded_with_a_ttl_is_unloaded_when_idle(client: lms.Client) -> None:
    spare = client.llm.model("spare-model", ttl=1)
    # Used within its TTL: still there.
    time.sleep(0.6)
    assert spare.complete("Hi", config={"maxTokens": 2}).stats.predicted_tokens_count <= 2
    time.sleep(0.6)
    assert "spare-model" in [m.identifier for m in client.llm.list_loaded()]
    deadline = time.monotonic() + 10
    while "spare-model" in [m.identifier for m in client.llm.list_loaded()]:
        assert time.monotonic() < deadline, "the idle model was never unloaded"
        time.sleep(0.1)
    # The app's own model has no TTL.
    assert "tiny" in [m.identifier for m in client.llm.list_loaded()]


def test_two_clients_asking_at_once_load_the_model_once(host: str, client: lms.Client) -> None:
    handles: list[Any] = []

    def ask() -> None:
        with lms.Client(host) as other:
            handles.append(other.llm.model("spare-model").identifier)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert handles == ["spare-model", "spare-model"]
        loaded = [m.identifier for m in client.llm.list_loaded()]
        assert loaded.count("spare-model") == 1 and "spare-model:2" not in loaded
    finally:
        client.llm.unload("spare-model")


def test_what_is_not_served_says_so(client: lms.Client, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(LMStudioServerError, match="no vision models"):
        client.files.prepare_image(image)
    with pytest.raises(LMStudioServerError, match="search and download"):
        client.repository.search_models("gemma")


# --- the API key -----------------------------------------------------------------------


class KeyedClient(lms.Client):
    """A client that sends the server's API key as its passkey (the SDK has no option for it)."""

    def _create_auth_message(self) -> dict[str, Any]:
        return self._format_auth_message(client_key=API_KEY)


def test_the_api_key_is_checked_in_the_handshake(served: Served) -> None:
    registry, _ = served
    with UvicornThread(sdk_app(registry, None, api_key=API_KEY)) as address:
        # The greeting stays open: the SDK probes before it authenticates.
        assert httpx.get(f"http://{address}/lmstudio-greeting").json() == {"lmstudio": True}
        with lms.Client(address) as stranger:
            with pytest.raises(LMStudioServerError, match="Authentication failed"):
                stranger.llm.list_loaded()
        with KeyedClient(address) as keyed:
            assert [m.identifier for m in keyed.llm.list_loaded()] == ["tiny"]
            # Without a loader the server serves what the app loaded, and loads nothing:
            # a script's hard-coded name gets the one model there is.
            assert keyed.llm.model("qwen2.5-7b-instruct").identifier == "tiny"
            with pytest.raises(LMStudioServerError, match="does not load"):
                keyed.llm.load_new_instance("spare-model")


# --- the SDK's default port: lms.llm() with no set-up ----------------------------------


def test_sdk_port_off_or_taken_is_not_an_error() -> None:
    assert bind_sdk_port(0) is None
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert bind_sdk_port(holder.getsockname()[1]) is None


def test_lms_llm_finds_the_server_on_the_sdk_port(served: Served) -> None:
    registry, _ = served
    # The server as `llamaterm serve` runs it, on the port the SDK probes first.
    handle = ServerHandle(registry, port=0, sdk_port=DEFAULT_SDK_PORT)
    lms.sync_api._reset_default_client()
    try:
        with ServerThread(handle):
            if handle.sdk_url is None:
                pytest.skip(f"port {DEFAULT_SDK_PORT} is taken here (LM Studio running?)")
            assert handle.sdk_url == f"127.0.0.1:{DEFAULT_SDK_PORT}"
            model = lms.llm()  # no client set-up: the SDK probes its default ports
            assert model.identifier == "tiny"
            assert model.complete("Hi", config={"maxTokens": 3}).stats.predicted_tokens_count <= 3
    finally:
        lms.sync_api._reset_default_client()


# --- the wire itself: what the SDK cannot send -----------------------------------------


HELLO = {"authVersion": 1, "clientIdentifier": "x", "clientPasskey": "y"}
TINY = {"type": "instanceReference", "instanceReference": "tiny"}


def _exchange(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    ws.send_json(message)
    reply: dict[str, Any] = ws.receive_json(timeout=30)
    return reply


def test_unknown_fields_and_messages_are_accepted_and_logged(host: str) -> None:
    records: list[LogRecord] = []
    unsubscribe = LOG_BUS.subscribe(lambda r: records.append(r) if r.kind == "server" else None)
    try:
        with connect_ws(f"ws://{host}/llm") as ws:
            assert _exchange(ws, HELLO) == {"success": True}
            ws.send_text("not json")
            ws.send_bytes(b"\xff\xfe")
            ws.send_text("[1, 2]")
            ws.send_json({"type": "someFutureMessage"})
            unknown = _exchange(ws, {"type": "rpcCall", "endpoint": "noSuchCall", "callId": 1})
            assert unknown["type"] == "rpcError"
            fields = [
                {"key": "llm.prediction.maxPredictedTokens",
                 "value": {"checked": True, "value": 4}},
                {"key": "llm.prediction.someFutureSetting", "value": {"anything": 1}},
                {"key": "llm.prediction.llama.cpuThreads", "value": 2},
            ]
            user = {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
            ws.send_json({"type": "channelCreate", "endpoint": "predict", "channelId": 1,
                          "creationParameter": {
                              "modelSpecifier": TINY,
                              "history": {"messages": [user]},
                              "predictionConfigStack": {"layers": [
                                  {"layerName": "apiOverride", "config": {"fields": fields}}]},
                          }})
            kinds = []
            while True:
                message = ws.receive_json(timeout=30)
                if message["type"] == "channelClose":
                    break
                kinds.append(message["message"]["type"])
            assert kinds[-1] == "success" and "fragment" in kinds
            # The calls of the embedding namespace: nothing is loaded, the rest is refused.
        with connect_ws(f"ws://{host}/embedding") as ws:
            _exchange(ws, HELLO)
            listed = _exchange(ws, {"type": "rpcCall", "endpoint": "listLoaded", "callId": 1})
            assert listed["result"] == []
            refused = _exchange(ws, {"type": "rpcCall", "endpoint": "embedString", "callId": 2,
                                     "parameter": {"inputString": "x"}})
            assert refused["type"] == "rpcError" and "embedding" in refused["error"]["suggestion"]
    finally:
        unsubscribe()
    warnings = " ".join(r.message for r in records)
    assert "llm.prediction.someFutureSetting" in warnings
    assert "llm.prediction.llama.cpuThreads" in warnings
    assert "someFutureMessage" in warnings
