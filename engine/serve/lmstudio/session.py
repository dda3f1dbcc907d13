"""One SDK websocket: the handshake, then calls and channels multiplexed on it.

The SDK opens one websocket per namespace (`/llm`, `/system`, `/embedding`) and first
sends `{authVersion, clientIdentifier, clientPasskey}`; when the server has an API key
the passkey must be that key, as the `Authorization` header must on the HTTP routes.
Then `rpcCall` messages each get one `rpcResult`/`rpcError`, and `channelCreate` opens a
channel that lives until the server's `channelClose`/`channelError`; the client may
`channelSend` on it (a prediction's `cancel`). Every call and channel runs as its own
task, so a long prediction never holds up a `tokenize`; all of them end with the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from engine.logbus import LOG_BUS

from . import protocol
from .channels import Channel, ChannelHandler
from .protocol import LmsError, Message
from .rpc import Handler
from .state import SdkState


def passkey_ok(state: SdkState, auth: Any) -> bool:
    if not state.api_key:
        return True
    given = auth.get("clientPasskey") if isinstance(auth, dict) else None
    return isinstance(given, str) and hmac.compare_digest(given.encode(), state.api_key.encode())


class Session:
    """The calls and channels of one websocket."""

    def __init__(
        self,
        ws: WebSocket,
        namespace: str,
        state: SdkState,
        rpcs: Mapping[str, Handler],
        channels: Mapping[str, ChannelHandler],
    ) -> None:
        self.ws = ws
        self.namespace = namespace
        self.state = state
        self.rpcs = rpcs
        self.channel_handlers = channels
        self.open: dict[int, Channel] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self._closed = False

    async def send(self, message: Message) -> None:
        if self._closed:
            return
        async with self._send_lock:
            try:
                await self.ws.send_text(json.dumps(message, ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError, OSError):
                # The client is gone; the receive loop notices and ends the session.
                self._closed = True

    async def run(self) -> None:
        await self.ws.accept()
        try:
            auth = await self._receive()
        except WebSocketDisconnect:
            return
        if not passkey_ok(self.state, auth):
            LOG_BUS.emit("warning", "server", f"LM Studio SDK /{self.namespace}: wrong passkey")
            await self.send(protocol.auth_failed(
                "invalid API key: the client passkey must be the server's API key"))
            await self.ws.close(code=1008)
            return
        await self.send(protocol.auth_ok())
        try:
            while True:
                message = await self._receive()
                if message is not None:
                    self._dispatch(message)
        except WebSocketDisconnect:
            pass
        finally:
            self._closed = True
            await self._cancel_all()

    async def _receive(self) -> Message | None:
        """The next JSON object from the client; None for anything else (logged)."""
        event = await self.ws.receive()
        if event["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(event.get("code", 1000))
        # The SDK sends text frames; a binary frame holding JSON is taken as well.
        data = event.get("text") if event.get("text") is not None else event.get("bytes")
        try:
            message = json.loads(data or b"")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._warn("a message that is not JSON")
            return None
        if not isinstance(message, dict):
            self._warn("a message that is not a JSON object")
            return None
        return message

    def _dispatch(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "rpcCall":
            self._spawn(self._call(message))
        elif kind == "channelCreate":
            self._create(message)
        elif kind == "channelSend":
            channel = self.open.get(message.get("channelId"))  # type: ignore[arg-type]
            inner = message.get("message")
            if channel is not None and isinstance(inner, dict):
                channel.inbox.put_nowait(inner)
        elif kind == "channelClose":
            channel = self.open.get(message.get("channelId"))  # type: ignore[arg-type]
            if channel is not None:
                # The client gave up on the channel: stop it as a cancel would.
                channel.inbox.put_nowait({"type": "cancel"})
        else:
            # Signals and anything newer: logged, never fatal.
            self._warn(f"ignored message type {kind!r}")

    def _warn(self, message: str) -> None:
        LOG_BUS.emit("warning", "server", f"LM Studio SDK /{self.namespace}: {message}")

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _call(self, message: Message) -> None:
        call_id = message.get("callId")
        endpoint = message.get("endpoint")
        handler = self.rpcs.get(endpoint) if isinstance(endpoint, str) else None
        try:
            if handler is None:
                raise LmsError(f"/{self.namespace} has no endpoint {endpoint!r} here",
                               suggestion=_unsupported(self.namespace))
            result = await handler(self.state, message.get("parameter"))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure is an rpcError, never a crash
            _log_failure(self.namespace, str(endpoint), err)
            error = protocol.error_of(err)
            await self.send(protocol.rpc_error(call_id, error))  # type: ignore[arg-type]
            return
        await self.send(protocol.rpc_result(call_id, result))  # type: ignore[arg-type]

    def _create(self, message: Message) -> None:
        channel_id = message.get("channelId")
        endpoint = message.get("endpoint")
        if not isinstance(channel_id, int):
            self._warn("channelCreate without an id")
            return
        channel = Channel(channel_id, self.send)
        self.open[channel_id] = channel
        self._spawn(self._run_channel(channel, endpoint, message.get("creationParameter")))

    async def _run_channel(self, channel: Channel, endpoint: Any, parameter: Any) -> None:
        handler = self.channel_handlers.get(endpoint) if isinstance(endpoint, str) else None
        try:
            if handler is None:
                raise LmsError(f"/{self.namespace} has no channel {endpoint!r} here",
                               suggestion=_unsupported(self.namespace))
            await handler(self.state, parameter, channel)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure is a channelError, never a crash
            _log_failure(self.namespace, str(endpoint), err)
            await self.send(protocol.channel_error(channel.id, protocol.error_of(err)))
            return
        finally:
            self.open.pop(channel.id, None)
        await self.send(protocol.channel_close(channel.id))

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _unsupported(namespace: str) -> str:
    reasons = {
        "embedding": "llamaterm serves no embedding models",
        "files": "llamaterm serves no vision models, so it takes no image uploads",
        "repository": "search and download models in llamaterm (the Models screen or the CLI)",
    }
    default = "llamaterm implements the SDK's model, prediction and listing calls"
    return reasons.get(namespace, default)


def _log_failure(namespace: str, endpoint: str, err: BaseException) -> None:
    level = "warning" if isinstance(err, LmsError) else "error"
    LOG_BUS.emit(level, "server", f"LM Studio SDK /{namespace} {endpoint}: {err}",
                 error=repr(err))
