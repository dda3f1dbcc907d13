"""Concurrent clients: `llamaterm serve` against `python -m llama_cpp.server`, same model.

Each server runs in its own process (ours as `llamaterm serve` runs it: a `ServerHandle`
over a `LoadedModel` with `[load] parallel` slots; theirs from llama-cpp-python's
`server` extra, the peer a user would pick), with the same model, threads, context and
greedy sampling, end of generation banned so that each request makes exactly its
tokens. Rounds alternate the servers (ABBA over rounds), and each round runs 1, 2, 4
and 8 concurrent clients, each one streaming chat completion through the official
`openai` client in threads of this process. Printed per server and concurrency (medians
over rounds): aggregate tokens/s (all tokens / the phase's wall time), p50 and p95
latency and time to first token, the ratios ours / theirs and ours / our own single
client, and the tokens each request got (to show that every client got all of its own).

Then a phase with two conversations alternating turns (each turn a new user message on
its own history): time to first token per turn, for each server.

`llama_cpp.server` needs fastapi, sse-starlette, starlette-context and pydantic-settings
(`pip install fastapi sse-starlette starlette-context pydantic-settings`: the `server`
extra without recompiling llama-cpp-python).

    python bench/server_concurrency.py [--rounds 2] [--tokens 64] [--clients 1,2,4,8]
        [--threads N] [--parallel 4] [--turns 4] [--model PATH] [--llama-server PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = (
    "You are a storyteller. Tell me a long story about an old lighthouse keeper, the sea, "
    "the ships that pass the rocks at night, and the gulls that wake him every morning."
)
CONTEXT = 4096


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_ours(path: str, port: int, threads: int, parallel: int) -> None:
    """The child process of our server (what `llamaterm serve` runs)."""
    from engine.llama import LoadedModel
    from engine.load_config import LoadConfig
    from engine.serve.models import ModelRegistry, ServedModel
    from engine.serve.run import ServerHandle
    from engine.serve.settings import ServerSettings

    config = LoadConfig(context_length=CONTEXT, threads=threads, parallel=parallel)
    model = LoadedModel.load(path, config)
    settings = ServerSettings(queue_limit=0, sdk_port=0)
    handle = ServerHandle(ModelRegistry([ServedModel("bench", model)]), port=port,
                          settings=settings)

    async def main() -> None:
        async with handle:
            print("ready", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


@dataclass
class Request:
    ttft: float
    latency: float
    tokens: int


def one_request(url: str, messages: list[dict[str, str]], tokens: int,
                bias: dict[str, int]) -> tuple[Request, str]:
    import openai

    with openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=600) as client:
        started = time.perf_counter()
        first: float | None = None
        text: list[str] = []
        count = 0
        stream = client.chat.completions.create(
            model="bench", messages=messages, max_tokens=tokens, temperature=0, stream=True,
            logit_bias=bias, seed=1,  # type: ignore[arg-type]
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
                text.append(chunk.choices[0].delta.content)
                if first is None:
                    first = time.perf_counter() - started
        latency = time.perf_counter() - started
    return Request(first if first is not None else latency, latency, count), "".join(text)


def concurrency_phase(server: Server, clients: int, tokens: int,
                      bias: dict[str, int]) -> dict[str, float]:
    messages = [[{"role": "user", "content": f"{PROMPT} (listener {i})"}] for i in range(clients)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(lambda m: one_request(server.url, m, tokens, bias)[0], messages))
    wall = time.perf_counter() - started
    ttfts = sorted(r.ttft for r in done)
    latencies = sorted(r.latency for r in done)
    return {
        "aggregate": sum(r.tokens for r in done) / wall,
        "tokens": statistics.median(r.tokens for r in done),
        "ttft50": statistics.median(ttfts),
        "ttft95": percentile(ttfts, 0.95),
        "lat50": statistics.median(latencies),
        "lat95": percentile(latencies, 0.95),
    }


def interleaved_phase(server: Server, turns: int, tokens: int,
                      bias: dict[str, int]) -> list[float]:
    """TTFT of each turn of two conversations that take turns (turns after the first)."""
    chats: list[list[dict[str, str]]] = [
        [{"role": "system", "content": f"You are storyteller number {i}. " + PROMPT * 3}]
        for i in range(2)
    ]
    ttfts: list[float] = []
    for turn in range(turns):
        for chat in chats:
            chat.append({"role": "user", "content": f"Go on with part {turn + 1}, please."})
            request, text = one_request(server.url, chat, tokens, bias)
            chat.append({"role": "assistant", "content": text})
            if turn:
                ttfts.append(request.ttft)
    return ttfts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def eog_bias(path: str) -> dict[str, int]:
    import llama_cpp

    vocab_only = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    vocab = vocab_only._model.vocab
    return {str(t): -100 for t in range(vocab_only.n_vocab())
            if llama_cpp.llama_vocab_is_eog(vocab, t)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--llama-server", type=Path, help="a llama-server binary, to add")
    parser.add_argument("--serve-ours", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ours:
        path, port, threads, parallel = args.serve_ours
        serve_ours(path, int(port), int(threads), int(parallel))
        return
    from engine.load_config import physical_cores
    from engine.models.starter import ensure_starter_model

    threads = args.threads or physical_cores()
    model = str(args.model or ensure_starter_model(Path(tempfile.gettempdir()) / "llamaterm-bench"))
    clients = [int(c) for c in args.clients.split(",")]
    bias = eog_bias(model)
    here = str(Path(__file__).resolve())
    servers = [
        Server("llamaterm", [sys.executable, here, "--serve-ours", model, "0", str(threads),
                             str(args.parallel)], 0),
        Server("llama_cpp.server", [sys.executable, "-m", "llama_cpp.server", "--model", model,
                                    "--n_ctx", str(CONTEXT), "--n_threads", str(threads),
                                    "--n_threads_batch", str(threads), "--model_alias", "bench",
                                    "--host", "127.0.0.1",
                                    # It stops a running stream when another request comes
                                    # in, unless told not to: each client must get its tokens.
                                    "--interrupt_requests", "False"], 0),
    ]
    if args.llama_server:
        servers.append(Server("llama-server", [str(args.llama_server), "-m", model, "-c",
                                               str(CONTEXT * args.parallel), "-np",
                                               str(args.parallel), "-t", str(threads),
                                               "--host", "127.0.0.1", "-a", "bench"], 0))
    for server in servers:
        server.port = free_port()
        port_flag = "--port"
        if server.name == "llamaterm":
            server.command[4] = str(server.port)
        else:
            server.command += [port_flag, str(server.port)]
    print(f"model {Path(model).name}, {threads} threads, our parallel {args.parallel}, "
          f"{args.tokens} tokens per request, load average {os.getloadavg()[0]:.2f}")
    results: dict[str, dict[int, list[dict[str, float]]]] = {
        s.name: {c: [] for c in clients} for s in servers
    }
    interleaved: dict[str, list[float]] = {s.name: [] for s in servers}
    for n in range(args.rounds):
        order = servers if n % 2 == 0 else list(reversed(servers))
        for server in order:
            server.start()
            try:
                one_request(server.url, [{"role": "user", "content": "hi"}], 4, bias)  # warm-up
                for c in clients:
                    row = concurrency_phase(server, c, args.tokens, bias)
                    results[server.name][c].append(row)
                    print(f"  round {n + 1} {server.name:17} {c} clients: "
                          f"{row['aggregate']:6.1f} tok/s, TTFT p50 {row['ttft50']:.2f}s")
                interleaved[server.name] += interleaved_phase(server, args.turns, 16, bias)
            finally:
                server.stop()
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'server':17} {'clients':>7} {'tok/s':>7} {'lat p50':>8} {'lat p95':>8} "
          f"{'TTFT p50':>9} {'TTFT p95':>9} {'vs peer':>8} {'vs 1':>6} {'tokens':>6}")
    ours = servers[0].name
    peer = servers[1].name

    def med(name: str, c: int, key: str) -> float:
        return statistics.median(r[key] for r in results[name][c])

    for server in servers:
        for c in clients:
            agg = med(server.name, c, "aggregate")
            vs_peer = agg / med(peer, c, "aggregate")
            vs_one = agg / med(server.name, clients[0], "aggregate")
            print(f"{server.name:17} {c:7} {agg:7.1f} {med(server.name, c, 'lat50'):7.2f}s "
                  f"{med(server.name, c, 'lat95'):7.2f}s {med(server.name, c, 'ttft50'):8.2f}s "
                  f"{med(server.name, c, 'ttft95'):8.2f}s {vs_peer:7.2f}x {vs_one:5.2f}x "
                  f"{med(server.name, c, 'tokens'):6.0f}")
    print("\ntwo conversations alternating turns: TTFT per turn (median, after the first turn)")
    for server in servers:
        print(f"  {server.name:17} {statistics.median(interleaved[server.name]):.3f}s "
              f"({', '.join(f'{t:.2f}' for t in interleaved[server.name])})")
    ratio = statistics.median(interleaved[ours]) / statistics.median(interleaved[peer])
    print(f"  ours / peer: {ratio:.2f}x")


if __name__ == "__main__":
    main()
