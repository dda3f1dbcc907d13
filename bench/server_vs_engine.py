"""Streaming through the server's protocols against the engine itself, in one process.

The starter model is loaded once. Rounds alternate (ABBA, so that drift of a busy
machine falls on both sides): the same chat, seed and sampling through
`respond_events` directly, and through the server by each path a real client takes:
`chat` (the official `openai` client streaming chat completions), `responses` (the
same client streaming `responses.create`) and `lmstudio` (the real `lmstudio` SDK's
`respond_stream` over its websocket). The server runs on its own event loop thread in this
process, as `llamaterm serve` runs it; the client runs in a child process, as
real clients do, so that it does not compete with the engine for this process's
GIL. The KV cache is reset before every run, so both evaluate the same prompt and
sample the same tokens.

Printed per round and as medians:
- engine tokens/s: the engine's own figure (PredictionStats.tokens_per_second);
- engine stream tokens/s: as a consumer of the engine's events sees them;
- server stream tokens/s: as the client sees the chunks (or fragments) arrive;
- ratio = server stream / engine tokens/s (goal >= 0.95 for chat, >= 0.97 for the
  Responses and LM Studio paths).

On a busy machine runs drift apart; the last line compares each served prediction's
client-side rate with the engine's own figure for that same prediction, which no
drift between runs can touch.

Stream rates are (tokens - 1) / (last token time - first token time), as in
bench/engine_vs_raw.py.

    python bench/server_vs_engine.py [--rounds 5] [--tokens 200] [--threads N] [--model PATH]
        [--paths chat,responses,lmstudio]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.formatting.conversation import respond_events
from engine.llama import LoadedModel
from engine.load_config import LoadConfig  # noqa: E402
from engine.logbus import LOG_BUS  # noqa: E402
from engine.models.starter import ensure_starter_model
from engine.prediction import ContentDelta, LogRecord, ReasoningDelta  # noqa: E402
from engine.serve.models import ModelRegistry, ServedModel
from engine.serve.run import ServerHandle

MODEL_ID = "bench"
SEED = 1234
SAMPLING: dict[str, Any] = {"temperature": 0.8, "top_p": 0.95}
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are a storyteller."},
    {"role": "user", "content": "Tell me a long story about an old lighthouse keeper and the sea."},
]


def token_rate(stamps: list[float]) -> float:
    if len(stamps) < 2:
        return float("nan")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


@dataclass(frozen=True, slots=True)
class Run:
    stream_rate: float
    """Tokens per second as the consumer saw them arrive."""
    engine_rate: float
    """The engine's own tokens per second for this prediction."""
    tokens: int


async def engine_run(model: LoadedModel, tokens: int) -> Run:
    await asyncio.to_thread(model.reset_cache)
    config = {"max_tokens": tokens, "seed": SEED, **SAMPLING}
    stream = respond_events(model, {"messages": MESSAGES}, config)
    stamps: list[float] = []
    async for event in stream:
        if isinstance(event, ContentDelta | ReasoningDelta):
            stamps.append(time.perf_counter())
    result = stream.result
    assert result is not None, stream.error
    stats = result.stats
    return Run(token_rate(stamps), stats.tokens_per_second or float("nan"), stats.predicted_tokens_count)


class ServerThread:
    """The server on its own event loop thread, as the CLI runs it."""

    def __init__(self, handle: ServerHandle) -> None:
        self.handle = handle
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self.handle.start()
        self._ready.set()
        await self._stop.wait()
        await self.handle.stop()

    def __enter__(self) -> ServerHandle:
        self._thread.start()
        self._ready.wait(60)
        return self.handle

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


class ServerRecords:
    """The engine's stats of each served request, from the log bus."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    def __call__(self, record: LogRecord) -> None:
        if record.kind == "server" and "tokens_per_second" in record.data:
            self.records.append(record)

    def last(self) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while not self.records and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.records.pop().data


PATHS = ("chat", "responses", "lmstudio")
GOALS = {"chat": 0.95, "responses": 0.97, "lmstudio": 0.97}


def server_run(url: str, model: LoadedModel, records: ServerRecords, tokens: int, path: str) -> Run:
    model.reset_cache()
    records.records.clear()
    command = [sys.executable, __file__, "--client", url, "--tokens", str(tokens), "--paths", path]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {path} client failed:\n{done.stderr[-3000:]}")
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    if "engine_rate" in reply:
        # The LM Studio path logs no HTTP request: the SDK's result carries the engine's stats.
        return Run(reply["rate"], reply["engine_rate"] or float("nan"), reply["tokens"])
    served = records.last()
    return Run(reply["rate"], served["tokens_per_second"] or float("nan"), served["completion_tokens"])


def client_main(url: str, tokens: int, path: str) -> None:
    """The child process: stream one reply by `path` and print its rate as JSON."""
    if path == "lmstudio":
        print(json.dumps(lmstudio_client(url, tokens)))
        return
    from openai import OpenAI

    stamps: list[float] = []
    with OpenAI(base_url=url, api_key="bench", max_retries=0) as client:
        if path == "responses":
            events = client.responses.create(
                model=MODEL_ID, instructions=MESSAGES[0]["content"], input=MESSAGES[1]["content"],
                max_output_tokens=tokens, stream=True, temperature=SAMPLING["temperature"],
                top_p=SAMPLING["top_p"], extra_body={"seed": SEED},
            )
            for event in events:
                if event.type in ("response.output_text.delta", "response.reasoning_text.delta"):
                    stamps.append(time.perf_counter())
        else:
            stream = client.chat.completions.create(
                model=MODEL_ID, messages=MESSAGES, max_tokens=tokens, seed=SEED,
                stream=True, stream_options={"include_usage": True}, **SAMPLING,
            )
            for chunk in stream:
                if chunk.choices:
                    delta = chunk.choices[0].delta
                    if delta.content or getattr(delta, "reasoning_content", None):
                        stamps.append(time.perf_counter())
    print(json.dumps({"rate": token_rate(stamps), "chunks": len(stamps)}))


def lmstudio_client(url: str, tokens: int) -> dict[str, Any]:
    """One reply through the real LM Studio SDK, streamed over its websocket."""
    import lmstudio as lms

    host = url.split("//", 1)[1].split("/", 1)[0]
    chat = lms.Chat(MESSAGES[0]["content"])
    chat.add_user_message(MESSAGES[1]["content"])
    # The SDK has no seed among its prediction settings: its tokens are other ones, drawn
    # from the same distribution, to the same length (the rate is what is compared).
    config = {"maxTokens": tokens, "temperature": SAMPLING["temperature"],
              "topPSampling": SAMPLING["top_p"]}
    stamps: list[float] = []
    with lms.Client(host) as client:
        stream = client.llm.model(MODEL_ID).respond_stream(chat, config=config)
        for fragment in stream:
            if fragment.content:
                stamps.append(time.perf_counter())
        stats = stream.result().stats
    return {"rate": token_rate(stamps), "chunks": len(stamps),
            "engine_rate": stats.tokens_per_second, "tokens": stats.predicted_tokens_count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=200, help="tokens to generate per run")
    parser.add_argument("--model", type=Path, help="GGUF file (default: the starter model)")
    parser.add_argument("--threads", type=int, default=0,
                        help="llama.cpp threads (default: physical cores; 1 is steadier on busy machines)")
    parser.add_argument("--paths", default=",".join(PATHS),
                        help=f"comma-separated server paths to measure (of {', '.join(PATHS)})")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths: {', '.join(unknown)}")
    if args.client:
        client_main(args.client, args.tokens, paths[0])
        return

    path = args.model or ensure_starter_model(Path(tempfile.gettempdir()) / "llamaterm-bench")
    config = LoadConfig.model_validate({"context_length": 2048, "threads": args.threads})
    model = LoadedModel.load(path, config)
    print(f"model: {path.name}, threads {config.n_threads}, {args.tokens} tokens, "
          f"{args.rounds} rounds, paths {', '.join(paths)}", flush=True)
    records = ServerRecords()
    unsubscribe = LOG_BUS.subscribe(records)
    rows: dict[str, list[tuple[Run, Run]]] = {p: [] for p in paths}
    try:
        handle = ServerHandle(ModelRegistry([ServedModel(MODEL_ID, model)]), port=0)
        with ServerThread(handle) as server:
            for served_path in paths:  # warm-up: caches, first request, the SDK's import
                server_run(server.url, model, records, 8, served_path)
            asyncio.run(engine_run(model, 8))
            for n in range(args.rounds):
                for served_path in paths:
                    if n % 2 == 0:
                        engine = asyncio.run(engine_run(model, args.tokens))
                        served = server_run(server.url, model, records, args.tokens, served_path)
                    else:
                        served = server_run(server.url, model, records, args.tokens, served_path)
                        engine = asyncio.run(engine_run(model, args.tokens))
                    rows[served_path].append((engine, served))
                    print(f"  round {n + 1} {served_path}: engine {engine.engine_rate:.1f} tok/s, "
                          f"server stream {served.stream_rate:.1f} tok/s, "
                          f"ratio {served.stream_rate / engine.engine_rate:.3f}", flush=True)
    finally:
        unsubscribe()
        model.unload()
    for served_path in paths:
        print_table(served_path, rows[served_path])


def print_table(path: str, rows: list[tuple[Run, Run]]) -> None:
    print()
    print(f"{path}:")
    print("| round | tokens | engine tok/s | engine stream tok/s | server (engine) tok/s "
          "| server stream tok/s | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, (engine, served) in enumerate(rows, 1):
        tokens = f"{engine.tokens}" if engine.tokens == served.tokens else f"{engine.tokens}/{served.tokens}"
        print(f"| {n} | {tokens} | {engine.engine_rate:.1f} | {engine.stream_rate:.1f} "
              f"| {served.engine_rate:.1f} | {served.stream_rate:.1f} "
              f"| {served.stream_rate / engine.engine_rate:.3f} |")
    ratio = statistics.median(s.stream_rate / e.engine_rate for e, s in rows)
    same_view = statistics.median(s.stream_rate / e.stream_rate for e, s in rows)
    # The same served prediction seen from both ends: free of the machine's drift between runs.
    overhead = statistics.median(s.stream_rate / s.engine_rate for _, s in rows)
    print(f"| median | | {statistics.median(e.engine_rate for e, _ in rows):.1f} "
          f"| {statistics.median(e.stream_rate for e, _ in rows):.1f} "
          f"| {statistics.median(s.engine_rate for _, s in rows):.1f} "
          f"| {statistics.median(s.stream_rate for _, s in rows):.1f} | {ratio:.3f} |")
    print()
    goal = GOALS[path]
    verdict = "met" if ratio >= goal else "NOT met"
    print(f"{path} stream / engine tokens/s: {ratio:.3f} (goal >= {goal}: {verdict}); "
          f"{path} stream / engine stream: {same_view:.3f}")
    print(f"within each served prediction, client-side / engine-side tokens/s: {overhead:.3f}")


if __name__ == "__main__":
    main()
