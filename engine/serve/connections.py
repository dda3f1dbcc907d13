"""uvicorn's HTTP/1.1 protocol with a deadline for each request's headers.

uvicorn times out only an idle connection after a response, and its timer stops at the
first byte: a client that connects and sends nothing, or half a request line, holds a
connection (and its memory) for ever. Here a connection waiting for a request has
`header_timeout` seconds, from connecting or from the previous response, to send all of
that request's headers; then it is closed. (Time to send a body is the app's: see
`app.Api.json_body`.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class TimedH11Protocol(H11Protocol):  # type: ignore[misc]
    header_timeout: float = 10.0

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._waiting_for_headers():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Pipelined requests may already have started the next cycle.
        if self._waiting_for_headers() and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()


def protocol_with(header_timeout: float) -> type[Any]:
    """The protocol class uvicorn's `http` option takes, with this header deadline."""
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout": header_timeout})
