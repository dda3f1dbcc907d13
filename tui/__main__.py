"""`python -m tui` and the `llamaterm` console script: the command line in `tui.cli.main`."""

from __future__ import annotations

import sys

from tui.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
