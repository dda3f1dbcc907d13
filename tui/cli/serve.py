"""`llamaterm serve`: a model behind an OpenAI-compatible HTTP server, in the foreground.

No Textual here: the command runs headless, printing one line per request to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

API_KEY_ENV = "LLAMATERM_API_KEY"


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` command to the CLI's subparsers and return its parser."""
    from engine.serve.settings import DEFAULT_HOST, DEFAULT_PORT

    serve = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible API (/v1/chat/completions, ...)",
        description=(
            "Load a model and serve it at http://HOST:PORT/v1 for any OpenAI client. "
            "Requests are logged to stderr; Ctrl+C stops the server."
        ),
    )
    serve.add_argument(
        "--model", "-m", help="model key, file name or path (default: the configured one)"
    )
    serve.add_argument(
        "--host",
        default=None,
        help=f"address to listen on (default: [server] host, else {DEFAULT_HOST}; "
        "0.0.0.0 listens on every interface)",
    )
    serve.add_argument(
        "--port",
        "-p",
        type=_port,
        default=None,
        help=f"port to listen on (default: [server] port, else {DEFAULT_PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' on every request (or set ${API_KEY_ENV})",
    )
    return serve  # type: ignore[no-any-return]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {port}")
    return port


def run_serve(args: argparse.Namespace, settings: Any) -> int:
    """Serve until interrupted; the exit status is 0 after Ctrl+C, 1 when it cannot start.

    The model is loaded here first, with Ctrl+C noted rather than raised (llama.cpp's
    load goes on in its own thread: a traceback then left it running); the server
    then finds it loaded, and handles Ctrl+C itself once it runs.
    """
    import engine
    from engine.serve.run import run_server
    from tui.cli.interrupts import INTERRUPTED, Interrupts

    interrupts = Interrupts.install()
    with interrupts.shielded("stopping once the model has loaded…"):
        try:
            model = engine.llm(args.model, settings=settings)
        except (engine.ModelLoadError, engine.ModelNotFoundError, ValueError) as err:
            print(f"llamaterm: {err}", file=sys.stderr)
            return 1
    if interrupts.requested:
        with interrupts.shielded("unloading the model…"):
            model.unload()
        return INTERRUPTED

    # From the environment too, so that the key need not appear in `ps` output.
    server = settings.server
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or server.api_key or None
    host = args.host if args.host is not None else server.host
    port = args.port if args.port is not None else server.port
    return run_server(settings, args.model, host=host, port=port, api_key=api_key)
