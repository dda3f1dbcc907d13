"""A llamaterm server with the LM Studio routes, for the tests that drive it with the SDK.

The server is the server's own app (`engine.serve.app.create_app`, with the LM Studio
routes and a catalog loader), on uvicorn on a free loopback port in a thread. Import
the fixtures into a test module to use them there.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmstudio as lms
import pytest
import uvicorn
from gguf_factory import write_tiny_gguf
from starlette.applications import Starlette

from engine.llama import LoadedModel
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.models.catalog import CatalogSource
from engine.prediction import LogRecord, PredictionConfig
from engine.serve.app import create_app
from engine.serve.lmstudio import CatalogLoader
from engine.serve.models import ModelRegistry, ServedModel

# One thread: the tiny model gains nothing from more, and busy shared CI cores punish them.
LOAD = LoadConfig.model_validate({"context_length": 2048, "threads": 1})
# The random-weight model rarely stops by itself: replies are capped unless a test says otherwise.
DEFAULTS = PredictionConfig(max_tokens=24)
Served = tuple[ModelRegistry, CatalogLoader]


class UvicornThread:
    """An app on uvicorn on a free loopback port, on its own thread."""

    def __init__(self, app: Starlette) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.sockets = sockets = [self.sock]
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: self.server.run(sockets=sockets), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self.host

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        for sock in self.sockets:
            sock.close()


def sdk_app(
    registry: ModelRegistry, loader: CatalogLoader | None, api_key: str | None = None
) -> Starlette:
    """The server's app, as `llamaterm serve` builds it."""
    return create_app(registry, api_key=api_key, loader=loader)


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models on disk the SDK may load: a spare one, and one under the name the docs ask for."""
    directory = tmp_path_factory.mktemp("sdk-catalog")
    write_tiny_gguf(directory / "spare-model.gguf")
    write_tiny_gguf(directory / "qwen2.5-7b-instruct.gguf")
    return directory


@pytest.fixture(scope="module")
def served(tiny_model_path: Path, catalog_dir: Path) -> Iterator[Served]:
    model = LoadedModel.load(tiny_model_path, LOAD)
    registry = ModelRegistry([ServedModel("tiny", model, DEFAULTS)])
    loader = CatalogLoader(registry, [CatalogSource("configured", catalog_dir)],
                           load_config=lambda entry: LOAD, defaults=DEFAULTS)
    yield registry, loader
    loader.close()
    model.unload()


@pytest.fixture(scope="module")
def host(served: Served) -> Iterator[str]:
    registry, loader = served
    with UvicornThread(sdk_app(registry, loader)) as address:
        yield address


@pytest.fixture(scope="module")
def client(host: str) -> Iterator[lms.Client]:
    with lms.Client(host) as sdk_client:
        yield sdk_client


@pytest.fixture
def model(client: lms.Client) -> Any:
    return client.llm.model("tiny")


class Prompts:
    """The prompts the engine evaluated while a test ran (from the log bus)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, record: LogRecord) -> None:
        if record.kind == "prompt":
            with self._lock:
                self.texts.append(str(record.data.get("text", "")))


@pytest.fixture
def prompts() -> Iterator[Prompts]:
    collected = Prompts()
    unsubscribe = LOG_BUS.subscribe(collected)
    yield collected
    unsubscribe()
