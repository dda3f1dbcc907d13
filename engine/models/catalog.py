"""Local GGUF models: where they are and what they are.

The catalog finds .gguf files in the data directory's models folder, the configured
model directories, the Hugging Face cache and LM Studio's models folder, groups the
parts of split models into one entry, attaches multimodal projectors (mmproj files)
to the models beside them, and reads each model's GGUF header: never its weights,
so a 70B file costs the same few milliseconds as a tiny one. A file that cannot be
read is listed with its error rather than skipped. Headers are remembered by
(path, mtime, size), so a rescan only stats the files.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from engine.models.model_facts import ModelFacts, read_facts
from engine.models.starter import STARTER_FILE, starter_chunks

if TYPE_CHECKING:
    from engine.settings import Settings


ModelSource: TypeAlias = Literal[
    "models_dir", "configured", "hf_cache", "lmstudio", "path", "starter"
]
"""Where a model was found: the data directory's models/, a directory from the config,
the Hugging Face cache, LM Studio's models folder, a path given directly, or the
starter model's installed packages (assembled into models/ on first load)."""

SOURCE_LABELS: dict[ModelSource, str] = {
    "models_dir": "models dir",
    "configured": "configured dir",
    "hf_cache": "HF cache",
    "lmstudio": "LM Studio",
    "path": "path",
    "starter": "starter",
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



@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogEntry(ModelFacts):
    """One model as the catalog sees it: the files, where they live, and (from ModelFacts)
    what the header says."""

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

    @property
    def display_name(self) -> str:
        return self.name or self.key

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
    models_dir: Path,
    model_dirs: Iterable[Path] = (),
    *,
    include_hf_cache: bool = True,
    starter: bool = False,
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
    if starter:
        # Last: once assembled, the file in models/ is the entry, and this one stays out.
        sources.append(CatalogSource("starter", models_dir))
    return sources


def sources_for(settings: Settings, *, starter: bool = False) -> list[CatalogSource]:
    """default_sources() for a config: its data directory's models/ and its model_dirs
    (and with `starter`, the starter model while it is not assembled yet)."""
    from engine.paths import models_dir

    return default_sources(
        models_dir(settings.data_dir()), settings.paths.model_dirs, starter=starter
    )


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
    if source.kind == "starter":
        entry = starter_entry(source.path)
        if entry is not None:
            yield entry
        return
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
    # Reading the cache is huggingface_hub's business, so it lives with the Hub client.
    from engine.models.hub import cached_gguf_files

    for repo_id, files in cached_gguf_files(cache, problems):
        for group in _group_files(files.items()):
            yield _entry_for(group, "hf_cache", repo_id, repo_id)


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
    facts = _cached_facts(group.parts).facts()
    if group.missing:
        count = len(group.parts) + len(group.missing)
        absent = ", ".join(str(n) for n in group.missing)
        facts["error"] = f"split model incomplete: part {absent} of {count} missing"
    return CatalogEntry(
        key=group.key,
        path=group.parts[0],
        parts=group.parts,
        size_bytes=group.size_bytes,
        source=source,
        location=location,
        repo_id=repo_id,
        mmproj=group.mmproj,
        **facts,
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


def starter_entry(models_dir: Path) -> CatalogEntry | None:
    """The starter model as its installed packages hold it, before its first load
    assembles it into `models_dir` (None once it is there, or when it is not installed).

    The header is read from the first chunk, which holds all of it, so the entry says
    what the model is; its path is where the first load will put it.
    """
    target = Path(models_dir) / STARTER_FILE
    chunks = starter_chunks()
    if target.exists() or not chunks:
        return None
    try:
        size = sum(chunk.stat().st_size for chunk in chunks)
    except OSError:
        return None
    facts = _cached_facts(chunks[:1]).facts()
    if facts["error"] and facts["error"].startswith("truncated"):
        facts["error"] = None  # the rest of the file is in the other chunks
    return CatalogEntry(
        key=model_key(target),
        path=target,
        parts=(target,),
        size_bytes=size,
        source="starter",
        location="assembled on first load",
        **facts,
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
_cache: OrderedDict[tuple[tuple[str, int, int], ...], ModelFacts] = OrderedDict()
_cache_lock = threading.Lock()


def clear_info_cache() -> None:
    """Forget every header read so far (the next scan reads them again)."""
    with _cache_lock:
        _cache.clear()


def _cached_facts(parts: tuple[Path, ...]) -> ModelFacts:
    try:
        stamps = tuple(_stamp(p) for p in parts)
    except OSError as err:
        return ModelFacts(error=f"cannot read: {err.strerror or err}")
    with _cache_lock:
        found = _cache.get(stamps)
        if found is not None:
            _cache.move_to_end(stamps)
            return found
    facts = read_facts(parts)
    with _cache_lock:
        _cache[stamps] = facts
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return facts


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path

