"""The Responses API's request: its body, and its input as a chat completion request.

`POST /v1/responses` runs through the chat path: `chat_request` turns the `input` items
(messages, `function_call`, `function_call_output`, `reasoning`), the `instructions`,
function tools, `text.format` and `reasoning.effort` into a chat completion body, which
the chat handler's own checks and translation (`schemas`, `translate.chat_job`) take
from there; `chat_param` names a field it refuses by the Responses name. The routes and
the output are in `responses`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .errors import ApiError
from .schemas import RequestBody

# Chat-completion fields a Responses client may send through `extra_body`, as llama.cpp's
# and our chat endpoint take them; passed on unchanged.
_PASSED_THROUGH = (
    "top_k", "min_p", "repeat_penalty", "repetition_penalty", "seed", "stop", "grammar",
    "logit_bias", "stop_token_ids", "enable_thinking", "reasoning_format",
)
_ROLES = {"user", "system", "developer", "assistant"}
_TEXT_PARTS = {"input_text", "output_text", "text", "summary_text", "reasoning_text"}


class TextConfig(RequestBody):
    format: dict[str, Any] | None = None


class ReasoningConfig(RequestBody):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: str | None = None


class ResponsesRequest(RequestBody):
    model: str | None = None
    input: str | list[Any] = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool | None = False
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    previous_response_id: str | None = None
    store: bool | None = True
    metadata: dict[str, Any] | None = None
    background: bool | None = None
    chat_template_kwargs: dict[str, Any] | None = None


def input_messages(items: str | list[Any], where: str = "input") -> list[dict[str, Any]]:
    """Responses input items as chat messages.

    A `function_call` joins the assistant message before it (one turn may say something
    and call several tools); a `reasoning` item goes to the assistant message after it,
    which templates that show earlier reasoning render; `function_call_output` becomes a
    tool message, named after its call.
    """
    if isinstance(items, str):
        return [{"role": "user", "content": items}] if items else []
    messages: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    reasoning = ""
    for n, item in enumerate(items):
        at = f"{where}[{n}]"
        if not isinstance(item, dict):
            raise ApiError(f"{at}: must be an object", param=at, code="invalid_value")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise ApiError(f"{at}.role: must be one of user, system, developer, assistant "
                               f"(got {role!r})", param=f"{at}.role", code="invalid_value")
            text = _content_text(item.get("content"), f"{at}.content")
            if role == "assistant":
                messages.append({"role": "assistant", "content": text, "reasoning_content": reasoning})
                reasoning = ""
            else:
                messages.append({"role": "system" if role == "developer" else role, "content": text})
        elif kind == "function_call":
            call_id, name = _required(item, at, "call_id"), _required(item, at, "name")
            arguments = item.get("arguments") or "{}"
            names[call_id] = name
            call = {"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and not reasoning:
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "reasoning_content": reasoning,
                                 "tool_calls": [call]})
                reasoning = ""
        elif kind == "function_call_output":
            call_id = _required(item, at, "call_id")
            output = item.get("output", "")
            text = output if isinstance(output, str) else _content_text(output, f"{at}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "name": names.get(call_id, ""),
                             "content": text})
        elif kind == "reasoning":
            parts = item.get("content") or item.get("summary") or []
            reasoning += _content_text(parts, f"{at}.content")
        else:
            raise ApiError(f"{at}.type: {kind!r} items are not supported here (message, "
                           "function_call, function_call_output and reasoning are)",
                           param=f"{at}.type", code="invalid_value")
    return messages


def _required(item: dict[str, Any], at: str, key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(f"{at}.{key}: is required", param=f"{at}.{key}", code="invalid_value")
    return value


def _content_text(content: Any, at: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ApiError(f"{at}: must be a string or a list of parts", param=at, code="invalid_value")
    texts = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif kind == "input_image":
            raise ApiError(f"{at}[{n}]: the model has no vision: image input is not supported",
                           param=f"{at}[{n}]", code="unsupported_content")
        else:
            raise ApiError(f"{at}[{n}].type: {kind!r} parts are not supported here",
                           param=f"{at}[{n}].type", code="unsupported_content")
    return "".join(texts)


def function_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Responses' flat function tools (chat-shaped ones pass too), as Responses echoes them."""
    flat = []
    for n, tool in enumerate(tools or []):
        if tool.get("type", "function") != "function":
            raise ApiError(f"tools[{n}].type: only function tools run here (got {tool.get('type')!r})",
                           param=f"tools[{n}].type", code="unsupported_tool")
        spec = tool["function"] if isinstance(tool.get("function"), dict) else tool
        flat.append({"type": "function", "name": spec.get("name"),
                     "description": spec.get("description"),
                     "parameters": spec.get("parameters") or {"type": "object", "properties": {}},
                     "strict": spec.get("strict")})
    return flat


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    spec = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool[k] is not None}
    return {"type": "function", "function": spec}


def _chat_tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        return choice
    raise ApiError(f"tool_choice: {choice.get('type')!r} is not supported here (auto, none, "
                   "required or a function are)", param="tool_choice", code="invalid_value")


def _response_format(text: TextConfig | None) -> dict[str, Any] | None:
    spec = text.format if text is not None else None
    if not spec or spec.get("type") == "text":
        return None
    if spec.get("type") == "json_schema":
        schema = {k: spec[k] for k in ("name", "schema", "strict") if k in spec}
        return {"type": "json_schema", "json_schema": schema}
    return spec


def chat_request(parsed: ResponsesRequest, raw: dict[str, Any],
                 history: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The chat completion body this request amounts to, and the new turns it adds."""
    if parsed.background:
        raise ApiError("background: is not supported", param="background", code="invalid_value")
    new = input_messages(parsed.input)
    messages = ([{"role": "system", "content": parsed.instructions}] if parsed.instructions else [])
    messages += history + new
    if not any(m["role"] != "system" for m in messages):
        raise ApiError("input: is required", param="input", code="invalid_value")
    body: dict[str, Any] = {"model": parsed.model, "messages": messages,
                            "max_tokens": parsed.max_output_tokens,
                            "temperature": parsed.temperature, "top_p": parsed.top_p,
                            "tools": [_chat_tool(t) for t in function_tools(parsed.tools)] or None,
                            "tool_choice": _chat_tool_choice(parsed.tool_choice),
                            "parallel_tool_calls": parsed.parallel_tool_calls,
                            "response_format": _response_format(parsed.text)}
    kwargs = dict(parsed.chat_template_kwargs or {})
    effort = parsed.reasoning.effort if parsed.reasoning else None
    if effort is not None:
        body["enable_thinking"] = effort not in ("none", "minimal")
        if body["enable_thinking"]:
            kwargs.setdefault("reasoning_effort", effort)  # gpt-oss's templates read it
    body["chat_template_kwargs"] = kwargs or None
    body.update({k: raw[k] for k in _PASSED_THROUGH if k in raw})
    return {k: v for k, v in body.items() if v is not None}, new


def chat_param(param: str | None) -> str | None:
    """A chat request's field, by the name a Responses client gave it."""
    if param is None:
        return None
    renames = {"max_tokens": "max_output_tokens", "response_format": "text.format"}
    for old, new in renames.items():
        if param == old or param.startswith(old + "."):
            return new + param[len(old):]
    if param.startswith("messages"):
        return "input"
    if param.startswith("tools"):
        return param.replace(".function", "")
    return param
