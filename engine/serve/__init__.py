"""The HTTP server: OpenAI's chat, completions and Responses APIs, Xinference's shapes,
and the LM Studio SDK's websocket protocol.

Split as llama-cpp-python splits its `server/` package:

| module | holds |
| --- | --- |
| `settings.py` | the `[server]` config table and the defaults |
| `models.py` | which loaded model serves a request (`ServedModel`, `ModelRegistry`) |
| `errors.py` | `ApiError` and how failures become OpenAI error bodies |
| `schemas.py` | the request bodies, as pydantic models |
| `translate.py` | a request into engine inputs; results and events into OpenAI JSON |
| `streaming.py` | server-sent events from one prediction, with disconnect handling |
| `requestlog.py` | one log-bus record per request |
| `security.py` | the Host check (DNS rebinding), pages' websockets, CORS for listed origins |
| `app.py` | the plumbing every endpoint shares (body limits, queue), the app factory |
| `openai_v1.py` | OpenAI's `/v1` endpoints: models, chat completions, completions |
| `responses.py` | OpenAI's Responses API: output items, stream events, kept responses, routes |
| `responses_request.py` | a Responses request and its input as a chat completion request |
| `xinference.py` | what Xinference's client adds: model fields, `/v1/cluster/auth` |
| `lmstudio/` | LM Studio's SDK protocol: its greeting and websockets (`lmstudio_routes`) |
| `connections.py` | uvicorn's HTTP protocol with a deadline for a request's headers |
| `run.py` | starting and stopping uvicorn (`ServerHandle`, `run_server`), the banner |

A protocol is a module beside `openai_v1.py` (as the Responses API and Xinference's
shapes are), or a package (`lmstudio/`, the LM Studio SDK's websocket protocol), that
reuses `translate`, `streaming` and `app`'s plumbing and hands `create_app` its routes.

Names are imported lazily so that `engine.settings` can read `serve.settings` without
pulling in Starlette.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_HOST": "settings",
    "DEFAULT_PORT": "settings",
    "DEFAULT_MAX_BODY_BYTES": "settings",
    "ServerSettings": "settings",
    "ModelProvider": "models",
    "ModelRegistry": "models",
    "ServedModel": "models",
    "ApiError": "errors",
    "create_app": "app",
    "ServerHandle": "run",
    "ServerError": "run",
    "run_server": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
