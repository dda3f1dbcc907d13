"""The plumbing every endpoint shares (`Api`), and the Starlette app factory.

`Api.handle` wraps each endpoint: it checks the API key, logs the request once it is
answered, and turns an `ApiError` (or any bug) into an OpenAI error body, so that
nothing a request does can take the server down. Endpoints themselves live in one
module per protocol (`openai_v1` now), which hands `create_app` its routes.
"""

from __future__ import annotations

import hmac
import json
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.logbus import LOG_BUS
from engine.prediction import PredictionResult
from engine.runtime import EventStream

from . import openai_v1
from .errors import (
    CLIENT_CLOSED,
    ApiError,
    client_closed,
    engine_error,
    error_response,
    too_large,
)
from .models import ModelProvider, ServedModel
from .requestlog import RequestLog
from .settings import DEFAULT_MAX_BODY_BYTES
from .streaming import EventStreamResponse, drain, unless_disconnected

Endpoint = Callable[[Request, RequestLog], Awaitable[Response | EventStreamResponse]]


@dataclass(slots=True)
class ServerOptions:
    api_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class Api:
    """What the endpoints share: the model provider, the options, the predictions in flight."""

    def __init__(self, models: ModelProvider, options: ServerOptions) -> None:
        self.models = models
        self.options = options
        # Weak: a prediction leaves the set when nothing refers to its stream any more.
        self._active: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def track(self, stream: EventStream) -> EventStream:
        """Remember a prediction, so that `cancel_all` can stop it."""
        self._active.add(stream)
        return stream

    def cancel_all(self) -> None:
        """Stop every prediction still running, so that a server stops at once."""
        for stream in list(self._active):
            stream.cancel()

    def route(self, path: str, endpoint: Endpoint, method: str) -> Route:
        """A Starlette route that runs `endpoint` through `handle`."""

        async def handler(request: Request) -> Any:
            # An EventStreamResponse is an ASGI app, which is all Starlette calls it as.
            return await self.handle(request, endpoint)

        return Route(path, handler, methods=[method])

    async def handle(self, request: Request, endpoint: Endpoint) -> Response | EventStreamResponse:
        client = f"{request.client.host}:{request.client.port}" if request.client else ""
        log = RequestLog(request.method, request.url.path, client)
        try:
            self._check_key(request)
            response = await endpoint(request, log)
        except ApiError as err:
            log.finish(err.status, error=err.message)
            return error_response(err)
        except Exception as err:  # noqa: BLE001 - nothing a request does may crash the server
            LOG_BUS.emit("error", "server", f"internal error: {err!r}", path=request.url.path)
            error = ApiError(f"internal server error: {err}", status=500, kind="server_error")
            log.finish(500, error=repr(err))
            return error_response(error)
        if not isinstance(response, EventStreamResponse):
            log.finish(response.status_code)
        return response

    def _check_key(self, request: Request) -> None:
        key = self.options.api_key
        if not key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise ApiError(
                "invalid or missing API key: send it as 'Authorization: Bearer <key>'",
                status=401,
                code="invalid_api_key",
            )

    async def json_body(self, request: Request) -> dict[str, Any]:
        """The body as a JSON object, read no further than the size limit."""
        limit = self.options.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(int(declared), limit)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large(len(body), limit)
        except ClientDisconnect:
            raise client_closed() from None
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(
                f"the request body is not valid JSON: {err}", code="invalid_json"
            ) from None
        if not isinstance(data, dict):
            raise ApiError("the request body must be a JSON object", code="invalid_json")
        return data

    def model(self, model_id: str | None) -> ServedModel:
        """The model a request names (or the default one), else a 404-style or 503 error."""
        served = self.models.get(model_id)
        if served is not None:
            return served
        known = [m.id for m in self.models.served_models()]
        if not known:
            raise ApiError("no model is loaded", status=503, kind="server_error", code="no_model")
        raise ApiError(
            f"model {model_id!r} is not loaded here (loaded: {', '.join(known)})",
            param="model",
            code="model_not_found",
        )

    async def result(self, request: Request, stream: EventStream, log: RequestLog) -> PredictionResult:
        """The whole prediction, cancelled if the client stops waiting for it."""
        try:
            gone, _ = await unless_disconnected(request.receive, drain(stream))
        except BaseException:
            stream.cancel()
            raise
        if gone:
            stream.cancel()
            result = await drain(stream)
            log.finish(CLIENT_CLOSED, result)
            raise client_closed()
        if stream.error is not None:
            raise engine_error(stream.error)
        assert stream.result is not None
        log.finish(200, stream.result)
        return stream.result


async def health(request: Request, log: RequestLog) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    models: ModelProvider,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app: OpenAI's endpoints over the provider's loaded models."""
    api = Api(models, ServerOptions(api_key=api_key or None, max_body_bytes=max_body_bytes))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "unknown_endpoint", 405: "method_not_allowed"}.get(status, "http_error")
        message = f"{code.replace('_', ' ')}: {request.method} {request.url.path}"
        return error_response(ApiError(message, status=status, code=code))

    routes = [*openai_v1.routes(api), api.route("/health", health, "GET")]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.api = api
    return app
