"""The app's OpenAI-compatible server: started and stopped from the app, serving its model.

It runs on the app's event loop (uvicorn inside it); predictions still run on the
model's own thread, so the app stays responsive while the server streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.contract import ChatModel
from engine.llama import LoadedModel
from engine.logbus import LOG_BUS
from engine.prediction import LogRecord
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle
from engine.serve.settings import DEFAULT_HOST, DEFAULT_PORT, ServerSettings
from engine.settings import Settings


@dataclass(frozen=True, slots=True)
class LastRequest:
    method: str
    path: str
    status: int
    duration: float

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> LastRequest:
        return cls(
            method=str(data.get("method", "")),
            path=str(data.get("path", "")),
            status=int(data.get("status", 0)),
            duration=float(data.get("duration", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class ServerState:
    """What the status line shows about the app's OpenAI-compatible server."""

    running: bool = False
    url: str = ""
    requests: int = 0
    last: LastRequest | None = None


class InAppServer:
    """A `ServerHandle` over a registry that follows the app's loaded model.

    `on_change` gets a new `ServerState` on the event loop whenever something changes.
    `host`, `port`, `api_key` and `sdk_port` (the LM Studio SDK's, 0: off) come from the
    settings' `[server]` table where there is one, else loopback on 1234 and no SDK
    port; set them before `start` (tests use port 0). The rest of the table (limits,
    allowed hosts, CORS origins) applies as it does to `llamaterm serve`. SDK clients use
    the app's model and load none of their own.
    """

    def __init__(self, settings: Settings, on_change: Callable[[ServerState], None]) -> None:
        section: Any = getattr(settings, "server", None)
        self.table = section if isinstance(section, ServerSettings) else None
        self.host: str = getattr(section, "host", None) or DEFAULT_HOST
        self.port: int = getattr(section, "port", DEFAULT_PORT)
        self.api_key: str | None = getattr(section, "api_key", None)
        self.sdk_port: int = getattr(section, "sdk_port", 0)
        self.defaults = settings.prediction_defaults()
        self.registry = ModelRegistry()
        self.state = ServerState()
        self._on_change = on_change
        self._handle: ServerHandle | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None and self._handle.running

    def set_model(self, model: ChatModel | None) -> None:
        """Serve `model` (the app's) from now on. Only a local model is served: None
        or a remote one serves nothing (its own server is already there to ask)."""
        for served in list(self.registry.served_models()):
            self.registry.remove(served.id)
        if isinstance(model, LoadedModel):  # remote models have a server of their own
            self.registry.add(ServedModel(model.key, model, self.defaults), make_default=True)

    async def start(self) -> None:
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        handle = ServerHandle(
            self.registry, host=self.host, port=self.port, api_key=self.api_key,
            settings=self.table, loader=None, sdk_port=self.sdk_port,
        )
        await handle.start()
        self._handle = handle
        self._unsubscribe = LOG_BUS.subscribe(self._on_record)
        self._set(ServerState(running=True, url=handle.url))

    async def stop(self) -> None:
        handle, self._handle = self._handle, None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if handle is not None:
            await handle.stop()
        if self.state.running:
            self._set(ServerState())

    def _on_record(self, record: LogRecord) -> None:
        # Any thread: the server's request records carry a status; others (start, stop) do not.
        if record.kind != "server" or "status" not in record.data or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._count, dict(record.data))
        except RuntimeError:  # the loop has closed: the app is gone
            pass

    def _count(self, data: dict[str, Any]) -> None:
        if not self.state.running:
            return
        self._set(
            ServerState(
                running=True,
                url=self.state.url,
                requests=self.state.requests + 1,
                last=LastRequest.from_record(data),
            )
        )

    def _set(self, state: ServerState) -> None:
        self.state = state
        self._on_change(state)
