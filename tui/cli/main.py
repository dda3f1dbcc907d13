"""The `llamaterm` command: the full-screen app by default, headless subcommands besides.

Textual is imported only on the way to the app (`tui.app.run_app`), so the headless
commands start without it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from tui.cli.escapes import ESCAPES_HELP, escaped_string


class _TopParser(argparse.ArgumentParser):
    """The top-level parser: its help ends with the files the app reads.

    Worked out only when the help is shown: finding them reads the config, and a
    plain command should not wait for that before it parses.
    """

    def format_help(self) -> str:
        return super().format_help() + "\n" + files_help() + "\n"


def files_help() -> str:
    """The config file, the data directory and the tools file, as this run finds them."""
    from engine.paths import config_path
    from engine.settings import ConfigError
    from engine.tools import tools_path
    from tui.config import AppSettings, load_app_settings

    try:
        settings = load_app_settings()
        problem = ""
    except ConfigError as err:
        settings, problem = AppSettings(), f" (it does not load: {str(err).splitlines()[0]})"
    lines = [
        "files:",
        f"  config       {config_path()}{problem}",
        f"  data         {settings.data_dir()}",
        f"  tools        {tools_path(settings)}",
        "               ([tools] file in the config names another; else tools.toml beside",
        "               the config, else in the data directory; see tools.example.toml)",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _TopParser(
        prog="llamaterm",
        description="Run local GGUF models in your terminal. With no command, opens the app.",
    )
    parser.add_argument("--model", "-m", help="model key, file name or path to open the app on")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser
    )

    complete = commands.add_parser(
        "complete",
        help="complete a prompt (argument or stdin), streaming to stdout; stats go to stderr",
    )
    complete.add_argument("prompt", nargs="?", help="the prompt; read from stdin when absent")
    _prediction_options(complete)
    complete.add_argument("--json", action="store_true", help="print the result object as JSON")

    chat = commands.add_parser(
        "chat",
        help="chat line by line on stdin/stdout (usable in a pipe); reasoning goes to stderr",
    )
    chat.add_argument("message", nargs="?", help="with --json: the one message to answer")
    _prediction_options(chat)
    chat.add_argument("--system", "-s", help="system prompt")
    chat.add_argument(
        "--no-thinking", action="store_true", help="ask the model not to think (enable_thinking off)"
    )
    chat.add_argument(
        "--json",
        action="store_true",
        help="one-shot: answer MESSAGE (or all of stdin) and print the result with stats as JSON",
    )

    from tui.cli.models import add_models_parser
    from tui.cli.serve import add_serve_parser

    add_models_parser(commands)
    add_serve_parser(commands)
    return parser


def _prediction_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", help="model key, file name or path")
    parser.add_argument("--max-tokens", "-n", type=int, help="stop after N predicted tokens")
    parser.add_argument(
        "--stop",
        action="append",
        default=[],
        type=escaped_string,
        help=f"stop string (repeatable), never printed; {ESCAPES_HELP}, so --stop '\\n' is a newline",
    )
    parser.add_argument("--temperature", "-t", type=float, help="sampling temperature")
    parser.add_argument("--top-k", type=int, help="top-k sampling")
    parser.add_argument("--top-p", type=float, help="top-p sampling")
    parser.add_argument("--min-p", type=float, help="min-p sampling")
    parser.add_argument("--repeat-penalty", type=float, help="repeat penalty")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--context-length", type=int, help="context length to load the model with")
    parser.add_argument("--gpu-layers", help='layers to offload to the GPU, or "max"')


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A closed pipe (`llamaterm models list | head`) ends a command quietly, and Ctrl+C
    where no model is busy (reading stdin, starting up) exits 130 without a traceback;
    where one is, the commands handle it themselves (tui.cli.interrupts).
    """
    try:
        return _run(argv)
    except BrokenPipeError:
        return closed_pipe()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def closed_pipe() -> int:
    """The reader of stdout went away: say nothing more, and exit as `head`'s writers do."""
    # Python flushes stdout once more at exit: point it at /dev/null so that flush
    # does not fail (and print "Exception ignored ... BrokenPipeError").
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from engine.settings import ConfigError
    from tui.config import load_app_settings

    try:
        settings = load_app_settings()
    except ConfigError as err:
        print(f"llamaterm: bad config: {err}", file=sys.stderr)
        return 2
    if args.command == "complete":
        from tui.cli.headless import run_complete

        return run_complete(args, settings)
    if args.command == "chat":
        from tui.cli.headless import run_chat

        return run_chat(args, settings)
    if args.command == "models":
        from tui.cli.models import run_models

        return run_models(args, settings)
    if args.command == "serve":
        from tui.cli.serve import run_serve

        return run_serve(args, settings)
    # The one place the command line reaches the Textual app.
    from tui.app import run_app

    return run_app(settings, model=args.model)

