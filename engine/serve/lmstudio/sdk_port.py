"""The SDK's own port: where `lms.llm()` looks for LM Studio when no client is set up.

The SDK probes `http://127.0.0.1:PORT/lmstudio-greeting` on its default ports (41343
first) and then opens its websockets on the port that answered, so the same app must
serve that port too. `bind_sdk_port` binds it on loopback when it is free; hand the
socket to uvicorn beside the main one (`server.serve(sockets=[main, sdk])`). A port
that is taken (LM Studio itself is running, or another llamaterm) is not an error:
the SDK then finds whatever answers there, and `lms.Client("host:port")` still reaches
the main port.
"""

from __future__ import annotations

import socket
import sys

from engine.logbus import LOG_BUS
from engine.serve.settings import DEFAULT_SDK_PORT

SDK_HOST = "127.0.0.1"
"""The SDK probes loopback only, whatever host the main port is on."""


def bind_sdk_port(port: int = DEFAULT_SDK_PORT, host: str = SDK_HOST) -> socket.socket | None:
    """A listening-ready socket on the SDK port, or None when it is off (0) or taken."""
    if port <= 0:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sys.platform != "win32":
        # Rebind at once after a restart (TIME_WAIT); on POSIX this never shares a port
        # someone listens on. On Windows the same option would, so it is left off there.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        LOG_BUS.emit(
            "info",
            "server",
            f"LM Studio SDK port {host}:{port} is taken ({err.strerror or err}); "
            "lms.llm() finds whatever answers there, lms.Client(host:port) reaches this server",
            port=port,
        )
        return None
    sock.set_inheritable(True)
    return sock


def sdk_port_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"
