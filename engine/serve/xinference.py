"""What Xinference's own client (`xinference_client.RESTfulClient`) needs beyond OpenAI's API.

Xinference speaks OpenAI's chat and completions routes, so `model.chat(...)` and
`model.generate(...)` run through the ordinary handlers (which accept its
`repetition_penalty`, `stop_token_ids` and `enable_thinking`). What its client adds:

- `GET /v1/models` and `/v1/models/{uid}` entries carry `model_type` and
  `model_ability`, from which `get_model(uid)` picks a chat or a generate handle
  (`model_fields`, merged into every model entry by `models.model_json`);
- `GET /v1/cluster/auth` says whether the server wants an API key: the client
  sends its key only when it answers `{"auth": true}` (and asks without one);
- error bodies carry a `detail` string, which the client puts in its exceptions
  (`errors.ApiError.body`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.formatting.conversation import tool_format
from engine.formatting.reasoning import markers_for_template

if TYPE_CHECKING:
    from .app import Api
    from .models import ServedModel

MODEL_FORMAT = "ggufv2"
"""Xinference's name for a GGUF file (its "ggmlv3" was the older format)."""


def model_abilities(served: ServedModel) -> list[str]:
    """["generate", "chat"], plus "reasoning" and "tools" when the model's template has them.

    "tools" means the template renders tools itself; any other model still gets tool
    calls, through LM Studio's default format.
    """
    abilities = ["generate", "chat"]
    template = served.model.chat_template
    source = getattr(template, "source", None)
    if markers_for_template(source) is not None:
        abilities.append("reasoning")
    if template is not None and tool_format(served.model) != "default":
        abilities.append("tools")
    return abilities


def quantization(served: ServedModel) -> str:
    """The GGUF's file type ("Q4_K_M", "F16"), from its header or else its file name."""
    file_type = served.model.metadata.get("general.file_type", "")
    if file_type.isdigit():
        from gguf import LlamaFileType

        try:
            name = LlamaFileType(int(file_type)).name
        except ValueError:
            name = ""
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    from engine.models.hub import quantization_of  # late: the Hub client is heavy, rarely needed

    return quantization_of(served.model.path.name) or "none"


def model_fields(served: ServedModel) -> dict[str, Any]:
    """Xinference's fields of a model entry, beside OpenAI's id/object/created/owned_by."""
    info = served.model.info
    fields: dict[str, Any] = {
        "model_type": "LLM",
        "model_name": served.id,
        "model_ability": model_abilities(served),
        "model_format": MODEL_FORMAT,
        "quantization": quantization(served),
        "replica": 1,
    }
    if info is not None:
        fields["context_length"] = info.context_length
        fields["model_family"] = info.architecture
        fields["model_description"] = info.display_name
    return fields


def routes(api: Api) -> list[Route]:
    """Xinference's routes beside OpenAI's (`openai_v1`), which its chat and generate use."""

    async def cluster_auth(request: Request) -> Response:
        # Asked before the client has a key to send, so it never needs one itself (a plain
        # Route, not `api.route`, which checks the key); the Host check still applies.
        return JSONResponse({"auth": bool(api.settings.api_key)})

    return [Route("/v1/cluster/auth", cluster_auth, methods=["GET"])]
