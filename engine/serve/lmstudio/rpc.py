"""The remote calls (`rpcCall` → `rpcResult`/`rpcError`) of the llm, system and embedding
namespaces.

Each handler takes the call's `parameter` and returns the `result`; an `LmsError`
becomes the `rpcError`. Work that touches a model (tokenizing) runs on the model's
own thread, so it waits behind predictions already queued, as llama.cpp requires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from engine.formatting.conversation import render_chat

from . import protocol
from .chat_history import chat_of
from .config_stack import prediction_settings
from .protocol import LmsError
from .state import SdkState

Handler = Callable[[SdkState, Any], Awaitable[Any]]


async def list_loaded(state: SdkState, parameter: Any) -> Any:
    return [protocol.instance_info(m) for m in state.loaded()]


async def get_model_info(state: SdkState, parameter: Any) -> Any:
    params = parameter or {}
    try:
        return protocol.instance_info(state.resolve(params.get("specifier")))
    except LmsError:
        if params.get("throwIfNotFound", True):
            raise
        return None


async def get_load_config(state: SdkState, parameter: Any) -> Any:
    served = state.resolve((parameter or {}).get("specifier"))
    return protocol.load_kv_config(served)


def _input_string(parameter: Any) -> str:
    text = (parameter or {}).get("inputString")
    if not isinstance(text, str):
        raise LmsError("inputString must be a string")
    return text


async def _tokens(state: SdkState, parameter: Any) -> list[int]:
    served = state.resolve((parameter or {}).get("specifier"))
    text = _input_string(parameter)
    # LM Studio counts the text's own tokens, without the BOS a prompt would get.
    return await asyncio.to_thread(served.model.tokenize, text, False)


async def tokenize(state: SdkState, parameter: Any) -> Any:
    return {"tokens": await _tokens(state, parameter)}


async def count_tokens(state: SdkState, parameter: Any) -> Any:
    return {"tokenCount": len(await _tokens(state, parameter))}


async def apply_prompt_template(state: SdkState, parameter: Any) -> Any:
    params = parameter or {}
    served = state.resolve(params.get("specifier"))
    chat = chat_of(params.get("history"))
    settings = prediction_settings(params.get("predictionConfigStack"), where="applyPromptTemplate")
    opts = params.get("opts") or {}
    tools = [{"type": "function", "function": t.get("function", t)}
             for t in opts.get("toolDefinitions") or [] if isinstance(t, dict)] or settings.tools
    model = served.model
    config = settings.config.merged_over(served.defaults)
    text = render_chat(model, chat.to_template_messages(), config, tools=tools or None)
    if opts.get("omitBosToken") and model.bos_text and text.startswith(model.bos_text):
        text = text[len(model.bos_text):]
    if opts.get("omitEosToken") and model.eos_text and text.endswith(model.eos_text):
        text = text[: -len(model.eos_text)]
    return {"formatted": text}


async def unload_model(state: SdkState, parameter: Any) -> Any:
    identifier = (parameter or {}).get("identifier")
    served = state.find(identifier) if isinstance(identifier, str) else None
    if served is None:
        raise protocol.model_not_found({"identifier": identifier}, [m.id for m in state.loaded()])
    if state.loader is None:
        raise LmsError(
            f"model {served.id!r} stays loaded: this server does not load or unload models"
        )
    await asyncio.to_thread(state.loader.unload, served.id)
    return None


async def list_downloaded_models(state: SdkState, parameter: Any) -> Any:
    if state.loader is None:
        # What is loaded is at least on disk.
        return [_loaded_as_downloaded(m) for m in state.loaded()]
    entries = await asyncio.to_thread(state.loader.downloaded)
    return [protocol.downloaded_info(e) for e in entries]


def _loaded_as_downloaded(served: Any) -> dict[str, Any]:
    info = protocol.instance_info(served)
    keep = ("type", "modelKey", "format", "displayName", "path", "sizeBytes", "vision",
            "trainedForToolUse", "maxContextLength", "architecture")
    return {k: info[k] for k in keep}


async def version(state: SdkState, parameter: Any) -> Any:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        ours = package_version("llamaterm")
    except PackageNotFoundError:
        ours = "0"
    return {"version": ours, "build": 0}


async def nothing_loaded(state: SdkState, parameter: Any) -> Any:
    return []


LLM: dict[str, Handler] = {
    "listLoaded": list_loaded,
    "getModelInfo": get_model_info,
    "getLoadConfig": get_load_config,
    "tokenize": tokenize,
    "countTokens": count_tokens,
    "applyPromptTemplate": apply_prompt_template,
    "unloadModel": unload_model,
}
SYSTEM: dict[str, Handler] = {
    "listDownloadedModels": list_downloaded_models,
    "version": version,
}
# No embedding models here: listing says none, anything else is an error.
EMBEDDING: dict[str, Handler] = {"listLoaded": nothing_loaded}
