"""The allowed roots: the directories file built-ins and path parameters are confined to."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from engine.errors import ToolError

RootsArg: TypeAlias = Sequence[Path | str]


def resolve_roots(roots: RootsArg) -> list[Path]:
    """`roots` as absolute paths with every symlink resolved, as `confine_path` wants them."""
    return [Path(os.path.realpath(Path(root).expanduser())) for root in roots]


def confine_path(raw: str, roots: Sequence[Path], base: Path | None = None) -> Path:
    """`raw` with every symlink and `..` resolved, if that lies inside one of `roots`
    (already resolved); otherwise ToolError. Relative paths start at `base`, else at the
    first root."""
    if not roots:
        raise ToolError(
            "file access is disabled: no allowed directories are configured "
            "([tools] allowed_roots in config.toml)"
        )
    start = base if base is not None else roots[0]
    try:
        resolved = Path(os.path.realpath(start / Path(raw).expanduser()))
    except (ValueError, OSError) as err:
        raise ToolError(f"invalid path {raw!r}: {err}") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise ToolError(f"{raw!r} is outside the allowed directories ({allowed})")
    return resolved
