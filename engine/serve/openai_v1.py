"""OpenAI's `/v1` endpoints: `models`, `chat/completions` and (legacy) `completions`.

Each reply is one engine prediction: the handlers parse the body (`schemas`), turn it
into engine inputs (`translate`), and return the result as JSON or as server-sent
events (`streaming`). `n > 1` (not streamed) is n predictions started together, so that
a local model evaluates the prompt once and the choices share its cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.formatting.conversation import respond_events
from engine.llama import EventStream
from engine.prediction import PredictionConfig, PredictionResult

from .errors import CLIENT_CLOSED, ApiError, client_closed, engine_error
from .models import model_json
from .requestlog import RequestLog
from .schemas import ChatCompletionRequest, CompletionRequest, parse
from .streaming import EventStreamResponse, drain, unless_disconnected
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
        choices = _choices(parsed.n, bool(parsed.stream))
        for _ in range(choices):
            self.api.admit(log)

        def start(config: PredictionConfig) -> EventStream:
            return respond_events(
                served.model,
                job.chat,
                config,
                defaults=served.defaults,
                tools=job.tools or None,
                tool_choice=job.tool_choice,
                template_kwargs=job.template_kwargs,
                parallel_tool_calls=job.parallel_tool_calls,
            )

        logprobs = job.config.top_logprobs is not None
        if choices > 1:
            reply = Reply(served.id, "chat.completion")
            results = await self._all(request, log, served.model, job.config, choices, start)
            return JSONResponse(_merged([chat_completion(reply, r, logprobs) for r in results]))
        stream = self.api.track(start(job.config))
        reply = Reply(served.id, "chat.completion.chunk" if parsed.stream else "chat.completion")
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
        choices = _choices(parsed.n, bool(parsed.stream))
        for _ in range(choices):
            self.api.admit(log)
        reply = Reply(served.id, "text_completion")
        logprobs = config.top_logprobs is not None
        if choices > 1:
            model = served.model
            results = await self._all(
                request, log, model, config, choices,
                lambda c: model.complete_events(parsed.text, c),
            )
            return JSONResponse(_merged([text_completion(reply, r, logprobs) for r in results]))
        stream = self.api.track(served.model.complete_events(parsed.text, config))
        if parsed.stream:
            return EventStreamResponse(
                stream, TextChunks(reply, parsed.include_usage, logprobs), log
            )
        result = await self.api.result(request, stream, log)
        return JSONResponse(text_completion(reply, result, logprobs))

    async def _all(
        self,
        request: Request,
        log: RequestLog,
        model: Any,
        config: PredictionConfig,
        n: int,
        start: Callable[[PredictionConfig], EventStream],
    ) -> list[PredictionResult]:
        """`n` predictions of one prompt, started together (a local model evaluates the
        prompt once); each its own seed when the request gave one, so that the choices
        differ and the same request still gives the same choices."""
        together = getattr(model, "together", None)
        with together() if together is not None else contextlib.nullcontext():
            streams = [
                self.api.track(start(
                    config if config.seed is None or config.seed < 0
                    else config.model_copy(update={"seed": config.seed + i})
                ))
                for i in range(n)
            ]
        try:
            gone, _ = await unless_disconnected(
                request.receive, asyncio.gather(*(drain(s) for s in streams))
            )
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise
        if gone:
            for stream in streams:
                stream.cancel()
            for stream in streams:
                await drain(stream)
            log.finish(CLIENT_CLOSED, streams[0].result)
            raise client_closed()
        failed = next((s.error for s in streams if s.error is not None), None)
        if failed is not None:
            raise engine_error(failed)
        results = [s.result for s in streams if s.result is not None]
        log.finish(200, results[0])
        return results


def _choices(n: int | None, stream: bool) -> int:
    choices = n or 1
    if choices > 1 and stream:
        raise ApiError("n > 1 is not streamed here: ask for stream=false, or one choice",
                       param="n", code="invalid_value")
    return choices


def _merged(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One reply of several choices: each its index; the prompt counted once."""
    choices = [reply["choices"][0] for reply in replies]
    for index, choice in enumerate(choices):
        choice["index"] = index
    completion = sum(reply["usage"]["completion_tokens"] for reply in replies)
    merged = {**replies[0], "choices": choices}
    usage = merged["usage"]
    usage["completion_tokens"] = completion
    usage["total_tokens"] = usage["prompt_tokens"] + completion
    return merged
