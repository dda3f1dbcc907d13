"""The server's package: its layers, its old import path, and module sizes (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import engine.server
import engine.serve
import engine.settings

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "engine" / "serve"

# What tui/, tests/ and bench/ import from the old path.
OLD_NAMES = ("DEFAULT_HOST", "DEFAULT_PORT", "ModelRegistry", "ServedModel", "ServerError",
             "ServerHandle", "run_server", "create_app", "ApiError")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return eval(out.stdout)  # noqa: S307 - our own probe's list of names


def test_the_old_path_exports_the_same_objects() -> None:
    for name in engine.server.__all__:
        assert getattr(engine.server, name) is not None, name
    for name in OLD_NAMES:
        assert getattr(engine.server, name) is getattr(engine.serve, name), name


def test_the_server_table_is_the_serve_packages() -> None:
    assert engine.settings.ServerSettings is engine.serve.ServerSettings
    assert engine.settings.Settings().server == engine.serve.ServerSettings()


def test_reading_settings_loads_no_http() -> None:
    loaded = _loaded_after("import engine.settings, engine.serve.settings")
    assert not {"starlette", "uvicorn", "httpx"} & set(loaded)


def test_the_server_loads_no_ui() -> None:
    modules = ", ".join(f"engine.serve.{p.stem}" for p in SERVE.glob("*.py") if p.stem != "__init__")
    loaded = _loaded_after(f"import engine.server, {modules}")
    assert not {"textual", "tui", "rich"} & set(loaded)


def test_no_module_over_600_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in SERVE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 600} == {}
