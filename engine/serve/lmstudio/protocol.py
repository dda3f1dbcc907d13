"""The shapes of LM Studio's websocket messages, as the `lmstudio` SDK (1.5) reads them.

Every message the server sends is built here, so that the rest of the package deals
in engine objects: a model becomes an `LlmInstanceInfo` dict, a prediction's stats an
`LlmPredictionStats` dict, an error a `SerializedLMSExtendedError` dict (the SDK turns
`displayData.code == "generic.noModelMatchingQuery"` into `LMStudioModelNotFoundError`).
Field names are the SDK's camelCase ones (see `lmstudio/_sdk_models`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.prediction import PredictionConfig, PredictionResult, PredictionStats

if TYPE_CHECKING:
    from engine.models.catalog import CatalogEntry
    from engine.serve.models import ServedModel

Message = dict[str, Any]

GREETING: Message = {"lmstudio": True}
"""What `GET /lmstudio-greeting` answers; the SDK probes for exactly this."""


# --- errors ------------------------------------------------------------------------


class LmsError(Exception):
    """An error the client is told about, as LM Studio words them: a title, maybe more."""

    def __init__(
        self,
        title: str,
        *,
        cause: str | None = None,
        suggestion: str | None = None,
        display_data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(title)
        self.title = title
        self.cause = cause
        self.suggestion = suggestion
        self.display_data = display_data

    def to_wire(self) -> Message:
        error: Message = {"title": self.title}
        if self.cause is not None:
            error["cause"] = self.cause
        if self.suggestion is not None:
            error["suggestion"] = self.suggestion
        if self.display_data is not None:
            error["displayData"] = self.display_data
        return error


def model_not_found(query: dict[str, Any], loaded: list[str]) -> LmsError:
    """The SDK raises LMStudioModelNotFoundError for this one."""
    wanted = query.get("identifier") or query.get("path") or "any model"
    return LmsError(
        f"No loaded model satisfies the query {wanted!r}",
        suggestion=f"loaded: {', '.join(loaded)}" if loaded else "no model is loaded",
        display_data={
            "code": "generic.noModelMatchingQuery",
            "query": {k: v for k, v in query.items() if k in ("identifier", "path", "domain")},
            "loadedModelsSample": loaded[:10],
            "totalLoadedModels": len(loaded),
        },
    )


def error_of(err: BaseException) -> LmsError:
    """Any exception as something to tell the client (ours keep their details)."""
    if isinstance(err, LmsError):
        return err
    return LmsError(str(err) or type(err).__name__, cause=type(err).__name__)


# --- envelopes ---------------------------------------------------------------------


def auth_ok() -> Message:
    return {"success": True}


def auth_failed(title: str) -> Message:
    return {"success": False, "error": LmsError(title).to_wire()}


def rpc_result(call_id: int, result: Any) -> Message:
    message: Message = {"type": "rpcResult", "callId": call_id}
    if result is not None:
        message["result"] = result
    return message


def rpc_error(call_id: int, error: LmsError) -> Message:
    return {"type": "rpcError", "callId": call_id, "error": error.to_wire()}


def channel_send(channel_id: int, message: Message) -> Message:
    return {"type": "channelSend", "channelId": channel_id, "message": message}


def channel_close(channel_id: int) -> Message:
    return {"type": "channelClose", "channelId": channel_id}


def channel_error(channel_id: int, error: LmsError) -> Message:
    return {"type": "channelError", "channelId": channel_id, "error": error.to_wire()}


# --- models ------------------------------------------------------------------------


def instance_info(served: ServedModel) -> Message:
    """An `LlmInstanceInfo`: what getModelInfo, listLoaded and the load channels return."""
    model = served.model
    info = model.info
    context = info.context_length if info is not None else model.config.context_length
    trained = (info.trained_context_length if info is not None else 0) or context
    path = str(model.path)
    return {
        "type": "llm",
        "modelKey": model.key,
        "format": "gguf",
        "displayName": info.display_name if info is not None else model.key,
        "path": path,
        "sizeBytes": _size(model.path),
        "identifier": served.id,
        "instanceReference": served.id,
        "vision": False,
        "trainedForToolUse": _trained_for_tools(model),
        "maxContextLength": trained,
        "contextLength": context,
        "architecture": info.architecture if info is not None else None,
    }


def downloaded_info(entry: CatalogEntry) -> Message:
    """An `LlmInfo` for listDownloadedModels (the SDK requires `type`)."""
    info: Message = {
        "type": "llm",
        "modelKey": entry.key,
        "format": "gguf",
        "displayName": entry.display_name,
        "path": str(entry.path),
        "sizeBytes": entry.size_bytes,
        "vision": False,  # images are not served here, projector or not
        "trainedForToolUse": entry.tool_format != "default",
        "maxContextLength": entry.context_length or 0,
        "architecture": entry.architecture,
    }
    if entry.size_label:
        info["paramsString"] = entry.size_label
    return info


def _size(path: Any) -> int:
    try:
        return int(path.stat().st_size)
    except OSError:
        return 0


def _trained_for_tools(model: Any) -> bool:
    from engine.formatting.conversation import tool_format

    try:
        return tool_format(model) != "default"
    except Exception:  # noqa: BLE001 - a template we cannot read just has no tool format
        return False


# --- predictions -------------------------------------------------------------------


def fragment(content: str, tokens: int, reasoning_type: str = "none") -> Message:
    """An `LlmPredictionFragment`; reasoningType is none, reasoning, or a tag's start/end."""
    return {
        "type": "fragment",
        "fragment": {
            "content": content,
            "tokensCount": tokens,
            "containsDrafted": False,
            "reasoningType": reasoning_type,
        },
    }


def prompt_progress(fraction: float) -> Message:
    return {"type": "promptProcessingProgress", "progress": fraction}


def tool_call_request(call: Any) -> Message:
    """A `ToolCallRequest` from an engine ToolCall."""
    return {
        "type": "function",
        "id": call.id,
        "name": call.name,
        "arguments": dict(call.arguments or {}),
    }


def stats(stats: PredictionStats, gpu_layers: int, tool_calls: bool = False) -> Message:
    """An `LlmPredictionStats`; a reply that ended in tool calls stopped for them, as
    LM Studio reports it."""
    reason = stats.stop_reason
    if tool_calls and reason in ("eosFound", "stopStringFound"):
        reason = "toolCalls"
    return {
        "stopReason": reason,
        "tokensPerSecond": stats.tokens_per_second,
        "numGpuLayers": gpu_layers,
        "timeToFirstTokenSec": stats.time_to_first_token_sec,
        "promptTokensCount": stats.prompt_tokens_count,
        "predictedTokensCount": stats.predicted_tokens_count,
        "totalTokensCount": stats.total_tokens_count,
    }


def success(served: ServedModel, result: PredictionResult, config: PredictionConfig) -> Message:
    """The last message of a prediction: stats, the model, and the configs it ran with."""
    return {
        "type": "success",
        "stats": stats(result.stats, served.model.config.n_gpu_layers, bool(result.tool_calls)),
        "modelInfo": instance_info(served),
        "loadModelConfig": load_kv_config(served),
        "predictionConfig": prediction_kv_config(config),
    }


def prediction_error(err: BaseException) -> Message:
    return {"type": "error", "error": error_of(err).to_wire()}


# --- configs as the server reports them (KVConfig: {"fields": [{key, value}]}) -------------


def load_kv_config(served: ServedModel) -> Message:
    model = served.model
    cfg = model.config
    context = model.info.context_length if model.info is not None else cfg.context_length
    fields = [
        ("llm.load.contextLength", context),
        ("llm.load.llama.evalBatchSize", cfg.batch_size),
        ("llm.load.llama.flashAttention", cfg.flash_attention),
        ("llm.load.llama.tryMmap", cfg.use_mmap),
        ("llm.load.llama.keepModelInMemory", cfg.use_mlock),
        ("llm.load.seed", {"checked": cfg.seed >= 0, "value": max(cfg.seed, 0)}),
    ]
    return {"fields": [{"key": key, "value": value} for key, value in fields]}


def prediction_kv_config(config: PredictionConfig) -> Message:
    """The config a prediction ran with, in the keys `parse_prediction_config` reads."""
    fields: list[tuple[str, Any]] = []
    if config.temperature is not None:
        fields.append(("llm.prediction.temperature", config.temperature))
    if config.max_tokens is not None:
        limited = config.max_tokens > 0
        fields.append(("llm.prediction.maxPredictedTokens",
                       {"checked": limited, "value": config.max_tokens if limited else 1}))
    if config.top_k is not None:
        fields.append(("llm.prediction.topKSampling", config.top_k))
    if config.top_p is not None:
        fields.append(("llm.prediction.topPSampling", {"checked": True, "value": config.top_p}))
    if config.min_p is not None:
        fields.append(("llm.prediction.minPSampling", {"checked": True, "value": config.min_p}))
    if config.repeat_penalty is not None:
        fields.append(("llm.prediction.repeatPenalty",
                       {"checked": True, "value": config.repeat_penalty}))
    if config.stop_strings is not None:
        fields.append(("llm.prediction.stopStrings", list(config.stop_strings)))
    if config.context_overflow_policy is not None:
        fields.append(("llm.prediction.contextOverflowPolicy", config.context_overflow_policy))
    return {"fields": [{"key": key, "value": value} for key, value in fields]}
