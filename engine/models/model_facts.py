"""What a GGUF header says about a model: its facts (name, architecture, quantisation,
trained context, template traits) and its shape (the numbers a memory estimate needs).

Read from the headers of every part of a model (engine.models.gguf_header); the catalog
remembers the result per file stamp, the memory estimate reads the shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from engine.errors import GGUFFormatError
from engine.models.gguf_header import GGUFHeader, TensorInfo, read_gguf_header


@dataclass(frozen=True, slots=True)
class ModelShape:
    """The numbers a memory estimate needs, from the GGUF header."""

    block_count: int
    embedding_length: int
    head_count: int
    head_count_kv: tuple[int, ...]
    """Per layer; 0 for layers without attention (recurrent/SSM layers)."""
    key_length: int
    """Per-head length of a key, as the KV cache stores it."""
    value_length: int
    feed_forward_length: int | None
    vocab_size: int | None
    sliding_window: int | None
    swa_layers: tuple[bool, ...]
    """Per layer: does it attend over a sliding window only (so caches only the window)?"""
    layer_bytes: tuple[int, ...]
    """Weight bytes of each block (blk.N.*)."""
    output_bytes: int
    """Weight bytes of the output layer, which joins the GPU when every block is offloaded."""
    output_tied: bool
    """The output layer reuses the token embeddings: no extra bytes in RAM, a copy on a GPU."""
    other_bytes: int
    """Weight bytes that always stay in RAM (token embeddings and the like)."""



@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFacts:
    """What a model's headers say, independent of where its files were found.

    `error` is set for a file that could not be read (fully or at all); the fields the
    header did give are still filled in. CatalogEntry adds where the files are.
    """

    name: str | None = None
    """general.name from the header."""
    architecture: str | None = None
    parameter_count: int | None = None
    size_label: str | None = None
    """general.size_label ("270M", "8x7B"), when the header has one."""
    quantization: str | None = None
    context_length: int | None = None
    """The context length the model was trained with."""
    has_chat_template: bool = False
    tool_format: str = "default"
    reasoning: str | None = None
    """The family of reasoning markers the template writes (None: no thinking)."""
    shape: ModelShape | None = None
    error: str | None = None

    @property
    def supports_thinking(self) -> bool:
        return self.reasoning is not None

    def facts(self) -> dict[str, Any]:
        """These fields as keyword arguments (to build a CatalogEntry from them)."""
        return {f.name: getattr(self, f.name) for f in fields(ModelFacts)}


def read_facts(parts: tuple[Path, ...]) -> ModelFacts:
    """What the headers of a model's files say; never raises (a bad file sets `error`)."""
    try:
        first = read_gguf_header(parts[0])
    except GGUFFormatError as err:
        return ModelFacts(error=str(err))
    except OSError as err:
        return ModelFacts(error=f"cannot read: {err.strerror or err}")
    headers = [first]
    errors = [f"{parts[0].name}: {first.problem}"] if first.problem else []
    for part in parts[1:]:
        try:
            header = read_gguf_header(part)
        except (GGUFFormatError, OSError) as err:
            errors.append(f"{part.name}: {err}")
            continue
        headers.append(header)
        if header.problem:
            errors.append(f"{part.name}: {header.problem}")
    facts = _facts_from_headers(first, headers)
    if errors:
        error = errors[0] if len(parts) > 1 else (first.problem or errors[0])
        facts = replace(facts, error=error)
    return facts


def _facts_from_headers(first: GGUFHeader, headers: list[GGUFHeader]) -> ModelFacts:
    meta = first.metadata
    arch = _str(meta.get("general.architecture"))
    tensors = [t for h in headers for t in h.tensors]
    template = _str(meta.get("tokenizer.chat_template"))
    reasoning, tool_format = _template_traits(template)
    return ModelFacts(
        name=_str(meta.get("general.name")),
        architecture=arch,
        parameter_count=sum(t.n_elements for t in tensors)
        or _int(meta.get("general.parameter_count")),
        size_label=_str(meta.get("general.size_label")),
        quantization=_quantization(meta.get("general.file_type"), tensors),
        context_length=_int(meta.get(f"{arch}.context_length")),
        has_chat_template=bool(template),
        tool_format=tool_format,
        reasoning=reasoning,
        shape=_shape(first, tensors) if arch else None,
    )


def _template_traits(template: str | None) -> tuple[str | None, str]:
    from engine.formatting.reasoning import markers_for_template
    from engine.toolcalls import detect_tool_format

    markers = markers_for_template(template)
    return (markers.family if markers else None), detect_tool_format(template)


def _shape(header: GGUFHeader, tensors: list[TensorInfo]) -> ModelShape | None:
    meta = header.metadata
    arch = _str(meta.get("general.architecture")) or ""
    n_layer = _int(meta.get(f"{arch}.block_count"))
    n_embd = _int(meta.get(f"{arch}.embedding_length"))
    if not n_layer or not n_embd:
        return None
    head_count = _per_layer(meta.get(f"{arch}.attention.head_count"), n_layer)
    n_head = max(head_count, default=0)
    head_count_kv = _per_layer(meta.get(f"{arch}.attention.head_count_kv"), n_layer) or head_count
    head_dim = n_embd // n_head if n_head else 0
    key_length = _int(meta.get(f"{arch}.attention.key_length")) or head_dim
    value_length = _int(meta.get(f"{arch}.attention.value_length")) or head_dim
    feed_forward = _per_layer(meta.get(f"{arch}.feed_forward_length"), n_layer)
    vocab = _int(meta.get(f"{arch}.vocab_size")) or header.array_lengths.get(
        "tokenizer.ggml.tokens"
    )
    window = _int(meta.get(f"{arch}.attention.sliding_window"))
    layer_bytes, output_bytes, other_bytes, tied = _weight_split(tensors, n_layer)
    return ModelShape(
        block_count=n_layer,
        embedding_length=n_embd,
        head_count=n_head,
        head_count_kv=head_count_kv or (0,) * n_layer,
        key_length=key_length,
        value_length=value_length,
        feed_forward_length=max(feed_forward) if feed_forward else None,
        vocab_size=vocab,
        sliding_window=window or None,
        swa_layers=_swa_layers(arch, meta, n_layer, window),
        layer_bytes=layer_bytes,
        output_bytes=output_bytes,
        output_tied=tied,
        other_bytes=other_bytes,
    )


# llama.cpp's sliding-window layout for architectures whose GGUFs do not record it
# (llama-model.cpp: set_swa_pattern). A period n means layers il % n < n - 1 use the window.
_SWA_PERIODS = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "gpt-oss": 2, "exaone4": 4}


def _swa_layers(
    arch: str, meta: dict[str, Any], n_layer: int, window: int | None
) -> tuple[bool, ...]:
    if not window:
        return (False,) * n_layer
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, tuple) and len(pattern) == n_layer:
        return tuple(bool(x) for x in pattern)
    period = pattern if isinstance(pattern, int) and not isinstance(pattern, bool) else None
    period = period if period is not None else _SWA_PERIODS.get(arch)
    if period is None:
        # Unknown layout: count every layer at full length rather than promise savings.
        return (False,) * n_layer
    return tuple(period == 0 or il % period < period - 1 for il in range(n_layer))


_BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.")


def _weight_split(
    tensors: list[TensorInfo], n_layer: int
) -> tuple[tuple[int, ...], int, int, bool]:
    layers = [0] * n_layer
    output = other = 0
    embeddings = 0
    has_output = False
    for tensor in tensors:
        match = _BLOCK_TENSOR.match(tensor.name)
        if match and int(match.group(1)) < n_layer:
            layers[int(match.group(1))] += tensor.n_bytes
        elif tensor.name.startswith("output"):
            output += tensor.n_bytes
            has_output = has_output or tensor.name == "output.weight"
        else:
            other += tensor.n_bytes
            if tensor.name == "token_embd.weight":
                embeddings = tensor.n_bytes
    if not has_output:
        # Tied embeddings: llama.cpp gives the output layer its own copy of token_embd.
        output += embeddings
    return tuple(layers), output, other, not has_output


def _quantization(file_type: Any, tensors: list[TensorInfo]) -> str | None:
    from gguf import GGMLQuantizationType, LlamaFileType

    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            name = LlamaFileType(file_type).name
        except ValueError:
            name = ""
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    # No file type: name it after the type holding most of the weights.
    by_type: dict[int, int] = {}
    for tensor in tensors:
        if tensor.n_dims >= 2:
            by_type[tensor.ggml_type] = by_type.get(tensor.ggml_type, 0) + tensor.n_bytes
    if not by_type:
        return None
    dominant = max(by_type, key=lambda t: by_type[t])
    try:
        return GGMLQuantizationType(dominant).name
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _per_layer(value: Any, n_layer: int) -> tuple[int, ...]:
    """A per-layer hyperparameter: a scalar for every layer, or an array of one per layer."""
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return tuple(int(v) for v in value[:n_layer]) + (0,) * max(0, n_layer - len(value))
    number = _int(value)
    return (number,) * n_layer if number is not None else ()

