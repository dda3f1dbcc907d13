"""Server-sent events from one prediction, and watching for a client that goes away.

Protocol-neutral: a `ChunkWriter` (see `translate`) turns each engine event into the
payloads a protocol streams; this module sends them as `data:` lines and ends with
`[DONE]`, as OpenAI's chat and completions do. The events that arrive together (one
wake-up of the event loop) are sent in one write. A protocol that streams otherwise (the
Responses API names its events and sends no `[DONE]`) subclasses `EventStreamResponse`
and overrides `done_marker`, `encode` and `failure`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from typing import Any, Protocol

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from engine.llama import EventStream
from engine.prediction import Event, Failed, Finished, Log, PredictionResult

from .errors import CLIENT_CLOSED, engine_error
from .requestlog import RequestLog


class ChunkWriter(Protocol):
    """Turns engine events into the payloads of server-sent events."""

    def first(self) -> dict[str, Any] | None:
        """What to send as soon as the stream opens, if anything."""
        ...

    def on_event(self, event: Event) -> list[dict[str, Any]]: ...


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()



async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(receive: Receive, work: Awaitable[Any]) -> tuple[bool, Any]:
    """Run `work` while watching the client; (True, None) if it went away first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        gone = not task.done()
        if gone:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return (True, None) if gone else (False, task.result())


async def _next_event(stream: EventStream) -> Event:
    """The next event that is not a log record (those already went to the log bus)."""
    async for event in stream:
        if not isinstance(event, Log):
            return event
    raise RuntimeError("the prediction ended without a result")


async def drain(stream: EventStream) -> PredictionResult | None:
    """Let a cancelled prediction finish, for its stats; the engine stops within a token."""
    async for _ in stream:
        pass
    return stream.result


class EventStreamResponse:
    """Server-sent events from one prediction, sent as OpenAI sends them.

    Nothing goes out until the engine has built the prompt, so that a template that
    refuses the messages is still an ordinary JSON error. A client that disconnects
    cancels the prediction (the engine stops it with stop reason userStopped), and
    the request is logged with the prediction's stats either way.
    """

    done_marker = True
    """Whether `data: [DONE]` ends the stream (chat and completions; not the Responses API)."""

    def __init__(self, stream: EventStream, writer: ChunkWriter, log: RequestLog) -> None:
        self.stream = stream
        self.writer = writer
        self.log = log

    def encode(self, payload: dict[str, Any] | str) -> bytes:
        """One server-sent event; a protocol that names its events overrides this."""
        return sse(payload)

    def failure(self, error: BaseException) -> list[dict[str, Any]]:
        """What to send when the prediction fails after the stream has opened."""
        return [engine_error(error).body()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            gone, status = await unless_disconnected(receive, self._send_all(send))
        except (OSError, ClientDisconnect):
            gone, status = True, CLIENT_CLOSED
        except BaseException as err:
            # Shutdown cancelled us, or a bug: the prediction must not run on for nobody.
            self.stream.cancel()
            reason = "server shutdown" if isinstance(err, asyncio.CancelledError) else repr(err)
            self.log.finish(500, error=reason)
            raise
        if gone:
            self.stream.cancel()
            status = CLIENT_CLOSED
        result = self.stream.result if not gone else await drain(self.stream)
        if self.stream.error is not None and status < 400:
            status = 500
        error = str(self.stream.error) if self.stream.error is not None else None
        self.log.finish(status, result, **({"error": error} if error else {}))

    async def _send_all(self, send: Send) -> int:
        first = await _next_event(self.stream)
        if isinstance(first, Failed):
            error = engine_error(first.error)
            await _send_json(send, error.status, error.body())
            return error.status
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        opening = self.writer.first()
        if opening is not None:
            await _send_body(send, self.encode(opening))
        event: Event = first
        while True:
            # Every event that arrived with this wake-up goes out in one write: one
            # `send` (a syscall, and a turn of the loop) per wake-up, not per token.
            body: list[bytes] = []
            ended = False
            for arrived in [event, *self.stream.take_ready()]:
                if isinstance(arrived, Log):
                    continue
                if isinstance(arrived, Failed):
                    body += [self.encode(payload) for payload in self.failure(arrived.error)]
                    ended = True
                    break
                body += [self.encode(payload) for payload in self.writer.on_event(arrived)]
                if isinstance(arrived, Finished):
                    ended = True
                    break
            if ended and self.done_marker:
                body.append(sse("[DONE]"))
            if body:
                await _send_body(send, b"".join(body))
            if ended:
                break
            event = await _next_event(self.stream)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200


async def _send_body(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})
