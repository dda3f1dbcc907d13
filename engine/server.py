"""Old path of the server, kept while callers move to `engine.serve` (the package it became).

Every public name this module had still imports from here; new code imports from the
`engine.serve` modules that hold them.
"""

from __future__ import annotations

from engine.serve.app import Api, Endpoint, create_app
from engine.serve.errors import CLIENT_CLOSED, ApiError, error_response
from engine.serve.models import ModelProvider, ModelRegistry, ServedModel
from engine.serve.requestlog import RequestLog
from engine.serve.run import ServerError, ServerHandle, run_server
from engine.serve.schemas import (
    MAX_STOP_STRINGS,
    ChatCompletionRequest,
    CompletionRequest,
    FunctionName,
    FunctionSpec,
    JsonSchemaSpec,
    NamedToolChoice,
    ResponseFormat,
    StreamOptions,
    ToolSpec,
)
from engine.serve.settings import DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT
from engine.serve.streaming import ChunkWriter, EventStreamResponse, sse
from engine.serve.translate import (
    ChatChunks,
    ChatJob,
    Reply,
    TextChunks,
    chat_completion,
    chat_job,
    finish_reason,
    text_completion,
    tool_call_json,
    usage,
)

__all__ = [
    "CLIENT_CLOSED",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "MAX_STOP_STRINGS",
    "Api",
    "ApiError",
    "ChatChunks",
    "ChatCompletionRequest",
    "ChatJob",
    "ChunkWriter",
    "CompletionRequest",
    "Endpoint",
    "EventStreamResponse",
    "FunctionName",
    "FunctionSpec",
    "JsonSchemaSpec",
    "ModelProvider",
    "ModelRegistry",
    "NamedToolChoice",
    "Reply",
    "RequestLog",
    "ResponseFormat",
    "ServedModel",
    "ServerError",
    "ServerHandle",
    "StreamOptions",
    "TextChunks",
    "ToolSpec",
    "chat_completion",
    "chat_job",
    "create_app",
    "error_response",
    "finish_reason",
    "run_server",
    "sse",
    "text_completion",
    "tool_call_json",
    "usage",
]
