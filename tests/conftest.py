"""Shared fixtures: tiny random-weight GGUF models (see ``tests/gguf_factory.py``);
and the Hypothesis profile CI runs under."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Make ``import gguf_factory`` work from every test directory, whatever the
# import mode (like ``pythonpath = ["tests"]`` in pytest's config).  Appended,
# not prepended, so tests/engine and tests/tui (no __init__.py) can never
# shadow the real ``engine``/``tui`` packages.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.append(_TESTS_DIR)

from gguf_factory import write_tiny_gguf  # noqa: E402

# CI runs the property tests derandomized: the same examples on every run, so that a
# latent bug a fresh seed happens to find fails a developer's run, never a merge at
# random. Local runs stay random, to keep finding such bugs. Loaded here, at conftest
# import, because a `settings(...)` object takes the fields it does not set from the
# profile loaded when it is made, and the tests make theirs (`PROPERTY`) at import.
# Example counts and deadlines stay the tests' own. `--hypothesis-profile` still wins.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default tiny model (ChatML template, seed 0), written once per session.

    Shared by all tests: do not modify or delete the file.
    """
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-model") / "tiny-test-model.gguf")


@pytest.fixture
def make_tiny_model(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing tiny models into this test's ``tmp_path``.

    Takes ``write_tiny_gguf``'s keyword arguments, plus an optional
    ``filename`` (default: a unique ``tiny-model-N.gguf``), and returns the
    file's path::

        path = make_tiny_model(chat_template=None, extra_tokens=["<|eot_id|>"])
    """
    counter = itertools.count()

    def make(*, filename: str | None = None, **kwargs: Any) -> Path:
        if filename is None:
            filename = f"tiny-model-{next(counter)}.gguf"
        return write_tiny_gguf(tmp_path / filename, **kwargs)

    return make


@pytest.fixture
def full_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, for writes that meet a full disk (needs root and mount);
    unmounted afterwards."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None or sys.platform != "linux":
        pytest.skip("mounting a small tmpfs needs root on Linux")
    directory = tmp_path / "small"
    directory.mkdir()
    made = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace')}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)
