"""The plumbing every endpoint shares (`Api`), and the Starlette app factory.

`Api.handle` wraps each endpoint: it checks the API key, logs the request once it is
answered, and turns an `ApiError` (or any bug) into an OpenAI error body, so that
nothing a request does can take the server down. `Api.json_body` reads a body within
the limits (JSON only, size, time, nesting) and `Api.admit` bounds the predictions
queued at once; the Host check and CORS are middleware (`security`). Endpoints themselves live in one
module per protocol (`openai_v1`, `responses`, `xinference`, the `lmstudio` package), each
handing `create_app` its routes.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.llama import EventStream
from engine.logbus import LOG_BUS
from engine.prediction import PredictionResult

from . import openai_v1, responses, xinference
from .errors import (
    CLIENT_CLOSED,
    ApiError,
    client_closed,
    engine_error,
    error_response,
    too_large,
)
from .lmstudio import ModelLoader, SdkState, lmstudio_routes
from .models import ModelProvider, ServedModel
from .requestlog import RequestLog
from .security import middleware
from .settings import ServerSettings
from .streaming import EventStreamResponse, drain, unless_disconnected

Endpoint = Callable[[Request, RequestLog], Awaitable[Response | EventStreamResponse]]

MAX_JSON_DEPTH = 64
"""Nesting a request body may have; OpenAI's requests need a handful of levels, tool
schemas a dozen or so, and deeper ones would only exercise recursive code downstream."""
RETRY_AFTER = 2
"""Seconds a client told "busy" (503) is asked to wait before it tries again."""


class Api:
    """What the endpoints share: the model provider, the settings, the predictions in flight."""

    def __init__(self, models: ModelProvider, settings: ServerSettings) -> None:
        self.models = models
        self.settings = settings
        # Weak: a prediction leaves the set when nothing refers to its stream any more.
        self._active: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._queued = 0

    def track(self, stream: EventStream) -> EventStream:
        """Remember a prediction, so that `cancel_all` can stop it."""
        self._active.add(stream)
        return stream

    def admit(self, log: RequestLog) -> None:
        """Count a prediction in until its request is answered; 503 beyond the queue limit."""
        limit = self.settings.queue_limit
        if limit and self._queued >= limit:
            raise ApiError(
                f"the server is busy: {self._queued} predictions are running or waiting, "
                f"its limit ([server] queue_limit); try again in a moment",
                status=503,
                kind="server_error",
                code="server_busy",
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        self._queued += 1
        log.on_finish.append(self._release)

    def _release(self) -> None:
        self._queued -= 1

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
        key = self.settings.api_key
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
        # Only JSON: a form or text/plain POST is what a web page can send without asking.
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != "application/json":
            raise ApiError(
                f"send the body as JSON, with 'Content-Type: application/json' "
                f"(got {media or 'no content type'})",
                status=415,
                code="unsupported_media_type",
            )
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(int(declared), limit)
        body = bytearray()
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        raise too_large(len(body), limit)
        except ClientDisconnect:
            raise client_closed() from None
        except TimeoutError:
            raise ApiError(
                f"the request body took more than {self.settings.body_timeout:g} s to arrive "
                "([server] body_timeout)",
                status=408,
                code="request_timeout",
            ) from None
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(
                f"the request body is not valid JSON: {err}", code="invalid_json"
            ) from None
        except RecursionError:
            raise _too_deep() from None
        if not isinstance(data, dict):
            raise ApiError("the request body must be a JSON object", code="invalid_json")
        if _nested_deeper(data, MAX_JSON_DEPTH):
            raise _too_deep()
        return data

    def model(self, model_id: str | None) -> ServedModel:
        """The model a request names (or the default one), else a 404 (as OpenAI answers
        for an unknown model, so that clients raise NotFoundError) or a 503 error.

        With exactly one model loaded, any name reaches it, as in LM Studio: clients
        hard-code names ("gpt-4o-mini"), and there is nothing else they could mean."""
        served = self.models.get(model_id)
        if served is not None:
            return served
        loaded = list(self.models.served_models())
        if not loaded:
            raise ApiError("no model is loaded", status=503, kind="server_error", code="no_model")
        if len(loaded) == 1:
            return loaded[0]
        raise ApiError(
            f"model {model_id!r} is not loaded here (loaded: {', '.join(m.id for m in loaded)})",
            status=404,
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


def _nested_deeper(data: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` deep (without recursing ourselves)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _too_deep() -> ApiError:
    return ApiError(
        f"the request body nests objects or arrays more than {MAX_JSON_DEPTH} deep",
        code="too_deeply_nested",
    )


async def health(request: Request, log: RequestLog) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(
    models: ModelProvider,
    *,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    settings: ServerSettings | None = None,
    loader: ModelLoader | None = None,
) -> Starlette:
    """The ASGI app: OpenAI's endpoints (chat, completions, Responses), Xinference's
    extras and LM Studio's SDK protocol over the provider's loaded models.

    `settings` (the `[server]` table) sets the limits and who may call; `api_key` and
    `max_body_bytes`, when given, override its values. `settings.host` is where the
    server is bound, which decides the Host check (see `security`). `loader` lets SDK
    clients load models from the catalog; without one they use the loaded models only.
    """
    settings = settings or ServerSettings()
    overrides = {"api_key": api_key, "max_body_bytes": max_body_bytes}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    api = Api(models, settings)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "unknown_endpoint", 405: "method_not_allowed"}.get(status, "http_error")
        message = f"{code.replace('_', ' ')}: {request.method} {request.url.path}"
        return error_response(ApiError(message, status=status, code=code))

    routes = [
        *openai_v1.routes(api),
        *responses.routes(api),
        *xinference.routes(api),
        api.route("/health", health, "GET"),
        *lmstudio_routes(SdkState(models, api_key=settings.api_key, loader=loader)),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware(settings.host, settings.allowed_hosts, settings.cors_origins),
        exception_handlers={HTTPException: http_error},
    )
    app.state.api = api
    return app
