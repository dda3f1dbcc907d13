"""How a model is loaded: context, GPU offload, threads, batches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

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
