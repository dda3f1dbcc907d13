"""The local catalog, GGUF header reading, the memory estimate and remembered load settings."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType
from gguf_factory import N_EMBD, N_HEAD, N_HEAD_KV, N_LAYER, write_tiny_gguf
from hub_server import write_mmproj_gguf, write_split_gguf

from engine.errors import ModelSettingsError
from engine.load_config import LoadConfig
from engine.models import catalog, gguf_header, model_facts
from engine.models.catalog import (
    CatalogSource,
    clear_info_cache,
    default_sources,
    find_models,
    hf_cache_dir,
    read_model_info,
    scan_catalog,
)
from engine.models.loader import resolve_model
from engine.models.memory import (
    MIB,
    GpuMemory,
    MemorySnapshot,
    estimate_memory,
    fit_check,
    gpu_memory,
    kv_cache_per_layer,
    parse_nvidia_smi,
    ram_memory,
)
from engine.models.remembered import ModelSettingsStore
from engine.settings import LoadOverride, ModelOverride, Settings


def load_config(**values: Any) -> LoadConfig:
    # By field name through model_validate: type checkers only know the constructor's aliases.
    return LoadConfig.model_validate(values)


THINKING_TOOLS_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\\n<tools>' }}"
    "{% for t in tools %}{{ t | tojson }}{% endfor %}"
    '{{ \'</tools>\\nCall a tool with <tool_call>{"name": ..., "arguments": ...}</tool_call>'
    "<|im_end|>\\n' }}{%- endif %}"
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_info_cache()


def scan_dir(directory: Path, kind: catalog.ModelSource = "models_dir") -> catalog.CatalogScan:
    return scan_catalog([CatalogSource(kind, directory)])


# --- metadata -------------------------------------------------------------------------


def test_tiny_model_metadata(tiny_model_path: Path) -> None:
    entry = read_model_info(tiny_model_path)
    assert entry.ok, entry.error
    assert entry.architecture == "llama"
    assert entry.name == "tiny-test-model"
    assert entry.quantization == "F16"
    assert entry.context_length == 2048
    assert entry.size_bytes == tiny_model_path.stat().st_size
    assert entry.has_chat_template
    assert entry.tool_format == "default"
    assert not entry.supports_thinking
    shape = entry.shape
    assert shape is not None
    assert (shape.block_count, shape.embedding_length, shape.head_count) == (
        N_LAYER,
        N_EMBD,
        N_HEAD,
    )
    assert shape.head_count_kv == (N_HEAD_KV,) * N_LAYER
    assert shape.key_length == shape.value_length == N_EMBD // N_HEAD
    # Parameters counted from the tensor shapes: embeddings, blocks, output.
    vocab = shape.vocab_size
    assert vocab is not None
    per_block = 2 * N_EMBD + N_EMBD * N_EMBD * 2 + 2 * N_EMBD * (N_EMBD // 2) + 3 * 128 * N_EMBD
    expected = 2 * vocab * N_EMBD + N_EMBD + N_LAYER * per_block
    assert entry.parameter_count == expected
    assert sum(shape.layer_bytes) + shape.output_bytes + shape.other_bytes < entry.size_bytes


def test_template_traits_and_missing_template(make_tiny_model: Callable[..., Path]) -> None:
    thinking = read_model_info(make_tiny_model(chat_template=THINKING_TOOLS_TEMPLATE))
    assert thinking.supports_thinking and thinking.reasoning == "think"
    assert thinking.tool_format == "hermes"
    bare = read_model_info(make_tiny_model(chat_template=None))
    assert not bare.has_chat_template
    assert bare.tool_format == "default"
    assert not bare.supports_thinking


def test_header_values_and_size_label(make_tiny_model: Callable[..., Path]) -> None:
    path = make_tiny_model(
        context_length=8192,
        metadata={
            "general.size_label": "70B",
            "general.file_type": int(LlamaFileType.MOSTLY_Q4_K_M),
        },
    )
    entry = read_model_info(path)
    assert entry.context_length == 8192
    assert entry.size_label == "70B"
    assert entry.quantization == "Q4_K_M"
    assert entry.to_json()["quantization"] == "Q4_K_M"
    json.dumps(entry.to_json())


def _write_big_header(path: Path, n_layer: int = 80, n_embd: int = 8192) -> Path:
    """A 70B-shaped GGUF: a real header, tensor data that is all sparse zeros."""
    writer = GGUFWriter(None, "llama")
    writer.add_name("big")
    writer.add_file_type(LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_context_length(131072)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_head_count(64)
    writer.add_head_count_kv(8)
    writer.add_feed_forward_length(28672)
    writer.add_vocab_size(128256)
    q4k = GGMLQuantizationType.Q4_K

    def info(name: str, rows: int, cols: int) -> None:
        row_bytes = cols // 256 * 144  # gguf wants a quantised tensor's shape in bytes
        shape = (rows, row_bytes)
        writer.add_tensor_info(name, shape, np.dtype(np.uint8), rows * row_bytes, raw_dtype=q4k)

    info("token_embd.weight", 128256, n_embd)
    for il in range(n_layer):
        for part, rows in (
            ("attn_q", n_embd),
            ("attn_k", 1024),
            ("attn_v", 1024),
            ("attn_output", n_embd),
        ):
            info(f"blk.{il}.{part}.weight", rows, n_embd)
        for part in ("ffn_gate", "ffn_up"):
            info(f"blk.{il}.{part}.weight", 28672, n_embd)
        info(f"blk.{il}.ffn_down.weight", n_embd, 28672)
    info("output.weight", 128256, n_embd)
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    needed = gguf_header.read_gguf_header(path).problem
    assert needed is not None  # data not there yet
    header = gguf_header.read_gguf_header(path)
    end = header.data_offset + max(t.offset + t.n_bytes for t in header.tensors)
    os.truncate(path, end)  # sparse: no disk used, and reading it would take minutes
    return path


def test_a_70b_header_reads_fast_without_touching_weights(tmp_path: Path) -> None:
    path = _write_big_header(tmp_path / "big-70b.gguf")
    started = time.perf_counter()
    entry = read_model_info(path)
    elapsed = time.perf_counter() - started
    assert entry.ok, entry.error
    assert entry.size_bytes > 35e9
    assert entry.parameter_count is not None and 68e9 < entry.parameter_count < 72e9
    assert entry.quantization == "Q4_K_M"
    assert elapsed < 1.0


# --- files that are not (whole) models --------------------------------------------------


def test_corrupt_truncated_and_empty_files_are_listed_with_errors(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    data = tiny_model_path.read_bytes()
    (models / "garbage.gguf").write_bytes(b"not a gguf at all" * 10)
    (models / "empty.gguf").write_bytes(b"")
    (models / "cut-header.gguf").write_bytes(data[:200])
    (models / "cut-weights.gguf").write_bytes(data[:-5000])
    (models / "good.gguf").write_bytes(data)
    entries = {e.key: e for e in scan_dir(models).entries}
    assert set(entries) == {"garbage", "empty", "cut-header", "cut-weights", "good"}
    assert entries["good"].ok
    assert "not a GGUF file" in (entries["garbage"].error or "")
    assert entries["empty"].error == "empty file"
    assert entries["cut-header"].error == "truncated header"
    weights = entries["cut-weights"]
    assert weights.error is not None and weights.error.startswith("truncated:")
    # The header was whole, so what it says is still shown.
    assert weights.architecture == "llama" and weights.context_length == 2048


def test_split_model_is_one_entry_with_all_parts(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "models" / "big-Q4_K_M.gguf", parts=3)
    scan = scan_dir(tmp_path / "models")
    assert len(scan.entries) == 1
    entry = scan.entries[0]
    assert entry.key == "big-q4_k_m"
    assert entry.parts == tuple(parts)
    assert entry.path == parts[0]
    assert entry.size_bytes == sum(p.stat().st_size for p in parts)
    assert entry.ok, entry.error
    assert entry.shape is not None and entry.shape.block_count == 3
    # Tensors from every part are counted.
    assert entry.parameter_count == 2 * 32 * 64 + 64 + 3 * (64 + 32 + 32) * 64
    # Reading any part directly gives the same model.
    assert read_model_info(parts[1]).parts == tuple(parts)
    assert [m.path for m in find_models([tmp_path / "models"])] == [parts[0]]


def test_split_model_with_a_missing_part(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "models" / "big.gguf", parts=3)
    parts[1].unlink()
    (entry,) = scan_dir(tmp_path / "models").entries
    assert entry.error == "split model incomplete: part 2 of 3 missing"
    assert entry.parts == (parts[0], parts[2])


def test_mmproj_belongs_to_the_models_beside_it(tmp_path: Path, tiny_model_path: Path) -> None:
    folder = tmp_path / "models" / "org" / "vision-GGUF"
    folder.mkdir(parents=True)
    (folder / "vision-Q4_K_M.gguf").write_bytes(tiny_model_path.read_bytes())
    (folder / "vision-Q8_0.gguf").write_bytes(tiny_model_path.read_bytes())
    projector = write_mmproj_gguf(folder / "mmproj-vision-F16.gguf")
    entries = scan_dir(tmp_path / "models").entries
    assert [e.key for e in entries] == ["vision-q4_k_m", "vision-q8_0"]
    assert all(e.mmproj == (projector,) for e in entries)
    assert all(e.repo_id == "org/vision-GGUF" for e in entries)
    assert all("mmproj" not in m.key for m in find_models([tmp_path / "models"]))


def test_hidden_directories_are_skipped(tmp_path: Path, tiny_model_path: Path) -> None:
    hidden = tmp_path / "models" / "org" / "repo" / ".cache" / "huggingface"
    hidden.mkdir(parents=True)
    (hidden / "partial.gguf").write_bytes(tiny_model_path.read_bytes())
    assert scan_dir(tmp_path / "models").entries == []


# --- where models live ------------------------------------------------------------------


def make_hf_cache(
    cache: Path, repo: str, files: dict[str, bytes], revision: str = "a" * 40
) -> Path:
    """The real hub cache layout: snapshots/<rev>/<file> are symlinks into blobs/."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def test_hf_cache_layout(
    tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf" / "hub"
    data = tiny_model_path.read_bytes()
    snapshot = make_hf_cache(
        cache,
        "org/tiny-GGUF",
        {"tiny-Q4_K_M.gguf": data, "mmproj-F16.gguf": data[:100], "README.md": b"hi"},
    )
    make_hf_cache(cache, "org/bert", {"model.safetensors": b"\0" * 8})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert hf_cache_dir() == cache
    sources = default_sources(tmp_path / "data" / "models")
    scan = scan_catalog(sources)
    (entry,) = scan.entries
    assert entry.source == "hf_cache"
    assert entry.repo_id == "org/tiny-GGUF"
    assert entry.path == snapshot / "tiny-Q4_K_M.gguf"
    assert entry.mmproj == (snapshot / "mmproj-F16.gguf",)
    assert entry.size_bytes == len(data)
    assert entry.ok and entry.architecture == "llama"


def test_hf_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hf_cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert hf_cache_dir() == tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert hf_cache_dir() == tmp_path / "hub-cache"


def test_lmstudio_layout_and_duplicates(
    tmp_path: Path, tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    lmstudio = tmp_path / ".lmstudio" / "models" / "lmstudio-community" / "tiny-GGUF"
    lmstudio.mkdir(parents=True)
    (lmstudio / "tiny-Q4_K_M.gguf").write_bytes(tiny_model_path.read_bytes())
    configured = tmp_path / "mine"
    configured.mkdir()
    # The same file reached twice (a link in a configured directory) is listed once.
    (configured / "linked.gguf").symlink_to(lmstudio / "tiny-Q4_K_M.gguf")
    (configured / "own.gguf").write_bytes(tiny_model_path.read_bytes())
    sources = default_sources(tmp_path / "data" / "models", [configured], include_hf_cache=False)
    assert sources[-1] == CatalogSource("lmstudio", tmp_path / ".lmstudio" / "models")
    entries = scan_catalog(sources).entries
    assert sorted((e.key, e.source) for e in entries) == [
        ("linked", "configured"),
        ("own", "configured"),
    ]
    only_lmstudio = scan_catalog([sources[-1]]).entries
    assert [(e.source, e.repo_id, e.location) for e in only_lmstudio] == [
        ("lmstudio", "lmstudio-community/tiny-GGUF", "lmstudio-community/tiny-GGUF")
    ]


def test_missing_sources_are_not_an_error(tmp_path: Path) -> None:
    scan = scan_catalog(
        [CatalogSource("models_dir", tmp_path / "nope"), CatalogSource("hf_cache", tmp_path / "no")]
    )
    assert scan.entries == [] and scan.problems == []


def test_rescans_read_headers_only_when_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    for n in range(3):
        write_tiny_gguf(models / f"m{n}.gguf", seed=n)
    reads: list[Path] = []
    real = gguf_header.read_gguf_header

    def counting(path: Path) -> gguf_header.GGUFHeader:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(model_facts, "read_gguf_header", counting)
    scan_dir(models)
    assert len(reads) == 3
    scan_dir(models)
    assert len(reads) == 3
    write_tiny_gguf(models / "m1.gguf", seed=1, context_length=512)  # same size, new mtime
    os.utime(models / "m1.gguf", ns=(time.time_ns(), time.time_ns() + 10**9))
    entries = {e.key: e for e in scan_dir(models).entries}
    assert len(reads) == 4
    assert entries["m1"].context_length == 512


def test_resolve_model_finds_split_models_by_key(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "models" / "Big-Model-Q4_K_M.gguf", parts=2)
    assert resolve_model("big-model", [], tmp_path / "models") == parts[0]


# --- starter model ----------------------------------------------------------------------


@pytest.mark.starter
def test_starter_model_metadata(starter_model_path: Path) -> None:
    entry = read_model_info(starter_model_path)
    assert entry.ok, entry.error
    assert entry.architecture == "gemma3"
    assert entry.quantization == "Q4_K_M"
    assert entry.size_label == "270M"
    assert entry.parameter_count is not None and 260e6 < entry.parameter_count < 280e6
    assert entry.context_length == 32768
    assert not entry.has_chat_template  # the GGUF has none: templates.py falls back by architecture
    shape = entry.shape
    assert shape is not None
    assert shape.block_count == 18 and shape.head_count_kv == (1,) * 18
    assert shape.key_length == shape.value_length == 256
    assert shape.sliding_window == 512
    assert sum(shape.swa_layers) == 15  # five sliding-window layers to one global one
    assert shape.vocab_size == 262144
    assert shape.output_tied


@pytest.mark.starter
def test_starter_estimate_matches_what_llama_cpp_reports(starter_model_path: Path) -> None:
    """Figures llama.cpp printed when loading the starter model (CPU, n_ubatch 256)."""
    entry = read_model_info(starter_model_path)
    full = estimate_memory(entry, load_config(context_length=4096, batch_size=256, swa_full=True))
    assert full.kv_ram == 72 * MIB  # "KV buffer size = 12.00 MiB" + "60.00 MiB"
    assert abs(full.weights_ram - 235.16 * MIB) < 0.01 * MIB  # "CPU_Mapped model buffer size"
    assert 257 * MIB <= full.compute_ram <= 1.1 * 257.25 * MIB  # "compute buffer size = 257.25"
    # A window per slot (llama.cpp's "SWA KV cache, size = N cells" for 1, 2 and 4 slots).
    for parallel, swa_mib in ((1, 11.25), (2, 18.75), (4, 33.75)):  # 768, 1280, 2304 cells
        windowed = estimate_memory(
            entry,
            load_config(context_length=4096, batch_size=256, swa_full=False, parallel=parallel),
        )
        assert windowed.kv_ram == int((12 + swa_mib) * MIB), parallel  # + 12 MiB global


# --- memory estimate ------------------------------------------------------------------------

GIB = 1024 * MIB


def _big_entry(tmp_path: Path) -> catalog.CatalogEntry:
    return read_model_info(_write_big_header(tmp_path / "big.gguf"))


def test_kv_cache_formula(tmp_path: Path) -> None:
    entry = _big_entry(tmp_path)
    shape = entry.shape
    assert shape is not None
    config = load_config(context_length=8192)
    # n_layer × n_ctx × n_head_kv × (k + v) × 2 bytes
    assert sum(kv_cache_per_layer(shape, config)) == 80 * 8192 * 8 * (128 + 128) * 2
    q8 = load_config(context_length=8192, kv_cache_type="q8_0", flash_attention=True)
    assert sum(kv_cache_per_layer(shape, q8)) == 80 * 8192 * 8 * 256 * 34 // 32
    # Context is padded the way llama.cpp pads it.
    odd = sum(kv_cache_per_layer(shape, load_config(context_length=1000)))
    assert odd == 80 * 1024 * 8 * 256 * 2


def test_gpu_layers_move_weights_and_cache(tmp_path: Path) -> None:
    entry = _big_entry(tmp_path)
    shape = entry.shape
    assert shape is not None
    cpu = estimate_memory(entry, load_config(context_length=4096))
    assert cpu.gpu_bytes == 0
    half = estimate_memory(entry, load_config(context_length=4096, gpu_layers=40))
    assert half.weights_gpu == sum(shape.layer_bytes[40:])
    assert half.kv_gpu == half.kv_ram
    everything = estimate_memory(entry, load_config(context_length=4096, gpu_layers="max"))
    assert everything.weights_gpu == sum(shape.layer_bytes) + shape.output_bytes
    assert everything.weights_ram == shape.other_bytes  # token embeddings stay in RAM
    assert everything.kv_ram == 0
    no_offload = estimate_memory(entry, load_config(gpu_layers="max"), gpu=False)
    assert no_offload.gpu_bytes == 0


def _machine(ram_gib: float, gpu_gib: float | None = None) -> MemorySnapshot:
    gpus = None if gpu_gib is None else (GpuMemory(0, int(gpu_gib * GIB), int(gpu_gib * GIB)),)
    return MemorySnapshot(
        int(ram_gib * GIB), int(ram_gib * GIB), gpus, gpu_offload=gpu_gib is not None
    )


def test_fit_check_fits(tmp_path: Path) -> None:
    entry = _big_entry(tmp_path)
    report = fit_check(entry, load_config(context_length=8192), _machine(256))
    assert report.fits and report.shortfall == 0
    assert report.summary().startswith("fits: needs")


def test_fit_check_suggests_a_context_that_fits_in_ram(tmp_path: Path) -> None:
    entry = _big_entry(tmp_path)
    config = load_config(context_length=131072)
    machine = _machine(64)
    report = fit_check(entry, config, machine)
    assert not report.fits and report.ram_shortfall > 0
    assert report.suggested_gpu_layers is None
    context = report.suggested_context_length
    assert context is not None and 512 <= context < 131072 and context % 256 == 0
    assert fit_check(entry, config.model_copy(update={"context_length": context}), machine).fits
    longer = config.model_copy(update={"context_length": context + 256})
    assert not fit_check(entry, longer, machine).fits
    assert "does not fit" in report.summary() and f"context_length={context}" in report.summary()


def test_fit_check_suggests_gpu_layers_that_fit(tmp_path: Path) -> None:
    entry = _big_entry(tmp_path)
    config = load_config(context_length=4096, gpu_layers="max", flash_attention=True)
    machine = _machine(ram_gib=128, gpu_gib=24)
    report = fit_check(entry, config, machine)
    assert not report.fits and report.gpu_shortfall > 0
    layers = report.suggested_gpu_layers
    assert isinstance(layers, int) and 0 < layers < 80
    assert fit_check(entry, config.model_copy(update={"gpu_layers": layers}), machine).fits
    assert not fit_check(entry, config.model_copy(update={"gpu_layers": layers + 1}), machine).fits


def test_fit_check_offloads_when_ram_is_short_and_the_gpu_has_room(tmp_path: Path) -> None:
    entry = _big_entry(tmp_path)
    config = load_config(context_length=4096, flash_attention=True)
    report = fit_check(entry, config, _machine(ram_gib=16, gpu_gib=80))
    assert not report.fits
    assert report.suggested_gpu_layers == "max"


def test_fit_check_when_nothing_fits(tmp_path: Path) -> None:
    entry = _big_entry(tmp_path)
    report = fit_check(entry, load_config(context_length=4096), _machine(4))
    assert not report.fits
    assert report.suggested_context_length is None and report.suggested_gpu_layers is None
    assert any("does not fit even" in note for note in report.notes)


def test_fit_check_notes(tmp_path: Path, tiny_model_path: Path) -> None:
    entry = read_model_info(tiny_model_path)
    cpu_build = MemorySnapshot(8 * GIB, 8 * GIB, None, gpu_offload=False)
    report = fit_check(entry, load_config(context_length=4096, gpu_layers="max"), cpu_build)
    assert report.fits
    assert any("cannot offload" in n for n in report.notes)
    assert any("longer than the 2048" in n for n in report.notes)
    unknown_gpu = MemorySnapshot(8 * GIB, 8 * GIB, None, gpu_offload=True)
    report = fit_check(entry, load_config(gpu_layers="max"), unknown_gpu)
    assert any("GPU memory unknown" in n for n in report.notes)
    roomy = _machine(ram_gib=8, gpu_gib=8)
    report = fit_check(entry, load_config(context_length=512), roomy)
    assert any("gpu_layers=max" in n for n in report.notes)


def test_fit_check_on_a_broken_file_counts_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"junk" * 100)
    entry = read_model_info(path)
    report = fit_check(entry, load_config(), _machine(8))
    assert report.estimate.ram_bytes == 400 and not report.estimate.exact
    assert any("only the file size" in n for n in report.notes)


def test_nvidia_smi_parsing_and_absence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_nvidia_smi("0, 1000, 2000\n1, 500, 2000\nbad line\n") == (
        GpuMemory(0, 1000 * MIB, 2000 * MIB),
        GpuMemory(1, 500 * MIB, 2000 * MIB),
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_memory() is None
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '0, 70000, 81559'\necho '1, 100, 81559'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    gpus = gpu_memory()
    assert gpus == (GpuMemory(0, 70000 * MIB, 81559 * MIB),)
    fake.write_text("#!/bin/sh\nsleep 5\n")
    started = time.monotonic()
    assert gpu_memory(timeout=0.3) is None
    assert time.monotonic() - started < 3


def test_ram_memory_reads_the_machine() -> None:
    available, total = ram_memory()
    assert total is not None and total > 0
    assert available is not None and 0 < available <= total


# --- remembered load settings ---------------------------------------------------------------


def test_model_settings_are_remembered_and_merged(tmp_path: Path) -> None:
    settings = Settings(
        load=load_config(context_length=4096, threads=2),
        models={
            "tiny": ModelOverride(
                load=LoadOverride.model_validate({"gpu_layers": 10, "batch_size": 64})
            )
        },
    )
    store = ModelSettingsStore(tmp_path)
    store.remember(
        "tiny", {"contextLength": 8192, "flash_attention": True, "kv_cache_type": "q8_0"}
    )
    # A new store (a new process) sees the file.
    again = ModelSettingsStore(tmp_path)
    config = again.load_config(settings, "tiny", "tiny.gguf")
    assert config.context_length == 8192  # remembered beats the config file
    assert config.gpu_layers == 10 and config.batch_size == 64  # config's override for the model
    assert config.threads == 2  # [load]
    assert config.kv_cache_type == "q8_0" and config.flash_attention
    saved = json.loads((tmp_path / "model_settings.json").read_text())
    assert saved["schema_version"] == 1
    assert saved["models"]["tiny"]["context_length"] == 8192
    # Another model is untouched.
    assert again.load_config(settings, "other") == settings.load


def test_model_settings_forget_and_clear(tmp_path: Path) -> None:
    store = ModelSettingsStore(tmp_path)
    store.remember("m", {"gpu_layers": "max", "chat_template_file": str(tmp_path / "t.jinja")})
    assert store.get("m").gpu_layers == "max"
    assert store.get("m").chat_template_file == tmp_path / "t.jinja"
    store.remember("m", {"gpu_layers": None})
    assert store.get("m").gpu_layers is None
    store.forget("m")
    assert store.all() == {}


def test_invalid_model_settings_are_refused(tmp_path: Path) -> None:
    store = ModelSettingsStore(tmp_path)
    store.remember("m", {"context_length": 2048})
    before = (tmp_path / "model_settings.json").read_bytes()
    with pytest.raises(ModelSettingsError, match="context_length"):
        store.remember("m", {"context_length": 3})
    with pytest.raises(ModelSettingsError, match="unknown load setting"):
        store.remember("m", {"contxt": 3})
    assert (tmp_path / "model_settings.json").read_bytes() == before


def test_corrupt_model_settings_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "model_settings.json"
    path.write_text("{not json")
    store = ModelSettingsStore(tmp_path)
    assert store.get("m").is_empty()
    assert store.problems and "set aside" in store.problems[0]
    assert (tmp_path / "model_settings.json.corrupt-1").read_text() == "{not json"
    store.remember("m", {"threads": 3})
    assert ModelSettingsStore(tmp_path).get("m").threads == 3


def test_bad_entries_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "model_settings.json").write_text(
        json.dumps({"schema_version": 1, "models": {"ok": {"threads": 2}, "bad": {"threads": -1}}})
    )
    store = ModelSettingsStore(tmp_path)
    assert store.get("ok").threads == 2
    assert store.get("bad").is_empty()
    assert any("bad" in p for p in store.problems)


def test_sources_for_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.models.catalog import sources_for
    from engine.settings import PathsSettings

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    settings = Settings(
        paths=PathsSettings(data_dir=tmp_path / "data", model_dirs=[tmp_path / "x"])
    )
    assert sources_for(settings) == [
        CatalogSource("models_dir", tmp_path / "data" / "models"),
        CatalogSource("configured", tmp_path / "x"),
        CatalogSource("hf_cache", tmp_path / "hf"),
    ]
