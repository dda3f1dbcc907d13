"""`ApiError`, and how every failure becomes an OpenAI-shaped error body.

OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, where `param` is the
path of the field at fault as OpenAI writes it (`messages[0].content`), with a
`detail` string beside it for Xinference's clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

CLIENT_CLOSED = 499
"""The status logged for a request whose client went away (nginx's convention)."""


class ApiError(Exception):
    """An error that becomes an OpenAI-shaped JSON response."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            },
            # Xinference's clients read the message from `detail` (FastAPI's shape).
            "detail": self.message,
        }


def error_response(error: ApiError) -> Response:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


# The request field an engine refusal is about, by how the engine's message starts;
# any other refusal is about the messages (the template would not render them).
_ENGINE_PARAMS = {"invalid grammar": "grammar", "logitBias:": "logit_bias"}


def engine_error(error: BaseException) -> ApiError:
    """A failed prediction: ValueErrors (template refusals, bad grammars) are the request's fault."""
    message = str(error) or type(error).__name__
    if isinstance(error, ValueError):
        param = next((p for start, p in _ENGINE_PARAMS.items() if message.startswith(start)), "messages")
        return ApiError(message, param=param, code="invalid_request")
    return ApiError(message, status=500, kind="server_error", code="prediction_failed")


def param_of(loc: Sequence[int | str], data: Any, error_type: str) -> str:
    """The path of the field a pydantic error is about, as OpenAI writes it: messages[0].content.

    Parts that are not keys of the input (union members, discriminator tags) are left out,
    except the last part of a missing field, which is the field's name.
    """
    parts: list[str] = []
    node = data
    for n, part in enumerate(loc):
        is_key = isinstance(node, dict) and part in node
        is_index = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if is_key or is_index:
            node = node[part]
        elif not (n == len(loc) - 1 and error_type in ("missing", "extra_forbidden")):
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".")


def validation_error(err: ValidationError, data: Any, prefix: str = "") -> ApiError:
    """The first of pydantic's complaints, naming the field it is about."""
    first = err.errors()[0]
    param = param_of(first["loc"], data, first["type"])
    param = f"{prefix}{param}" if prefix else param
    message = first["msg"]
    if first["type"] == "missing":
        message = "is required"
    return ApiError(f"{param or 'body'}: {message}", param=param or None, code="invalid_value")


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        f"the request body is {size} bytes, more than the server's limit of {limit} "
        "([server] max_body_bytes)",
        status=413,
        code="request_too_large",
    )


def client_closed() -> ApiError:
    return ApiError("the client closed the connection", status=CLIENT_CLOSED)
