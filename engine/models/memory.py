"""Will a model fit? The memory a load needs, against what the machine has free.

The estimate follows how llama.cpp places a model: the last `gpu_layers` blocks and
their KV cache go to the GPU, the output layer joins them once every block is there,
token embeddings always stay in RAM. The KV cache is sized from the header's real
key/value lengths and per-layer KV head counts; sliding-window layers cache only
their window unless `swa_full`. The compute buffer is an allowance calibrated on
llama.cpp's own reports (its largest tensors are the batch's logits, and the
attention scores when flash attention is off), not an exact figure.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.load_config import KvCacheType, LoadConfig
from engine.models.catalog import CatalogEntry
from engine.models.model_facts import ModelShape

MIB = 1024 * 1024

KV_BYTES_PER_ELEMENT: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}

GPU_CONTEXT_OVERHEAD = 384 * MIB
"""What a CUDA context and cuBLAS workspace take on each GPU before any weights."""
KV_PADDING = 256
"""llama.cpp rounds the KV cache's cell count up to this."""
NVIDIA_SMI_TIMEOUT = 3.0


# --- what the machine has -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuMemory:
    index: int
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class MemorySnapshot:
    """Free memory right now. None means unknown (no /proc/meminfo, no nvidia-smi)."""

    ram_available: int | None
    ram_total: int | None
    gpus: tuple[GpuMemory, ...] | None = None
    """None when no NVIDIA GPU could be queried."""
    gpu_offload: bool | None = None
    """Can this llama.cpp build offload to a GPU at all? None when not checked."""

    @property
    def gpu_free(self) -> int | None:
        return sum(g.free_bytes for g in self.gpus) if self.gpus else None

    @property
    def gpu_total(self) -> int | None:
        return sum(g.total_bytes for g in self.gpus) if self.gpus else None


def probe_memory(*, check_offload: bool = True) -> MemorySnapshot:
    """RAM from the OS, GPUs from nvidia-smi, and whether llama.cpp can use them."""
    available, total = ram_memory()
    offload = llama_gpu_offload() if check_offload else None
    return MemorySnapshot(available, total, gpu_memory(), offload)


def ram_memory() -> tuple[int | None, int | None]:
    """(available, total) RAM in bytes: MemAvailable from /proc/meminfo, else sysconf."""
    meminfo = _read_meminfo(Path("/proc/meminfo"))
    if meminfo is not None:
        return meminfo
    return _sysconf_memory()


def _read_meminfo(path: Path) -> tuple[int | None, int | None] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0]) * 1024
    if "MemTotal" not in values:
        return None
    available = values.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = values.get("MemFree", 0) + values.get("Cached", 0) + values.get("Buffers", 0)
    return available, values["MemTotal"]


def _sysconf_memory() -> tuple[int | None, int | None]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        return None, None
    try:
        available: int | None = os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError):
        available = None  # macOS has no such name; free memory is then unknown
    return available, total


def gpu_memory(timeout: float = NVIDIA_SMI_TIMEOUT) -> tuple[GpuMemory, ...] | None:
    """Free and total memory of each visible NVIDIA GPU; None without nvidia-smi."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    command = [
        executable,
        "--query-gpu=index,memory.free,memory.total",
        "--format=csv,noheader,nounits",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    gpus = parse_nvidia_smi(done.stdout)
    visible = _visible_devices()
    if visible is not None:
        gpus = tuple(g for g in gpus if g.index in visible)
    return gpus or None


def parse_nvidia_smi(output: str) -> tuple[GpuMemory, ...]:
    """`index, free MiB, total MiB` lines into GpuMemory; unreadable lines are skipped."""
    gpus = []
    for line in output.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            continue
        index, free, total = (int(f) for f in fields)
        gpus.append(GpuMemory(index, free * MIB, total * MIB))
    return tuple(gpus)


def _visible_devices() -> set[int] | None:
    # CUDA_VISIBLE_DEVICES limits what llama.cpp sees; UUIDs are not mapped, so they mean "all".
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not all(v.isdigit() for v in items):
        return None
    return {int(v) for v in items}


@functools.cache
def llama_gpu_offload() -> bool | None:
    """Was this llama-cpp-python built with a GPU backend? None if it cannot be imported."""
    try:
        import llama_cpp
    except (ImportError, OSError, RuntimeError):  # a broken native library must not break a check
        return None
    return bool(llama_cpp.llama_supports_gpu_offload())


# --- what a load needs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Bytes a load needs, split by where they go."""

    context_length: int
    gpu_layers: int
    """Blocks on the GPU (0..block_count); the output layer joins at block_count + 1."""
    kv_cache_type: KvCacheType
    weights_ram: int
    weights_gpu: int
    kv_ram: int
    kv_gpu: int
    compute_ram: int
    compute_gpu: int
    overhead_gpu: int = 0
    exact: bool = True
    """False when the header gave no shape, so only the file size was counted."""

    @property
    def ram_bytes(self) -> int:
        return self.weights_ram + self.kv_ram + self.compute_ram

    @property
    def gpu_bytes(self) -> int:
        return self.weights_gpu + self.kv_gpu + self.compute_gpu + self.overhead_gpu

    @property
    def kv_bytes(self) -> int:
        return self.kv_ram + self.kv_gpu

    @property
    def total_bytes(self) -> int:
        return self.ram_bytes + self.gpu_bytes


def offloaded_layers(config: LoadConfig, block_count: int) -> int:
    """How many llama.cpp units go to the GPU: blocks, plus one for the output layer."""
    wanted = config.n_gpu_layers
    if wanted < 0:
        return block_count + 1
    return min(wanted, block_count + 1)


def estimate_memory(entry: CatalogEntry, config: LoadConfig, *, gpu: bool = True) -> MemoryEstimate:
    """The memory loading `entry` with `config` needs. `gpu=False`: a build that cannot
    offload, where every byte lands in RAM whatever gpu_layers says."""
    shape = entry.shape
    if shape is None:
        return MemoryEstimate(
            context_length=config.context_length,
            gpu_layers=0,
            kv_cache_type=config.kv_cache_type,
            weights_ram=entry.size_bytes,
            weights_gpu=0,
            kv_ram=0,
            kv_gpu=0,
            compute_ram=0,
            compute_gpu=0,
            exact=False,
        )
    units = offloaded_layers(config, shape.block_count) if gpu else 0
    on_gpu = _gpu_blocks(shape.block_count, units)
    kv = kv_cache_per_layer(shape, config)
    weights_gpu = sum(b for b, g in zip(shape.layer_bytes, on_gpu) if g)
    weights_ram = sum(shape.layer_bytes) - weights_gpu + shape.other_bytes
    if units > shape.block_count:
        weights_gpu += shape.output_bytes
    elif not shape.output_tied:
        weights_ram += shape.output_bytes
    compute_ram, compute_gpu = _compute_placement(shape, config, units)
    kv_gpu = sum(b for b, g in zip(kv, on_gpu) if g)
    return MemoryEstimate(
        context_length=config.context_length,
        gpu_layers=units,
        kv_cache_type=config.kv_cache_type,
        weights_ram=weights_ram,
        weights_gpu=weights_gpu,
        kv_ram=sum(kv) - kv_gpu,
        kv_gpu=kv_gpu,
        compute_ram=compute_ram,
        compute_gpu=compute_gpu,
        overhead_gpu=GPU_CONTEXT_OVERHEAD if units else 0,
    )


def _gpu_blocks(block_count: int, units: int) -> list[bool]:
    # llama.cpp offloads the last blocks: i_gpu_start = n_layer - n_gpu_layers.
    start = block_count - min(units, block_count)
    return [il >= start for il in range(block_count)]


def kv_cache_per_layer(shape: ModelShape, config: LoadConfig) -> list[int]:
    """KV cache bytes of each layer: cells × KV heads × (key + value length) × element size."""
    element = KV_BYTES_PER_ELEMENT[config.kv_cache_type]
    n_ctx = _pad(config.context_length)
    ubatch = min(config.batch_size, config.context_length)
    sizes = []
    for il in range(shape.block_count):
        cells = n_ctx
        if shape.sliding_window and shape.swa_layers[il] and not config.swa_full:
            # With several slots in one unified cache, each keeps its own window
            # (llama.cpp's iswa cache: n_swa × n_seq_max + n_ubatch cells).
            cells = min(n_ctx, _pad(shape.sliding_window * config.parallel + ubatch))
        per_cell = shape.head_count_kv[il] * (shape.key_length + shape.value_length)
        sizes.append(int(cells * per_cell * element))
    return sizes


def compute_buffer(shape: ModelShape, config: LoadConfig) -> int:
    """An allowance for llama.cpp's compute buffer when everything runs on one device.

    Its peak is the larger of the logits of one micro-batch (n_vocab × n_ubatch floats)
    and, without flash attention, one layer's attention scores (n_ctx × n_ubatch × heads
    floats); activations and graph bookkeeping add a little on top. Calibrated against
    llama.cpp's own "compute buffer size" reports.
    """
    logits, scores, activations = _compute_parts(shape, config)
    return max(logits, scores) + activations


def _compute_parts(shape: ModelShape, config: LoadConfig) -> tuple[int, int, int]:
    ubatch = min(config.batch_size, config.context_length)
    logits = (shape.vocab_size or 32000) * ubatch * 4
    scores = 0
    if not config.flash_attention:
        scores = _pad(config.context_length) * ubatch * shape.head_count * 4
    activations = ubatch * (shape.embedding_length * 4 + (shape.feed_forward_length or 0)) * 4
    return logits, scores, activations + 8 * MIB


def _compute_placement(shape: ModelShape, config: LoadConfig, units: int) -> tuple[int, int]:
    """(RAM, GPU) compute buffers: each device holds the buffers of the work it runs, the
    logits going with the output layer and the attention scores with the blocks."""
    logits, scores, activations = _compute_parts(shape, config)
    if units == 0:
        return max(logits, scores) + activations, 0
    output_on_gpu = units > shape.block_count
    blocks_on_cpu = units < shape.block_count
    gpu = max(logits if output_on_gpu else 0, scores) + activations
    ram = max(0 if output_on_gpu else logits, scores if blocks_on_cpu else 0) + activations
    return ram, gpu


def _pad(n: int) -> int:
    return -(-n // KV_PADDING) * KV_PADDING


# --- does it fit ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FitReport:
    """The verdict on one load: fits or not, by how much, and settings that would."""

    fits: bool
    estimate: MemoryEstimate
    memory: MemorySnapshot
    ram_shortfall: int
    """Bytes over the available RAM (0 when it fits or RAM is unknown)."""
    gpu_shortfall: int
    """Bytes over the free GPU memory (0 when it fits, nothing is offloaded or it is unknown)."""
    suggested_context_length: int | None = None
    suggested_gpu_layers: int | Literal["max"] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def shortfall(self) -> int:
        return self.ram_shortfall + self.gpu_shortfall

    def summary(self) -> str:
        """One line for a status bar or a CLI."""
        need = f"needs {format_bytes(self.estimate.ram_bytes)} RAM"
        if self.estimate.gpu_bytes:
            need += f" + {format_bytes(self.estimate.gpu_bytes)} GPU"
        if self.fits:
            return f"fits: {need}"
        parts = []
        if self.ram_shortfall:
            parts.append(f"{format_bytes(self.ram_shortfall)} short of RAM")
        if self.gpu_shortfall:
            parts.append(f"{format_bytes(self.gpu_shortfall)} short of GPU memory")
        line = f"does not fit: {need} ({', '.join(parts)})"
        hints = []
        if self.suggested_gpu_layers is not None:
            hints.append(f"gpu_layers={self.suggested_gpu_layers}")
        if self.suggested_context_length is not None:
            hints.append(f"context_length={self.suggested_context_length}")
        if hints:
            line += "; try " + " and ".join(hints)
        return line


def fit_check(
    entry: CatalogEntry, config: LoadConfig, memory: MemorySnapshot | None = None
) -> FitReport:
    """Compare what loading `entry` with `config` needs with what is free now.

    Pass `memory` to reuse one probe for several checks (or in tests); otherwise the
    machine is asked (nvidia-smi included, with a short timeout).
    """
    memory = probe_memory() if memory is None else memory
    gpu_usable = memory.gpu_offload is not False
    estimate = estimate_memory(entry, config, gpu=gpu_usable)
    ram_short, gpu_short = _shortfalls(estimate, memory)
    notes = list(_notes(entry, config, estimate, memory))
    fits = ram_short == 0 and gpu_short == 0
    context: int | None = None
    layers: int | Literal["max"] | None = None
    if not fits and entry.shape is not None:
        context, layers = _suggest(entry, config, memory, gpu_usable)
        if context is None and layers is None:
            notes.append("does not fit even with a 512-token context and the best GPU split")
    elif fits and entry.shape is not None:
        notes += _room_to_offload(entry, config, memory, gpu_usable)
    return FitReport(
        fits=fits,
        estimate=estimate,
        memory=memory,
        ram_shortfall=ram_short,
        gpu_shortfall=gpu_short,
        suggested_context_length=context,
        suggested_gpu_layers=layers,
        notes=tuple(notes),
    )


def _shortfalls(estimate: MemoryEstimate, memory: MemorySnapshot) -> tuple[int, int]:
    ram = 0
    if memory.ram_available is not None:
        ram = max(0, estimate.ram_bytes - memory.ram_available)
    gpu = 0
    if estimate.gpu_bytes and memory.gpu_free is not None:
        gpu = max(0, estimate.gpu_bytes - memory.gpu_free)
    return ram, gpu


def _fits(entry: CatalogEntry, config: LoadConfig, memory: MemorySnapshot, gpu: bool) -> bool:
    return _shortfalls(estimate_memory(entry, config, gpu=gpu), memory) == (0, 0)


def _suggest(
    entry: CatalogEntry, config: LoadConfig, memory: MemorySnapshot, gpu: bool
) -> tuple[int | None, int | Literal["max"] | None]:
    """Settings that fit, changing as little as possible: the GPU split first (it costs
    speed, not context), then the context length, then both."""
    assert entry.shape is not None
    n_units = entry.shape.block_count + 1
    gpu_known = gpu and memory.gpu_free is not None
    if gpu_known:
        layers = _best_layers(entry, config, memory, n_units)
        if layers is not None:
            return None, _layers_value(layers, n_units)
    context = _largest_context(entry, config, memory, gpu)
    if context is not None:
        return context, None
    if gpu_known:
        for units in range(n_units, -1, -1):
            candidate = config.model_copy(update={"gpu_layers": units})
            context = _largest_context(entry, candidate, memory, gpu)
            if context is not None:
                return context, _layers_value(units, n_units)
    return None, None


def _best_layers(
    entry: CatalogEntry, config: LoadConfig, memory: MemorySnapshot, n_units: int
) -> int | None:
    """The most GPU units that fit, with the context as it is."""
    for units in range(n_units, -1, -1):
        if _fits(entry, config.model_copy(update={"gpu_layers": units}), memory, True):
            return units
    return None


def _largest_context(
    entry: CatalogEntry, config: LoadConfig, memory: MemorySnapshot, gpu: bool
) -> int | None:
    """The longest context (a multiple of 256, at least 512) below the current one that fits."""
    low, high = 2, config.context_length // KV_PADDING
    if high < low or not _fits(
        entry, config.model_copy(update={"context_length": 512}), memory, gpu
    ):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        candidate = config.model_copy(update={"context_length": middle * KV_PADDING})
        if _fits(entry, candidate, memory, gpu):
            low = middle
        else:
            high = middle - 1
    context = low * KV_PADDING
    return context if context < config.context_length else None


def _layers_value(units: int, n_units: int) -> int | Literal["max"]:
    return "max" if units >= n_units else units


def _room_to_offload(
    entry: CatalogEntry, config: LoadConfig, memory: MemorySnapshot, gpu: bool
) -> list[str]:
    assert entry.shape is not None
    n_units = entry.shape.block_count + 1
    if not gpu or memory.gpu_free is None or config.n_gpu_layers < 0:
        return []
    if config.n_gpu_layers >= n_units:
        return []
    if _fits(entry, config.model_copy(update={"gpu_layers": "max"}), memory, True):
        return ["the whole model would fit on the GPU: gpu_layers=max is faster"]
    return []


def _notes(
    entry: CatalogEntry, config: LoadConfig, estimate: MemoryEstimate, memory: MemorySnapshot
) -> list[str]:
    notes = []
    if not estimate.exact:
        notes.append("no model shape in the header: only the file size is counted")
    if entry.context_length and config.context_length > entry.context_length:
        notes.append(
            f"context {config.context_length} is longer than the {entry.context_length} "
            "the model was trained with"
        )
    if config.n_gpu_layers != 0 and memory.gpu_offload is False:
        notes.append("this llama.cpp build cannot offload to a GPU: everything loads into RAM")
    elif estimate.gpu_bytes and memory.gpu_free is None:
        notes.append("free GPU memory unknown (no nvidia-smi): only RAM was checked")
    if memory.ram_available is None:
        notes.append("free RAM unknown on this system")
    if config.kv_cache_type not in ("f16", "f32", "bf16") and not config.flash_attention:
        notes.append(f"a {config.kv_cache_type} V cache needs flash attention")
    return notes


def format_bytes(size: float) -> str:
    """Sizes as people read them: 1000-based units, like file managers and the Hub."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def describe_estimate(estimate: MemoryEstimate) -> Sequence[str]:
    """The estimate as lines: weights, KV cache and compute buffer, in RAM and on GPU."""
    lines = [
        f"weights: {format_bytes(estimate.weights_ram)} RAM"
        + (f", {format_bytes(estimate.weights_gpu)} GPU" if estimate.weights_gpu else ""),
        f"KV cache ({estimate.context_length} tokens, {estimate.kv_cache_type}): "
        f"{format_bytes(estimate.kv_ram)} RAM"
        + (f", {format_bytes(estimate.kv_gpu)} GPU" if estimate.kv_gpu else ""),
        f"compute buffer: {format_bytes(estimate.compute_ram)} RAM"
        + (f", {format_bytes(estimate.compute_gpu)} GPU" if estimate.compute_gpu else ""),
    ]
    if estimate.overhead_gpu:
        lines.append(f"GPU context: {format_bytes(estimate.overhead_gpu)}")
    return lines
