"""The layers in pyproject.toml's [tool.importlinter] contracts hold (run by `lint-imports`).

The engine never imports the UI; the engine core imports no HTTP; the command line
never imports Textual. Run here so that the contracts are checked wherever the tests are.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command())"
)


def test_the_import_contracts_are_kept() -> None:
    # A subprocess in the repository root: import-linter finds the packages from the
    # current directory, and this test's own imports cannot hide a broken layer.
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--config", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: [1-9]\d* kept, 0 broken\.", result.stdout), result.stdout
