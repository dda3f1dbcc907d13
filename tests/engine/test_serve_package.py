"""The server's package: its layers and module sizes (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import engine.serve
import engine.settings

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "engine" / "serve"



def _loaded_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return eval(out.stdout)  # noqa: S307 - our own probe's list of names



def test_the_server_table_is_the_serve_packages() -> None:
    assert engine.settings.ServerSettings is engine.serve.ServerSettings
    assert engine.settings.Settings().server == engine.serve.ServerSettings()


def test_reading_settings_loads_no_http() -> None:
    loaded = _loaded_after("import engine.settings, engine.serve.settings")
    assert not {"starlette", "uvicorn", "httpx"} & set(loaded)


def test_the_server_loads_no_ui() -> None:
    modules = ", ".join(f"engine.serve.{p.stem}" for p in SERVE.glob("*.py") if p.stem != "__init__")
    loaded = _loaded_after(f"import {modules}")
    assert not {"textual", "tui", "rich"} & set(loaded)


def test_no_module_over_600_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in SERVE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 600} == {}
