"""The `llamaterm` command line: argument parsing, headless complete and chat, models, serve.

Nothing here imports Textual: the full-screen app is imported only when it is started
(an import-linter contract in pyproject.toml keeps it so)."""
