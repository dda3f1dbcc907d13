"""Old path of the memory fit check, kept while callers move: now engine.models.memory."""

from __future__ import annotations

from engine.models.memory import *  # noqa: F403
from engine.models.memory import (
    GPU_CONTEXT_OVERHEAD,
    KV_BYTES_PER_ELEMENT,
    KV_PADDING,
    MIB,
    NVIDIA_SMI_TIMEOUT,
    FitReport,
    GpuMemory,
    MemoryEstimate,
    MemorySnapshot,
    compute_buffer,
    describe_estimate,
    estimate_memory,
    fit_check,
    format_bytes,
    gpu_memory,
    kv_cache_per_layer,
    llama_gpu_offload,
    offloaded_layers,
    parse_nvidia_smi,
    probe_memory,
    ram_memory,
)

__all__ = [
    "GPU_CONTEXT_OVERHEAD", "KV_BYTES_PER_ELEMENT", "KV_PADDING", "MIB", "NVIDIA_SMI_TIMEOUT",
    "FitReport", "GpuMemory", "MemoryEstimate", "MemorySnapshot", "compute_buffer",
    "describe_estimate", "estimate_memory", "fit_check", "format_bytes", "gpu_memory",
    "kv_cache_per_layer", "llama_gpu_offload", "offloaded_layers", "parse_nvidia_smi",
    "probe_memory", "ram_memory",
]
