"""Config files for the tests: one written in a folder, and config.example.toml (where it
is, its settings uncommented, what it omits)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# A commented-out setting: "# key = value", "# "quoted.key" = value" or "# [table]".
_COMMENTED_SETTING = re.compile(r'^# (?:(?:[A-Za-z_]\w*|"[^"]+") = |\[.+\]$)')


def uncomment_settings(text: str) -> str:
    return "\n".join(
        line[2:] if _COMMENTED_SETTING.match(line) else line for line in text.splitlines()
    )


def missing_fields(model: type[BaseModel], data: dict[str, Any], prefix: str = "") -> list[str]:
    missing: list[str] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        key = next((k for k in (name, field.alias) if k and k in data), None)
        if key is None:
            missing.append(dotted)
            continue
        missing += _missing_below(field.annotation, data[key], dotted)
    return missing


def _missing_below(annotation: Any, value: Any, dotted: str) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return missing_fields(annotation, value, f"{dotted}.")
    if get_origin(annotation) is dict:
        if not value:
            return [f"{dotted}.<an example entry>"]
        item_type = get_args(annotation)[1]
        return [m for key, item in value.items() for m in _missing_below(item_type, item, dotted)]
    return []
