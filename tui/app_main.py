"""`run_app`: build the app from the settings, run it, and report how it ended."""

from __future__ import annotations

from engine.settings import Settings

from .app import LlamatermApp


def run_app(settings: Settings, model: str | None = None) -> int:
    """Run the full-screen app until the person quits; returns the process exit code."""
    app = LlamatermApp(settings, model=model)
    result = app.run()
    if app.return_code:
        return app.return_code
    return result if isinstance(result, int) else 0
