"""How a model is loaded: context, GPU offload, threads, batches."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeAlias, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from engine.errors import LoadConfigError
from engine.paths import checked_path

KvCacheType: TypeAlias = Literal["f16", "f32", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]

CheckedPath = Annotated[Path, AfterValidator(checked_path)]
"""A path that could name a file: one with a NUL character is refused when validated."""


class LoadConfig(BaseModel):
    """Settings for loading one model. Accepts snake_case and LM Studio's camelCase keys."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    context_length: int = Field(default=4096, ge=16, alias="contextLength")
    """Tokens of context (prompt plus reply) the model is loaded with."""
    gpu_layers: int | Literal["max"] = Field(default=0, alias="gpuLayers")
    """Layers offloaded to the GPU: 0 for none, "max" (or -1) for all."""
    threads: int = Field(default=0, ge=0)
    """CPU threads for generation; 0 means the machine's physical cores."""
    batch_size: int = Field(default=256, ge=1, alias="batchSize")
    """Prompt tokens evaluated per batch; progress and cancellation happen between batches."""
    flash_attention: bool = Field(default=False, alias="flashAttention")
    """Use flash attention (needs a build and a device that support it)."""
    kv_cache_type: KvCacheType = Field(default="f16", alias="kvCacheType")
    """Type of the K and V caches; quantised types save memory (V needs flash attention)."""
    use_mmap: bool = Field(default=True, alias="useMmap")
    """Map the weights from the file instead of reading them into memory."""
    use_mlock: bool = Field(default=False, alias="useMlock")
    """Lock the weights in RAM so they are never swapped out."""
    seed: int = -1
    """Default sampling seed for this model; -1 picks a random one per prediction."""
    parallel: int = Field(default=4, ge=1, le=64, alias="maxConcurrentPredictions")
    """Predictions that run at once on this model (LM Studio's "max concurrent
    predictions"), decoded together in one batch per token; each has a slot of the
    shared context that keeps its conversation's cache warm. 1: one at a time."""
    swa_full: bool = Field(default=False, alias="swaFull")
    """Keep the whole sliding-window KV cache (Gemma 3) rather than the window only, as
    llama-server's `--swa-full`: costs decoding speed at depth; without it an edit further
    back than the window re-evaluates that conversation."""
    template_seconds: float = Field(default=5.0, gt=0, le=600, alias="templateSeconds")
    """Seconds one render of the chat template may take. A template from a downloaded model
    is untrusted code: past this (or past its step and output limits) the prediction fails
    with a TemplateError naming the limit, and the model stays usable."""
    chat_template_file: CheckedPath | None = Field(default=None, alias="chatTemplateFile")
    """A Jinja chat template to use instead of the one in the GGUF."""

    @model_validator(mode="after")
    def _slots_fit_a_batch(self) -> LoadConfig:
        # Every step decodes one token of each generating slot plus prompt chunks, within
        # one batch: with more slots than that, a prompt could wait for ever.
        if self.parallel > self.batch_size:
            raise ValueError(
                f"parallel ({self.parallel}) must not exceed batch_size ({self.batch_size})"
            )
        return self

    @property
    def n_gpu_layers(self) -> int:
        if self.gpu_layers == "max":
            return -1
        return self.gpu_layers

    @property
    def n_threads(self) -> int:
        return self.threads or physical_cores()


def physical_cores() -> int:
    """The number of physical CPU cores (not hyperthreads); llama.cpp runs best with these."""
    cores: set[tuple[str, str]] = set()
    cpu_root = Path("/sys/devices/system/cpu")
    try:
        for topology in cpu_root.glob("cpu[0-9]*/topology"):
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
            cores.add((package, core))
    except OSError:
        cores.clear()
    if cores:
        return len(cores)
    return max(1, os.cpu_count() or 1)


# --- LM Studio's load-config keys ---------------------------------------------------
# The SDK's `llm(key, config={...})` keys (LlmLoadModelConfig) that LoadConfig does not
# spell the same way. Each is honoured where llama.cpp, as llamaterm loads it, can;
# the rest are refused with a LoadConfigError naming the key (never ignored silently).

_UNSUPPORTED_LOAD_KEYS = {
    "ropeFrequencyBase": "llamaterm loads every model with its own RoPE settings",
    "ropeFrequencyScale": "llamaterm loads every model with its own RoPE settings",
    "numExperts": "llamaterm runs a mixture-of-experts model with its trained expert count",
}


def _kv_type(key: str, value: object) -> str:
    if value is False or value is None:
        return "f16"  # LM Studio's "off": no quantisation
    if not isinstance(value, str):
        raise LoadConfigError(f"invalid load config: {key}: expected a cache type, got {value!r}")
    return value


def lmstudio_load_values(
    config: dict[str, object], block_count: Callable[[], int | None] = lambda: None
) -> dict[str, object]:
    """LoadConfig fields (by name or alias) for a load config in LM Studio's keys or ours.

    `block_count()` gives the model's layer count, to turn a partial `gpu.ratio` into
    layers. Raises LoadConfigError for a key llama.cpp cannot honour here."""
    values: dict[str, object] = {}
    kv: dict[str, str] = {}
    for key, value in config.items():
        if key in _UNSUPPORTED_LOAD_KEYS:
            if value is not None:
                raise LoadConfigError(
                    f"invalid load config: {key}: not supported: {_UNSUPPORTED_LOAD_KEYS[key]}"
                )
        elif key == "gpu":
            if value is not None:
                values["gpu_layers"] = _gpu_layers(value, block_count)
        elif key == "evalBatchSize":
            values["batch_size"] = value
        elif key == "keepModelInMemory":
            values["use_mlock"] = value
        elif key == "tryMmap":
            values["use_mmap"] = value
        elif key in ("llamaKCacheQuantizationType", "llamaVCacheQuantizationType"):
            kv[key] = _kv_type(key, value)
        elif key == "useFp16ForKVCache":
            kv.setdefault("useFp16ForKVCache", "f16" if value in (True, None) else "f32")
        elif key == "gpuStrictVramCap":
            if value:
                raise LoadConfigError(
                    f"invalid load config: {key}: not supported: llama.cpp has no strict "
                    "VRAM cap; set gpu.ratio (or gpuLayers) to what fits"
                )
        elif key == "offloadKVCacheToGpu":
            if value is False:
                raise LoadConfigError(
                    f"invalid load config: {key}: not supported: the KV cache of each "
                    "offloaded layer stays on the GPU"
                )
        else:
            values[key] = value
    if kv:
        types = set(kv.values())
        if len(types) > 1:
            raise LoadConfigError(
                f"invalid load config: {', '.join(sorted(kv))}: llamaterm uses one type for "
                f"the K and V caches; these ask for {', '.join(sorted(types))}"
            )
        kind = types.pop()
        if kind not in get_args(KvCacheType):
            raise LoadConfigError(
                f"invalid load config: {', '.join(sorted(kv))}: {kind!r} is not a cache type "
                f"llama-cpp-python loads; one of {', '.join(get_args(KvCacheType))}"
            )
        values["kv_cache_type"] = kind
    return values


def _gpu_layers(value: object, block_count: Callable[[], int | None]) -> int | str:
    if not isinstance(value, dict):
        raise LoadConfigError(f"invalid load config: gpu: expected {{'ratio': ...}}, got {value!r}")
    for key in ("mainGpu", "splitStrategy", "disabledGpus"):
        if value.get(key) not in (None, 0, [], "evenly"):
            raise LoadConfigError(
                f"invalid load config: gpu.{key}: not supported: llamaterm offloads to "
                "llama.cpp's default device"
            )
    unknown = sorted(set(value) - {"ratio", "mainGpu", "splitStrategy", "disabledGpus"})
    if unknown:
        raise LoadConfigError(f"invalid load config: gpu.{unknown[0]}: unknown setting")
    ratio = value.get("ratio")
    if ratio is None or ratio == "max" or ratio == 1 or ratio == 1.0:
        return "max"
    if ratio == "off" or ratio == 0:
        return 0
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise LoadConfigError(
            f"invalid load config: gpu.ratio: expected 0 to 1, \"max\" or \"off\", got {ratio!r}"
        )
    layers = block_count()
    if not layers:
        raise LoadConfigError(
            "invalid load config: gpu.ratio: the model's header gives no layer count to "
            "take a part of; give gpuLayers instead"
        )
    return max(0, round(ratio * layers))


def parse_load_overrides(
    config: dict[str, object], block_count: Callable[[], int | None] = lambda: None
) -> dict[str, object]:
    """`lmstudio_load_values`, checked: the fields a load config sets, by field name.
    A bad key or value is a LoadConfigError naming it (never pydantic's own error)."""
    from pydantic import ValidationError
    values = lmstudio_load_values(config, block_count)
    try:
        parsed = LoadConfig.model_validate(values)
    except ValidationError as err:
        problems = []
        for item in err.errors():
            key = ".".join(str(p) for p in item["loc"]) or "config"
            if item["type"] == "extra_forbidden":
                problems.append(f"unknown load setting {key!r}")
            else:
                problems.append(f"{key}: {item['msg'].removeprefix('Value error, ')}")
        raise LoadConfigError("invalid load config: " + "; ".join(problems)) from None
    return parsed.model_dump(exclude_unset=True)
