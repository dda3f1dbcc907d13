"""Headless commands: the engine's event stream printed to a terminal or a pipe.

Ctrl+C and a closed pipe stop a prediction cleanly (tui.cli.interrupts): the model's
thread has stopped and the model is unloaded before the command returns.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import engine
from engine.prediction import PredictionResult, PredictionStats
from tui.cli.interrupts import INTERRUPTED, Interrupts
from tui.wording import plural


def prediction_config(args: argparse.Namespace) -> dict[str, Any]:
    """The prediction settings given on the command line, and only those."""
    config: dict[str, Any] = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "min_p": args.min_p,
        "repeat_penalty": args.repeat_penalty,
        "seed": args.seed,
        "stop_strings": args.stop or None,
    }
    return {k: v for k, v in config.items() if v is not None}


def load_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.context_length is not None:
        overrides["context_length"] = args.context_length
    if args.gpu_layers is not None:
        overrides["gpu_layers"] = "max" if args.gpu_layers == "max" else int(args.gpu_layers)
    return overrides


def open_model(
    args: argparse.Namespace, settings: Any, interrupts: Interrupts
) -> engine.LLM | None:
    """Load the model; Ctrl+C meanwhile stops the command once it is in (llama.cpp's
    load is not interrupted half-way)."""
    with interrupts.shielded("stopping once the model has loaded…"):
        try:
            return engine.llm(args.model, config=load_overrides(args), settings=settings)
        except (engine.ModelLoadError, engine.ModelNotFoundError, ValueError) as err:
            print(f"llamaterm: {err}", file=sys.stderr)
            return None


@contextmanager
def loaded(model: engine.LLM, interrupts: Interrupts) -> Iterator[engine.LLM]:
    """Unload `model` when the command ends, however it ends, so that the process never
    exits while the model's thread still holds llama.cpp."""
    try:
        yield model
    finally:
        with interrupts.shielded("unloading the model…"):
            model.unload()


def stream_to_end(
    stream: engine.PredictionStream,
    interrupts: Interrupts,
    write: Callable[[engine.PredictionFragment], None],
) -> PredictionResult:
    """Pass every fragment to `write` until the prediction ends; Ctrl+C cancels it, and
    the stream is still read to its end, so the result (text so far, stats) is there.
    A closed pipe cancels it too, and is raised once the model has stopped."""
    with interrupts.cancelling(stream.cancel):
        try:
            for fragment in stream:
                write(fragment)
        except BrokenPipeError:
            stream.cancel()
            for _ in stream:
                pass
            raise
    return stream.result()


def format_stats(stats: PredictionStats) -> str:
    parts = [
        plural(stats.predicted_tokens_count, "token"),
        f"{stats.tokens_per_second:.1f} tok/s" if stats.tokens_per_second else None,
        (
            f"first token {stats.time_to_first_token_sec:.2f}s"
            if stats.time_to_first_token_sec is not None
            else None
        ),
        f"prompt {stats.prompt_tokens_count} ({stats.prompt_tokens_evaluated} evaluated)",
        f"stop: {stats.stop_reason}",
    ]
    return " · ".join(p for p in parts if p)


def _config_and_model(
    args: argparse.Namespace, settings: Any, interrupts: Interrupts, overrides: dict[str, Any]
) -> tuple[engine.PredictionConfig, engine.LLM] | int:
    """The prediction settings and the model of a command, or the exit status that says why
    not (2: the settings are bad, 1: the model did not load; the reason is printed)."""
    try:
        config = engine.PredictionConfig.parse(overrides)
    except engine.PredictionConfigError as err:
        print(f"llamaterm: {err}", file=sys.stderr)
        return 2
    model = open_model(args, settings, interrupts)
    if model is None:
        return 1
    return config, model


def run_complete(
    args: argparse.Namespace, settings: Any, interrupts: Interrupts | None = None
) -> int:
    interrupts = interrupts if interrupts is not None else Interrupts.install()
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    prepared = _config_and_model(args, settings, interrupts, prediction_config(args))
    if isinstance(prepared, int):
        return prepared
    config, model = prepared
    with loaded(model, interrupts):
        if interrupts.requested:
            return INTERRUPTED

        def write(fragment: engine.PredictionFragment) -> None:
            if not args.json:
                sys.stdout.write(fragment.content)
                sys.stdout.flush()

        try:
            # Ctrl+C stops the prediction; what was generated so far is still reported.
            result = stream_to_end(model.complete_stream(prompt, config), interrupts, write)
        except BrokenPipeError:
            raise
        except Exception as err:
            print(f"\nllamaterm: prediction failed: {err}", file=sys.stderr)
            return 1
        return report(result, args.json, interrupts.requested)


def report(result: PredictionResult, as_json: bool, interrupted: bool = False) -> int:
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        if result.content and not result.content.endswith("\n"):
            print()
        print(format_stats(result.stats), file=sys.stderr)
    if interrupted:
        return INTERRUPTED
    return 1 if result.stats.stop_reason == "failed" else 0


def run_chat(
    args: argparse.Namespace, settings: Any, interrupts: Interrupts | None = None
) -> int:
    """A line-based chat: one line in, one streamed reply out. Reasoning goes to stderr,
    so that a pipe gets only the answers.

    Ctrl+C during a reply stops it (what was written stays in the chat and its stats
    are printed); at a terminal the chat goes on, from a pipe the command exits 130.
    Ctrl+C at the prompt exits 130."""
    interrupts = interrupts if interrupts is not None else Interrupts.install()
    overrides = prediction_config(args)
    if args.no_thinking:
        overrides["enable_thinking"] = False
    system = args.system if args.system is not None else settings.chat.system_prompt
    chat = engine.Chat(system or None)
    if args.json:
        message = args.message if args.message is not None else sys.stdin.read()
    prepared = _config_and_model(args, settings, interrupts, overrides)
    if isinstance(prepared, int):
        return prepared
    config, model = prepared
    with loaded(model, interrupts):
        if interrupts.requested:
            return INTERRUPTED
        if args.json:
            chat.add_user_message(message)
            try:
                stream = model.respond_stream(chat, config)
                result = stream_to_end(stream, interrupts, lambda fragment: None)
            except BrokenPipeError:
                raise
            except Exception as err:
                print(f"llamaterm: prediction failed: {err}", file=sys.stderr)
                return 1
            return report(result, as_json=True, interrupted=interrupts.requested)
        return _chat_lines(model, chat, config, interrupts)


def _chat_lines(
    model: engine.LLM, chat: engine.Chat, config: engine.PredictionConfig, interrupts: Interrupts
) -> int:
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            # At the prompt no prediction runs: Ctrl+C ends the chat.
            print(file=sys.stderr)
            return INTERRUPTED
        if not line:
            return 0
        text = line.rstrip("\n")
        if not text.strip():
            continue
        chat.add_user_message(text)
        pressed = interrupts.count
        status = _stream_reply(model, chat, config, interrupts)
        if status:
            return status
        if interrupts.count > pressed and not interactive:
            return INTERRUPTED


def _stream_reply(
    model: engine.LLM, chat: engine.Chat, config: engine.PredictionConfig, interrupts: Interrupts
) -> int:
    def write(fragment: engine.PredictionFragment) -> None:
        out = sys.stderr if fragment.kind == "reasoning" else sys.stdout
        out.write(fragment.content)
        out.flush()

    stream = model.respond_stream(chat, config, on_message=chat.append)
    try:
        # Ctrl+C stops this reply; the chat keeps what was said.
        result = stream_to_end(stream, interrupts, write)
    except BrokenPipeError:
        raise
    except Exception as err:
        print(f"\nllamaterm: prediction failed: {err}", file=sys.stderr)
        return 1
    print()
    print(format_stats(result.stats), file=sys.stderr)
    return 0
