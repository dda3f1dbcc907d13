"""Headless commands: the engine's event stream printed to a terminal or a pipe."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import engine
from engine.prediction import PredictionResult, PredictionStats
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


def open_model(args: argparse.Namespace, settings: Any) -> engine.LLM | None:
    try:
        return engine.llm(args.model, config=load_overrides(args), settings=settings)
    except (engine.ModelLoadError, engine.ModelNotFoundError, ValueError) as err:
        print(f"llamaterm: {err}", file=sys.stderr)
        return None


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


def run_complete(args: argparse.Namespace, settings: Any) -> int:
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    try:
        config = engine.PredictionConfig.parse(prediction_config(args))
    except engine.PredictionConfigError as err:
        print(f"llamaterm: {err}", file=sys.stderr)
        return 2
    model = open_model(args, settings)
    if model is None:
        return 1
    stream = model.complete_stream(prompt, config)
    interrupted = False
    try:
        for fragment in stream:
            if not args.json:
                sys.stdout.write(fragment.content)
                sys.stdout.flush()
    except KeyboardInterrupt:
        # Ctrl+C stops the prediction; what was generated so far is still reported.
        interrupted = True
        stream.cancel()
        stream.wait_for_result()
    try:
        result = stream.result()
    except Exception as err:
        print(f"\nllamaterm: prediction failed: {err}", file=sys.stderr)
        return 1
    return report(result, args.json, interrupted)


def report(result: PredictionResult, as_json: bool, interrupted: bool = False) -> int:
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        if result.content and not result.content.endswith("\n"):
            print()
        print(format_stats(result.stats), file=sys.stderr)
    if interrupted:
        return 130
    return 1 if result.stats.stop_reason == "failed" else 0


def run_chat(args: argparse.Namespace, settings: Any) -> int:
    """A line-based chat: one line in, one streamed reply out. Reasoning goes to stderr,
    so that a pipe gets only the answers."""
    try:
        overrides = prediction_config(args)
        if args.no_thinking:
            overrides["enable_thinking"] = False
        config = engine.PredictionConfig.parse(overrides)
    except engine.PredictionConfigError as err:
        print(f"llamaterm: {err}", file=sys.stderr)
        return 2
    model = open_model(args, settings)
    if model is None:
        return 1
    system = args.system if args.system is not None else settings.chat.system_prompt
    chat = engine.Chat(system or None)
    if args.json:
        chat.add_user_message(args.message if args.message is not None else sys.stdin.read())
        try:
            result = model.respond(chat, config)
        except Exception as err:
            print(f"llamaterm: prediction failed: {err}", file=sys.stderr)
            return 1
        return report(result, as_json=True)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 130
        if not line:
            return 0
        text = line.rstrip("\n")
        if not text.strip():
            continue
        chat.add_user_message(text)
        status = _stream_reply(model, chat, config)
        if status:
            return status


def _stream_reply(model: engine.LLM, chat: engine.Chat, config: engine.PredictionConfig) -> int:
    stream = model.respond_stream(chat, config, on_message=chat.append)
    try:
        for fragment in stream:
            out = sys.stderr if fragment.kind == "reasoning" else sys.stdout
            out.write(fragment.content)
            out.flush()
    except KeyboardInterrupt:
        # Ctrl+C stops this reply; the chat keeps what was said and goes on.
        stream.cancel()
        stream.wait_for_result()
    try:
        result = stream.result()
    except Exception as err:
        print(f"\nllamaterm: prediction failed: {err}", file=sys.stderr)
        return 1
    print()
    print(format_stats(result.stats), file=sys.stderr)
    return 0
