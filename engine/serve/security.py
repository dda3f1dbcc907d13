"""What a request must be before the server looks at it: sent to a host it answers to,
and readable by a web page only from an origin the config lists.

A page in the person's browser can reach a local server two ways: a "simple" request
(a `text/plain` POST needs no preflight; `app.Api.json_body` refuses anything but JSON
with 415), and DNS rebinding (a name the attacker controls resolves to 127.0.0.1, so the
browser sends `Host: evil.example`). Bound to loopback, the server therefore answers
only to loopback Host values and the `[server] allowed_hosts` names; CORS headers go
only to `[server] cors_origins`.

Websockets (the LM Studio SDK's) get the same Host check, and one more: CORS does not
cover them, so a page on any site may open `ws://127.0.0.1:PORT/llm` with a loopback
Host. A browser always names the page's origin in the handshake and programs (the SDK)
send none, so an upgrade with an `Origin` outside `[server] cors_origins` is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError, error_response
from .requestlog import RequestLog


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine only (localhost, 127.x, ::1)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The name part of a Host header, lower case: "a.b:80" → "a.b", "[::1]:80" → "::1"."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


class HostCheck:
    """Which Host header values the server answers to."""

    def __init__(self, bound_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        names = {host_name(h) for h in allowed_hosts}
        self.any = "*" in names or (not names and not is_loopback(bound_host))
        bound = host_name(bound_host)
        # A wildcard address is not a name anyone sends; a concrete one is.
        if bound not in ("0.0.0.0", "::", ""):
            names.add(bound)
        self.names = frozenset(names)

    def allows(self, header: str | None) -> bool:
        if self.any or header is None:
            # No Host at all is HTTP/1.0 from a program, never a browser.
            return True
        name = host_name(header)
        return is_loopback(name) or name in self.names


class HostGuard:
    """ASGI middleware that answers 403 to a Host the server does not answer to, and
    refuses a websocket opened by a page from an origin not in `origins`."""

    def __init__(self, app: ASGIApp, check: HostCheck, origins: Iterable[str] = ()) -> None:
        self.app = app
        self.check = check
        self.origins = frozenset(o.rstrip("/").lower() for o in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k: v.decode("latin-1") for k, v in scope["headers"] if k in (b"host", b"origin")}
        host = headers.get(b"host")
        refusal, code = None, "host_not_allowed"
        if not self.check.allows(host):
            refusal = (
                f"this server does not answer to the host {host!r}: add it to [server] "
                "allowed_hosts if you mean to reach it by that name"
            )
        elif scope["type"] == "websocket" and not self._origin_allowed(headers.get(b"origin")):
            code = "origin_not_allowed"
            refusal = (
                f"a web page from {headers[b'origin']!r} may not open this websocket: add "
                "the origin to [server] cors_origins if you mean it to"
            )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        error = ApiError(refusal, status=403, code=code)
        client = scope.get("client")
        method = scope.get("method", "GET")
        log = RequestLog(method, scope["path"], f"{client[0]}:{client[1]}" if client else "")
        log.finish(error.status, error=error.message)
        if scope["type"] == "websocket":
            # Closed before it is accepted: the server answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        await error_response(error)(scope, receive, send)

    def _origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        return "*" in self.origins or origin.rstrip("/").lower() in self.origins


def middleware(bound_host: str, allowed_hosts: Iterable[str], cors_origins: Iterable[str]) -> list[Middleware]:
    """The app's middleware, outermost first: the Host check, then CORS if any origin is listed."""
    origins = list(cors_origins)
    stack = [Middleware(HostGuard, check=HostCheck(bound_host, allowed_hosts), origins=origins)]
    if origins:
        stack.append(Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            # The origin is trusted: let its pages send what OpenAI's clients send.
            allow_headers=["*"],
            max_age=600,
        ))
    return stack
