"""OpenAI's `/v1` endpoints: `models`, `chat/completions` and (legacy) `completions`.

Each reply is one engine prediction: the handlers parse the body (`schemas`), turn it
into engine inputs (`translate`), and return the result as JSON or as server-sent
events (`streaming`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.formatting.conversation import respond_events

from .errors import ApiError
from .models import model_json
from .requestlog import RequestLog
from .schemas import ChatCompletionRequest, CompletionRequest, parse
from .streaming import EventStreamResponse
from .translate import (
    ChatChunks,
    Reply,
    TextChunks,
    chat_completion,
    chat_job,
    prediction_config,
    text_completion,
    with_stop_tokens,
)

if TYPE_CHECKING:
    from .app import Api


def routes(api: Api) -> list[Route]:
    endpoints = OpenAIv1(api)
    return [
        api.route("/v1/models", endpoints.list_models, "GET"),
        api.route("/v1/models/{model_id:path}", endpoints.get_model, "GET"),
        api.route("/v1/chat/completions", endpoints.chat_completions, "POST"),
        api.route("/v1/completions", endpoints.completions, "POST"),
    ]


class OpenAIv1:
    """The endpoints, over the shared plumbing."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def list_models(self, request: Request, log: RequestLog) -> Response:
        data = [model_json(m) for m in self.api.models.served_models()]
        return JSONResponse({"object": "list", "data": data})

    async def get_model(self, request: Request, log: RequestLog) -> Response:
        model_id = request.path_params["model_id"]
        served = next((m for m in self.api.models.served_models() if m.id == model_id), None)
        if served is None:
            raise ApiError(f"model {model_id!r} is not loaded here", status=404,
                           param="model", code="model_not_found")
        return JSONResponse(model_json(served))

    async def chat_completions(
        self, request: Request, log: RequestLog
    ) -> Response | EventStreamResponse:
        raw = await self.api.json_body(request)
        parsed: ChatCompletionRequest = parse(ChatCompletionRequest, raw)
        served = self.api.model(parsed.model)
        log.model, log.stream = served.id, bool(parsed.stream)
        job = chat_job(parsed)
        job.config = await with_stop_tokens(job.config, served, parsed.stop_token_ids)
        self.api.admit(log)
        stream = self.api.track(respond_events(
            served.model,
            job.chat,
            job.config,
            defaults=served.defaults,
            tools=job.tools or None,
            tool_choice=job.tool_choice,
            template_kwargs=job.template_kwargs,
            parallel_tool_calls=job.parallel_tool_calls,
        ))
        reply = Reply(served.id, "chat.completion.chunk" if parsed.stream else "chat.completion")
        logprobs = job.config.top_logprobs is not None
        if parsed.stream:
            return EventStreamResponse(
                stream, ChatChunks(reply, parsed.include_usage, logprobs), log
            )
        result = await self.api.result(request, stream, log)
        return JSONResponse(chat_completion(reply, result, logprobs))

    async def completions(self, request: Request, log: RequestLog) -> Response | EventStreamResponse:
        raw = await self.api.json_body(request)
        parsed: CompletionRequest = parse(CompletionRequest, raw)
        served = self.api.model(parsed.model)
        log.model, log.stream = served.id, bool(parsed.stream)
        config = await with_stop_tokens(
            prediction_config(parsed.sampling()), served, parsed.stop_token_ids
        )
        config = config.merged_over(served.defaults)
        self.api.admit(log)
        stream = self.api.track(served.model.complete_events(parsed.text, config))
        reply = Reply(served.id, "text_completion")
        logprobs = config.top_logprobs is not None
        if parsed.stream:
            return EventStreamResponse(
                stream, TextChunks(reply, parsed.include_usage, logprobs), log
            )
        result = await self.api.result(request, stream, log)
        return JSONResponse(text_completion(reply, result, logprobs))
