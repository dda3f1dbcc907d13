"""Running the server: `ServerHandle` inside an asyncio app, `run_server` in the foreground.

uvicorn serves the Starlette app on a socket bound here (so that a taken port is a
clear `ServerError`, and port 0 tells us the port it got); its log lines go to the
log bus, never to a terminal the TUI draws on. The same uvicorn may also serve the LM
Studio SDK's port (`sdk_port`). `run_server` prints a banner and one line per request,
and stops on Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any, Self, TextIO

from starlette.applications import Starlette

from engine.errors import ServerError
from engine.logbus import LOG_BUS
from engine.prediction import LogRecord

from .app import create_app
from .connections import protocol_with
from .lmstudio import CatalogLoader, ModelLoader
from .lmstudio.sdk_port import bind_sdk_port, sdk_port_url
from .models import ModelProvider, ModelRegistry, ServedModel
from .security import is_loopback
from .settings import DEFAULT_HOST, DEFAULT_PORT, ServerSettings

__all__ = ["ServerError", "ServerHandle", "run_server"]


class _LogBusHandler(logging.Handler):
    """uvicorn's own messages go to the log bus, never to a terminal the TUI draws on."""

    def emit(self, record: logging.LogRecord) -> None:
        level = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}.get(
            record.levelno, "error"
        )
        LOG_BUS.emit(level, "server", record.getMessage(), logger=record.name)


_bridge: _LogBusHandler | None = None


def _bridge_uvicorn_logs() -> None:
    global _bridge
    if _bridge is not None:
        return
    _bridge = _LogBusHandler(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [_bridge]
        logger.propagate = False
        logger.setLevel(logging.WARNING)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ServerError(f"cannot resolve host {host!r}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


class ServerHandle:
    """The server inside an already-running asyncio app: `await start()`, `await stop()`.

    Port 0 picks a free port; `url` is then the real one. Signals are left to the app.
    `settings` is the `[server]` table (limits, allowed hosts, CORS origins, timeouts);
    `host`, `port`, `api_key` and `max_body_bytes`, when given, override its values.
    `loader` lets LM Studio SDK clients load models (it is closed on `stop`); `sdk_port`
    also serves the app on that loopback port, where the SDK looks for LM Studio (0: not).
    """

    def __init__(
        self,
        models: ModelProvider,
        *,
        host: str | None = None,
        port: int | None = None,
        api_key: str | None = None,
        max_body_bytes: int | None = None,
        shutdown_timeout: float = 3.0,
        settings: ServerSettings | None = None,
        loader: ModelLoader | None = None,
        sdk_port: int = 0,
    ) -> None:
        self.models = models
        self.settings = settings or ServerSettings()
        self.host = host if host is not None else self.settings.host
        self.port = port if port is not None else self.settings.port
        self.api_key = (api_key if api_key is not None else self.settings.api_key) or None
        self.max_body_bytes = max_body_bytes or self.settings.max_body_bytes
        self.shutdown_timeout = shutdown_timeout
        self.loader = loader
        self.sdk_port = sdk_port
        self.sdk_url: str | None = None
        """Where `lms.llm()` finds this server ("127.0.0.1:41343"), once started with an
        SDK port that was free; None otherwise."""
        self._server: Any = None
        self._app: Starlette | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def url(self) -> str:
        """The base URL for OpenAI clients, e.g. http://127.0.0.1:1234/v1."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def start(self) -> None:
        if self.running:
            return
        import uvicorn

        _bridge_uvicorn_logs()
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        sockets = [sock]
        # One uvicorn serves both: the SDK probes its own port, then talks to the same app.
        sdk = bind_sdk_port(self.sdk_port)
        if sdk is not None:
            sockets.append(sdk)
            self.sdk_url = sdk_port_url(sdk)
        settings = self.settings.model_copy(update={
            "host": self.host, "port": self.port, "api_key": self.api_key,
            "max_body_bytes": self.max_body_bytes,
        })
        app = self._app = create_app(self.models, settings=settings, loader=self.loader)
        config = uvicorn.Config(
            app,
            http=protocol_with(settings.header_timeout),
            timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, int(self.shutdown_timeout)),
        )
        self._server = _embedded_server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=sockets))
        while not self._server.started:
            if self._task.done():
                for bound in sockets:
                    bound.close()
                self.sdk_url = None
                error = self._task.exception()
                raise ServerError(f"the server did not start: {error!r}")
            await asyncio.sleep(0.01)
        LOG_BUS.emit("info", "server", f"serving at {self.url}", url=self.url)

    async def stop(self) -> None:
        if self._task is None:
            return
        server, task = self._server, self._task
        # Streams in flight end now (finish_reason "stop") instead of holding shutdown up.
        if self._app is not None:
            self._app.state.api.cancel_all()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), self.shutdown_timeout + 2)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except Exception as err:  # noqa: BLE001 - stopping must always succeed
            LOG_BUS.emit("warning", "server", f"server stopped with an error: {err!r}")
        self._task = None
        self.sdk_url = None
        if self.loader is not None:
            # What SDK clients loaded goes with the server; the app's own models stay.
            await asyncio.to_thread(self.loader.close)
        LOG_BUS.emit("info", "server", f"stopped serving at {self.url}", url=self.url)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _embedded_server(config: Any) -> Any:
    """A uvicorn server that leaves signals alone: the host app owns Ctrl+C and SIGTERM."""
    import uvicorn

    class EmbeddedServer(uvicorn.Server):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return EmbeddedServer(config)


def run_server(
    settings: Any,
    model: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    *,
    out: TextIO | None = None,
) -> int:
    """Load a model and serve it until Ctrl+C or SIGTERM; requests are printed to `out`."""
    out = out if out is not None else sys.stderr
    from engine.api import llm
    from engine.errors import ModelLoadError, ModelNotFoundError

    try:
        handle = llm(model, settings=settings)
    except (ModelLoadError, ModelNotFoundError, ValueError) as err:
        print(f"llamaterm: {err}", file=out)
        return 1
    served = ServedModel(handle.identifier, handle.loaded_model, settings.prediction_defaults())
    registry = ModelRegistry([served])
    section = getattr(settings, "server", None)
    server = ServerHandle(
        registry, host=host, port=port, api_key=api_key, settings=section,
        loader=CatalogLoader.from_settings(registry, settings),
        sdk_port=section.sdk_port if section is not None else 0,
    )
    try:
        return asyncio.run(_serve_until_signal(server, out))
    finally:
        handle.unload()


async def _serve_until_signal(server: ServerHandle, out: TextIO) -> int:
    try:
        await server.start()
    except ServerError as err:
        print(f"llamaterm: {err}", file=out)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    unsubscribe = LOG_BUS.subscribe(_printer(out))
    for line in _banner(server):
        print(line, file=out, flush=True)
    try:
        await stop.wait()
    finally:
        unsubscribe()
        print("stopping", file=out, flush=True)
        await server.stop()
    return 0


def _banner(server: ServerHandle) -> list[str]:
    ids = ", ".join(m.id for m in server.models.served_models())
    lines = [f"serving {ids} at {server.url}"]
    lines.append("API key required" if server.api_key else "no API key required")
    address = server.url.removeprefix("http://").removesuffix("/v1")
    lines.append(f"LM Studio SDK: lms.Client({address!r})")
    if server.sdk_url:
        lines.append(f"lms.llm() finds it on {server.sdk_url}")
    if not is_loopback(server.host) and not server.api_key:
        lines.append(f"warning: {server.host} is reachable from other machines and no --api-key is set")
    lines.append("Ctrl+C stops the server")
    return lines


def _printer(out: TextIO) -> Callable[[LogRecord], None]:
    def show(record: LogRecord) -> None:
        if record.kind == "server" or record.level == "error":
            print(f"[{record.level}] {record.message}", file=out, flush=True)

    return show
