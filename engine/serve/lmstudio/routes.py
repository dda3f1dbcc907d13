"""The Starlette routes that make a llamaterm server look like LM Studio to its SDK.

    routes = [..., *lmstudio_routes(SdkState(registry, api_key=key, loader=loader))]

as `engine.serve.app.create_app` builds its app. `GET /lmstudio-greeting` is what the
SDK probes a port with; `/llm`, `/system` and `/embedding` are its websockets (the last
one lists no models and refuses the rest; `/files` (image uploads) and `/repository`
(model search) refuse every call).
The greeting is open (the SDK probes without credentials); the websockets check the
API key in their handshake; `security.HostGuard` has checked the Host (and a web
page's Origin) before either is reached.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import channels, rpc
from .channels import ChannelHandler
from .protocol import GREETING
from .rpc import Handler
from .session import Session
from .state import SdkState

NAMESPACES: dict[str, tuple[Mapping[str, Handler], Mapping[str, ChannelHandler]]] = {
    "llm": (rpc.LLM, channels.LLM),
    "system": (rpc.SYSTEM, {}),
    "embedding": (rpc.EMBEDDING, {}),
    # Answered, so that the SDK's error says what is missing rather than "not reachable".
    "files": ({}, {}),
    "repository": ({}, {}),
}


def lmstudio_routes(state: SdkState) -> list[BaseRoute]:
    """The greeting and one websocket route per namespace, over `state`."""

    async def greeting(request: Request) -> JSONResponse:
        return JSONResponse(GREETING)

    def socket(namespace: str) -> WebSocketRoute:
        rpcs, channel_handlers = NAMESPACES[namespace]

        async def endpoint(ws: WebSocket) -> None:
            await Session(ws, namespace, state, rpcs, channel_handlers).run()

        return WebSocketRoute(f"/{namespace}", endpoint)

    greeting_route = Route("/lmstudio-greeting", greeting, methods=["GET"])
    return [greeting_route, *(socket(n) for n in NAMESPACES)]
