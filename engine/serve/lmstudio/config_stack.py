"""LM Studio's KV config stacks, read into the engine's PredictionConfig and LoadConfig.

The SDK sends settings as a stack of layers (`{"layers": [{"layerName", "config":
{"fields": [{"key", "value"}]}}]}`) under dotted keys such as
`llm.prediction.maxPredictedTokens`; some values are checkboxes (`{"checked", "value"}`).
Later layers win. A key we do not know, or know but cannot honour, is accepted and
named in the log (never a failure), so a newer SDK keeps working.

`complete()` arrives as a chat of one user message plus a `completeModeFormatting`
layer whose prompt template just concatenates the messages: that is a raw completion,
and `PredictionSettings.raw_completion` says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.prediction import PredictionConfig, PredictionConfigError

from .protocol import LmsError

COMPLETION_LAYER = "completeModeFormatting"


@dataclass(slots=True)
class PredictionSettings:
    """What one predict channel asked for, in the engine's terms."""

    config: PredictionConfig
    tools: list[dict[str, Any]] = field(default_factory=list)
    structured: bool = False
    """A JSON schema (or grammar) constrains the reply."""
    raw_completion: bool = False
    ignored: list[str] = field(default_factory=list)
    """Keys accepted but not honoured (already logged)."""


def collapse(stack: Any) -> dict[str, Any]:
    """The stack's fields as one dict, later layers over earlier ones."""
    values: dict[str, Any] = {}
    layers = stack.get("layers", []) if isinstance(stack, dict) else []
    for layer in layers if isinstance(layers, list) else []:
        fields = ((layer or {}).get("config") or {}).get("fields") or []
        for item in fields:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                values[item["key"]] = item.get("value")
    return values


def layer_names(stack: Any) -> list[str]:
    layers = stack.get("layers", []) if isinstance(stack, dict) else []
    return [str((layer or {}).get("layerName", "")) for layer in layers if isinstance(layer, dict)]


def _checkbox(value: Any) -> tuple[bool, Any]:
    """(checked, value) of a checkbox field; a bare value counts as checked."""
    if isinstance(value, dict) and "checked" in value:
        return bool(value.get("checked")), value.get("value")
    return True, value


def _limit(value: Any) -> int:
    checked, number = _checkbox(value)
    # Unchecked (or false) means no limit, as in LM Studio.
    if not checked or number is False or number is None:
        return -1
    return int(number)


def _enabled_float(value: Any, off: float | None = None) -> float | None:
    checked, number = _checkbox(value)
    if not checked or number is None or number is False:
        return off
    return float(number)


# key -> (engine field, how to read the value)
_PREDICTION_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "llm.prediction.temperature": ("temperature", float),
    "llm.prediction.maxPredictedTokens": ("max_tokens", _limit),
    "llm.prediction.topKSampling": ("top_k", int),
    "llm.prediction.topPSampling": ("top_p", _enabled_float),
    "llm.prediction.minPSampling": ("min_p", lambda v: _enabled_float(v, 0.0)),
    # Unchecked means no penalty, which llama.cpp spells 1.0.
    "llm.prediction.repeatPenalty": ("repeat_penalty", lambda v: _enabled_float(v, 1.0)),
    "llm.prediction.stopStrings": ("stop_strings", lambda v: tuple(s for s in v or () if s)),
    "llm.prediction.contextOverflowPolicy": ("context_overflow_policy", str),
    "llm.prediction.seed": ("seed", lambda v: int(_checkbox(v)[1]) if _checkbox(v)[0] else None),
    "llm.prediction.enableThinking": ("enable_thinking", bool),
    "llm.prediction.reasoning.enabled": ("enable_thinking", bool),
    "llm.prediction.reasoning.parsing": ("reasoning_parsing", dict),
}
# Handled below, not by a plain mapping.
_SPECIAL_KEYS = {
    "llm.prediction.structured",
    "llm.prediction.tools",
    "llm.prediction.promptTemplate",
}


def prediction_settings(stack: Any, *, where: str = "predict") -> PredictionSettings:
    """Read a prediction config stack; raises LmsError only for values that make no sense."""
    values = collapse(stack)
    engine: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in values.items():
        if key in _PREDICTION_KEYS:
            name, read = _PREDICTION_KEYS[key]
            try:
                converted = read(value)
            except (TypeError, ValueError):
                raise LmsError(f"{key}: cannot read {value!r}") from None
            if converted is not None:
                engine[name] = converted
        elif key not in _SPECIAL_KEYS:
            ignored.append(key)
    raw = COMPLETION_LAYER in layer_names(stack)
    template = values.get("llm.prediction.promptTemplate")
    if template is not None and not raw:
        ignored.append("llm.prediction.promptTemplate")
    grammar, structured = _structured(values.get("llm.prediction.structured"))
    if grammar is not None:
        engine["grammar"] = grammar
    tools = _tools(values.get("llm.prediction.tools"))
    if raw and tools:
        ignored.append("llm.prediction.tools")
        tools = []
    try:
        config = PredictionConfig.parse(engine)
    except PredictionConfigError as err:
        raise LmsError(str(err)) from None
    if ignored:
        LOG_BUS.emit(
            "warning",
            "server",
            f"LM Studio {where}: accepted but not honoured: {', '.join(sorted(ignored))}",
            ignored=sorted(ignored),
        )
    return PredictionSettings(config, tools, structured, raw, ignored)


def _structured(value: Any) -> tuple[str | None, bool]:
    """A GBNF grammar for `llm.prediction.structured` ({type: json|gbnf|none, ...})."""
    if not isinstance(value, dict):
        return None, False
    kind = value.get("type")
    if kind == "gbnf":
        grammar = value.get("gbnfGrammar")
        if not isinstance(grammar, str) or not grammar.strip():
            raise LmsError("llm.prediction.structured: gbnfGrammar is empty")
        return grammar, True
    if kind != "json":
        return None, False
    from engine.structured import StructuredSetting, structured_grammar

    schema = value.get("jsonSchema") or {"type": "object"}
    try:
        # The in-process API's grammar (the schema's own property order kept).
        return structured_grammar(StructuredSetting(type="json", json_schema=schema)), True
    except (PredictionConfigError, ValueError) as err:
        raise LmsError(f"llm.prediction.{err}") from None


def _tools(value: Any) -> list[dict[str, Any]]:
    """OpenAI-style tools from `llm.prediction.tools` ({type: toolArray, tools: [...]})."""
    if not isinstance(value, dict) or value.get("type") != "toolArray":
        return []
    tools = []
    for tool in value.get("tools") or []:
        function = (tool or {}).get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise LmsError(f"llm.prediction.tools: not a function tool: {tool!r}")
        parameters = function.get("parameters") or {"type": "object"}
        spec = {"name": function["name"], "parameters": parameters}
        if function.get("description"):
            spec["description"] = function["description"]
        tools.append({"type": "function", "function": spec})
    return tools


# --- loading -----------------------------------------------------------------------

_LOAD_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "llm.load.contextLength": ("context_length", int),
    "llm.load.llama.evalBatchSize": ("batch_size", int),
    "llm.load.llama.flashAttention": ("flash_attention", bool),
    "llm.load.llama.tryMmap": ("use_mmap", bool),
    "llm.load.llama.keepModelInMemory": ("use_mlock", bool),
    "llm.load.seed": ("seed", lambda v: int(_checkbox(v)[1]) if _checkbox(v)[0] else -1),
    "llm.load.llama.cpuThreadPoolSize": ("threads", int),
    "llm.load.llama.acceleration.offloadRatio": ("gpu_layers", lambda v: _offload(v)),
}


def _offload(value: Any) -> int | str:
    """LM Studio gives a ratio (0..1, or "max"/"off"); we have all layers or none."""
    if value in ("max", "auto"):
        return "max"
    if value == "off":
        return 0
    # A partial ratio cannot be honoured layer by layer here: any offload means all.
    return "max" if float(value) > 0.0 else 0


def load_overrides(stack: Any) -> dict[str, Any]:
    """LoadConfig fields from a load config stack (only what it sets)."""
    overrides: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in collapse(stack).items():
        if key in _LOAD_KEYS:
            name, read = _LOAD_KEYS[key]
            try:
                overrides[name] = read(value)
            except (TypeError, ValueError):
                raise LmsError(f"{key}: cannot read {value!r}") from None
        else:
            ignored.append(key)
    if ignored:
        LOG_BUS.emit(
            "warning",
            "server",
            f"LM Studio load: accepted but not honoured: {', '.join(sorted(ignored))}",
            ignored=sorted(ignored),
        )
    return overrides


def load_config_over(base: LoadConfig, overrides: dict[str, Any]) -> LoadConfig:
    if not overrides:
        return base
    values = base.model_dump()
    values.update(overrides)
    try:
        return LoadConfig.model_validate(values)
    except ValueError as err:
        raise LmsError(f"invalid load config: {err}") from None
