"""OpenAI's Responses API, `POST /v1/responses`, over the chat path.

A request's `input` items (messages, `function_call`, `function_call_output`,
`reasoning`), its `instructions`, function tools, `text.format` and `reasoning.effort`
become a chat completion request, which the chat handler's own translation
(`chat_job`) turns into one engine prediction. The engine's events become output
items (`reasoning`, `message` with `output_text`, `function_call`), or, streamed, the
documented event sequence: `response.created`, `response.in_progress`, then per item
`response.output_item.added`, its deltas (`response.output_text.delta`,
`response.reasoning_text.delta`, `response.function_call_arguments.delta`) and their
`.done` events, `response.output_item.done`, and at last `response.completed` (or
`response.incomplete` when a token limit cut it short) with `usage`.

Responses are kept in memory (a bounded number per model, `store=false` keeps none),
so that `previous_response_id` continues a conversation: the earlier turns come back
as chat messages in front of the new input, and the engine's KV-cache reuse makes
the follow-up cost only its new tokens. `GET`/`DELETE /v1/responses/{id}` read and
forget a kept response.

The request and its translation into a chat request are in `responses_request`; this
module holds the output items, the streamed events, the kept responses and the routes.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.formatting.conversation import respond_events
from engine.prediction import (
    ContentDelta,
    Event,
    Finished,
    PredictionResult,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallParseError,
    ToolCallStarted,
)

from .errors import ApiError, engine_error
from .requestlog import RequestLog
from .responses_request import (
    ResponsesRequest,
    chat_param,
    chat_request,
    function_tools,
    input_messages,
)
from .schemas import ChatCompletionRequest, parse
from .streaming import EventStreamResponse
from .translate import chat_job, with_stop_tokens

if TYPE_CHECKING:
    from .app import Api

KEPT_PER_MODEL = 64
"""How many responses each model keeps for `previous_response_id` (the oldest go first)."""

# --- the response ----------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def response_usage(result: PredictionResult) -> dict[str, Any]:
    stats = result.stats
    cached = max(0, stats.prompt_tokens_count - stats.prompt_tokens_evaluated)
    return {
        "input_tokens": stats.prompt_tokens_count,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": stats.predicted_tokens_count,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": stats.total_tokens_count,
    }


def _status(result: PredictionResult) -> tuple[str, dict[str, Any] | None]:
    reason = result.stats.stop_reason
    if reason in ("maxPredictedTokensReached", "contextLengthReached"):
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [part] if status != "in_progress" else []}


def reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if status != "in_progress" else []
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def output_items(result: PredictionResult) -> list[dict[str, Any]]:
    """A whole prediction's output: its reasoning, its text, its tool calls, in that order."""
    status, _ = _status(result)
    items = []
    if result.reasoning:
        items.append(reasoning_item(_new_id("rs"), result.reasoning, "completed"))
    if result.content or not result.tool_calls:
        items.append(message_item(_new_id("msg"), result.content, status))
    for call in result.tool_calls:
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        items.append(call_item(_new_id("fc"), call.id, call.name, arguments, "completed"))
    return items


@dataclass(slots=True)
class Draft:
    """One response's identity and the request fields every version of it echoes."""

    model: str
    request: ResponsesRequest
    id: str = field(default_factory=lambda: _new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def body(self, status: str, output: list[dict[str, Any]], result: PredictionResult | None = None,
             *, incomplete: dict[str, Any] | None = None,
             error: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.request
        effort = r.reasoning.effort if r.reasoning else None
        text_format = (r.text.format if r.text else None) or {"type": "text"}
        return {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": status, "background": False, "error": error,
            "incomplete_details": incomplete, "instructions": r.instructions,
            "max_output_tokens": r.max_output_tokens, "model": self.model, "output": output,
            "parallel_tool_calls": r.parallel_tool_calls is not False,
            "previous_response_id": r.previous_response_id,
            "reasoning": {"effort": effort, "summary": None}, "store": r.store is not False,
            "temperature": r.temperature, "top_p": r.top_p, "text": {"format": text_format},
            "tool_choice": r.tool_choice or "auto", "tools": function_tools(r.tools),
            "truncation": "disabled", "metadata": r.metadata or {},
            "completed_at": int(time.time()) if status == "completed" else None,
            "usage": response_usage(result) if result is not None else None,
        }

    def finished(self, output: list[dict[str, Any]], result: PredictionResult) -> dict[str, Any]:
        status, incomplete = _status(result)
        return self.body(status, output, result, incomplete=incomplete)


# --- streaming -------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenItem:
    kind: Literal["message", "reasoning", "function_call"]
    output_index: int
    item: dict[str, Any]
    text: str = ""
    call_index: int = -1


class ResponseEvents:
    """Engine events as Responses stream events (a ChunkWriter), building the output as
    it goes, so that `response.completed` holds exactly what the deltas added up to (but
    for a call that failed after it was announced: done as incomplete, then left out, as
    the whole response has it)."""

    def __init__(self, draft: Draft, on_done: Callable[[dict[str, Any]], None]) -> None:
        self.draft = draft
        self.on_done = on_done
        self.output: list[dict[str, Any]] = []
        self._open: _OpenItem | None = None
        self._sequence = 0
        self._in_progress_sent = False
        self._abandoned: set[str] = set()
        """Calls that failed after they were announced: done as incomplete, and not in
        the finished response (whose output is the whole reply's)."""

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return payload

    def first(self) -> dict[str, Any]:
        return self._event("response.created", response=self.draft.body("in_progress", []))

    def on_event(self, event: Event) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self._in_progress_sent:
            self._in_progress_sent = True
            out.append(self._event("response.in_progress",
                                   response=self.draft.body("in_progress", [])))
        if isinstance(event, ContentDelta) and event.text:
            out += self._text("message", event.text)
        elif isinstance(event, ReasoningDelta) and event.text:
            out += self._text("reasoning", event.text)
        elif isinstance(event, ToolCallStarted):
            out += self._close() + self._open_call(event.index, event.id, event.name)
        elif isinstance(event, ToolCallArgumentsDelta) and event.text:
            current = self._open
            if current is not None and current.kind == "function_call" \
                    and current.call_index == event.index:
                current.text += event.text
                out.append(self._event("response.function_call_arguments.delta",
                                       item_id=current.item["id"],
                                       output_index=current.output_index, delta=event.text))
        elif isinstance(event, ToolCallFinished):
            out += self._call_finished(event)
        elif isinstance(event, ToolCallParseError):
            out += self._call_failed()
        elif isinstance(event, Finished):
            out += self._finished(event.result)
        return out

    def failed(self, error: BaseException) -> list[dict[str, Any]]:
        api_error = engine_error(error)
        body = self.draft.body("failed", self.output,
                               error={"code": api_error.code or "server_error",
                                      "message": api_error.message})
        return [self._event("response.failed", response=body)]

    # -- items

    def _text(self, kind: Literal["message", "reasoning"], text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        current = self._open
        if current is None or current.kind != kind:
            out += self._close()
            current = self._open_item(kind, out)
        current.text += text
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        out.append(self._event(name, item_id=current.item["id"], output_index=current.output_index,
                               content_index=0, delta=text, **extra))
        return out

    def _open_item(self, kind: Literal["message", "reasoning"],
                   out: list[dict[str, Any]]) -> _OpenItem:
        if kind == "message":
            item = message_item(_new_id("msg"), "", "in_progress")
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        else:
            item = reasoning_item(_new_id("rs"), "", "in_progress")
            part = {"type": "reasoning_text", "text": ""}
        current = self._open = _OpenItem(kind, len(self.output), item)
        self.output.append(item)
        out.append(self._event("response.output_item.added", output_index=current.output_index,
                               item=dict(item)))
        out.append(self._event("response.content_part.added", item_id=item["id"],
                               output_index=current.output_index, content_index=0, part=part))
        return current

    def _open_call(self, index: int, call_id: str, name: str) -> list[dict[str, Any]]:
        item = call_item(_new_id("fc"), call_id, name, "", "in_progress")
        self._open = _OpenItem("function_call", len(self.output), item, call_index=index)
        self.output.append(item)
        return [self._event("response.output_item.added", output_index=len(self.output) - 1,
                            item=dict(item))]

    def _call_finished(self, event: ToolCallFinished) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        current = self._open
        if current is None or current.kind != "function_call" or current.call_index != event.index:
            # A parser that knows a call only once it closes never sent its start.
            out += self._close() + self._open_call(event.index, event.call.id, event.call.name)
            current = self._open
            assert current is not None
        canonical = json.dumps(event.call.arguments, ensure_ascii=False)
        if not current.text:
            current.text = canonical
            out.append(self._event("response.function_call_arguments.delta",
                                   item_id=current.item["id"], output_index=current.output_index,
                                   delta=canonical))
        elif not _is_json(current.text):
            current.text = canonical  # what the deltas spelled did not parse; the call did
        return out + self._close()

    def _call_failed(self) -> list[dict[str, Any]]:
        """The open call did not parse (its text comes back as content next): its item is
        done, incomplete; the next call, which takes its index, gets an item of its own."""
        current = self._open
        if current is None or current.kind != "function_call":
            return []
        self._open = None
        final = call_item(current.item["id"], current.item["call_id"], current.item["name"],
                          current.text, "incomplete")
        self.output[current.output_index] = final
        self._abandoned.add(final["id"])
        return [self._event("response.output_item.done", output_index=current.output_index,
                            item=final)]

    def _close(self) -> list[dict[str, Any]]:
        current, self._open = self._open, None
        if current is None:
            return []
        item_id, index = current.item["id"], current.output_index
        out: list[dict[str, Any]] = []
        if current.kind == "function_call":
            final = call_item(item_id, current.item["call_id"], current.item["name"],
                              current.text, "completed")
            out.append(self._event("response.function_call_arguments.done", item_id=item_id,
                                   output_index=index, name=final["name"], arguments=current.text))
        elif current.kind == "message":
            final = message_item(item_id, current.text, "completed")
            out.append(self._event("response.output_text.done", item_id=item_id, output_index=index,
                                   content_index=0, text=current.text, logprobs=[]))
            out.append(self._event("response.content_part.done", item_id=item_id,
                                   output_index=index, content_index=0, part=final["content"][0]))
        else:
            final = reasoning_item(item_id, current.text, "completed")
            out.append(self._event("response.reasoning_text.done", item_id=item_id,
                                   output_index=index, content_index=0, text=current.text))
            out.append(self._event("response.content_part.done", item_id=item_id,
                                   output_index=index, content_index=0, part=final["content"][0]))
        self.output[index] = final
        out.append(self._event("response.output_item.done", output_index=index, item=final))
        return out

    def _finished(self, result: PredictionResult) -> list[dict[str, Any]]:
        out = self._close()
        if not any(item["type"] in ("message", "function_call") for item in self.output):
            # As the whole reply has: an answer with no text is an empty message.
            self._open_item("message", out)
            out += self._close()
        status, _ = _status(result)
        if status == "incomplete":
            for item in self.output:
                if item["type"] == "message":
                    item["status"] = "incomplete"
        kept = [item for item in self.output if item["id"] not in self._abandoned]
        body = self.draft.finished(kept, result)
        self.on_done(body)
        kind = "response.completed" if body["status"] == "completed" else "response.incomplete"
        return out + [self._event(kind, response=body)]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class ResponsesEventStream(EventStreamResponse):
    """Server-sent events named as OpenAI names them (`event: response.created`), with no
    `[DONE]` at the end, and a failure as `response.failed`."""

    done_marker = False

    def encode(self, payload: dict[str, Any] | str) -> bytes:
        if isinstance(payload, str):
            return f"data: {payload}\n\n".encode()
        data = json.dumps(payload, ensure_ascii=False)
        name = payload.get("type", "error" if "error" in payload else "message")
        return f"event: {name}\ndata: {data}\n\n".encode()

    def failure(self, error: BaseException) -> list[dict[str, Any]]:
        writer = self.writer
        assert isinstance(writer, ResponseEvents)
        return writer.failed(error)


# --- kept responses ----------------------------------------------------------------------


@dataclass(slots=True)
class KeptResponse:
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    """The conversation up to and including this response, without its instructions
    (OpenAI's rule: a follow-up's own instructions replace them)."""


class ResponseStore:
    """Responses kept for `previous_response_id`: in memory, at most `per_model` a model."""

    def __init__(self, per_model: int = KEPT_PER_MODEL) -> None:
        self.per_model = per_model
        self._by_model: dict[str, OrderedDict[str, KeptResponse]] = {}

    def keep(self, model: str, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        kept = self._by_model.setdefault(model, OrderedDict())
        kept[body["id"]] = KeptResponse(body, messages)
        while len(kept) > self.per_model:
            kept.popitem(last=False)

    def get(self, response_id: str) -> KeptResponse | None:
        for kept in self._by_model.values():
            if response_id in kept:
                return kept[response_id]
        return None

    def delete(self, response_id: str) -> bool:
        return any(kept.pop(response_id, None) is not None for kept in self._by_model.values())


# --- routes ------------------------------------------------------------------------------


def routes(api: Api, store: ResponseStore | None = None) -> list[Route]:
    """The Responses routes over the shared plumbing (`app.Api`), keeping to `store`."""
    kept = store if store is not None else ResponseStore()

    def _previous(response_id: str | None) -> list[dict[str, Any]]:
        if response_id is None:
            return []
        previous = kept.get(response_id)
        if previous is None:
            raise ApiError(f"previous response with id {response_id!r} not found (this server "
                           f"keeps the last {kept.per_model} of each model, in memory)",
                           param="previous_response_id", code="previous_response_not_found")
        return previous.messages

    async def create(request: Request, log: RequestLog) -> Response | EventStreamResponse:
        raw = await api.json_body(request)
        parsed: ResponsesRequest = parse(ResponsesRequest, raw)
        served = api.model(parsed.model)
        log.model, log.stream = served.id, bool(parsed.stream)
        history = _previous(parsed.previous_response_id)
        body, new = chat_request(parsed, raw, history)
        try:
            job = chat_job(parse(ChatCompletionRequest, body))
        except ApiError as err:
            err.param = chat_param(err.param)
            raise
        job.config = await with_stop_tokens(job.config, served, body.get("stop_token_ids"))
        api.admit(log)
        stream = api.track(respond_events(
            served.model, job.chat, job.config, defaults=served.defaults,
            tools=job.tools or None, tool_choice=job.tool_choice,
            template_kwargs=job.template_kwargs, parallel_tool_calls=job.parallel_tool_calls,
        ))
        draft = Draft(served.id, parsed)

        def keep(response: dict[str, Any]) -> None:
            if parsed.store is not False:
                turn = input_messages(response["output"], "output")
                kept.keep(served.id, response, history + new + turn)

        if parsed.stream:
            return ResponsesEventStream(stream, ResponseEvents(draft, keep), log)
        result = await api.result(request, stream, log)
        response = draft.finished(output_items(result), result)
        keep(response)
        return JSONResponse(response)

    async def retrieve(request: Request, log: RequestLog) -> Response:
        response_id = request.path_params["response_id"]
        found = kept.get(response_id)
        if found is None:
            raise ApiError(f"no response with id {response_id!r} is kept here", status=404,
                           param="response_id", code="not_found")
        return JSONResponse(found.body)

    async def delete(request: Request, log: RequestLog) -> Response:
        response_id = request.path_params["response_id"]
        if not kept.delete(response_id):
            raise ApiError(f"no response with id {response_id!r} is kept here", status=404,
                           param="response_id", code="not_found")
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    return [
        api.route("/v1/responses", create, "POST"),
        api.route("/v1/responses/{response_id}", retrieve, "GET"),
        api.route("/v1/responses/{response_id}", delete, "DELETE"),
    ]
