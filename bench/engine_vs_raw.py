"""Our engine against raw llama-cpp-python, on the starter model, in one process.

Each measurement alternates our engine and the raw baseline for several rounds,
with the same threads, batch size, sampler chain and seed, and prints the median
ratio (ours / raw; above 1 means we are faster):

- generation tokens/s against a bare `Llama.generate()` loop (goal >= 0.97) and
  against `Llama.create_completion(stream=True)` (goal >= 1.0), for 100 and
  1,500 generated tokens;
- prompt tokens/s with progress reporting against a bare `Llama.eval` (goal >= 0.97);
- decoding tokens/s at depth: 100 tokens after a prompt of about 1,500 and 3,000 tokens
  (`--depths`), against the bare loop (with the loaded `[load]` defaults: a sliding-window
  model keeps only its window, `swa_full = false`, on both sides);
- time to first token of a follow-up that extends the previous prompt by about
  20 tokens, against a cold one (goal: only the new tokens are evaluated).

A base model ends its text on its own long before 1,500 tokens, so the end-of-generation
tokens are banned with a logit bias on both sides alike: ours through its `logitBias`
setting, raw llama-cpp-python through the same native llama.cpp sampler put first in its
chain. `--allow-eos` measures the natural lengths instead.

    python bench/engine_vs_raw.py [--rounds 3] [--long 1500] [--depths 1500,3000] [--model PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp  # noqa: E402
import llama_cpp._internals as llama_internals  # noqa: E402

from engine.llama import LoadedModel
from engine.load_config import LoadConfig  # noqa: E402
from engine.models.starter import ensure_starter_model
from engine.prediction import ContentDelta, FirstToken  # noqa: E402

SAMPLING = dict(top_k=40, top_p=0.95, min_p=0.05, temperature=0.8, repeat_penalty=1.1)
SEED = 1234
STORY = (
    "The old lighthouse keeper climbed the spiral stairs every evening, counting the steps "
    "as his father had taught him. At the top he trimmed the wick, polished the great lens, "
    "and watched the ships slide past the rocks below. "
)


def token_rate(timestamps: list[float]) -> float:
    """Tokens per second between the first and the last token seen by the consumer."""
    if len(timestamps) < 2:
        return float("nan")
    return (len(timestamps) - 1) / (timestamps[-1] - timestamps[0])


def end_of_generation_tokens(llama: llama_cpp.Llama) -> dict[int, float]:
    vocab = llama._model.vocab
    return {
        t: float("-inf") for t in range(llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)
    }


class Ours:
    def __init__(self, path: Path, config: LoadConfig, ban_eog: bool) -> None:
        self.model = LoadedModel.load(path, config)
        assert self.model._llama is not None
        self.bias = {"logitBias": end_of_generation_tokens(self.model._llama)} if ban_eog else {}

    def generate(self, prompt: str, n: int) -> tuple[float, int]:
        self.model.reset_cache()
        stream = self.model.complete_sync(
            prompt, {"maxTokens": n, "seed": SEED, **_lm_studio(SAMPLING), **self.bias}
        )
        stamps: list[float] = []
        for event in stream:
            if isinstance(event, ContentDelta):
                stamps.append(time.perf_counter())
        assert stream.result is not None
        return token_rate(stamps), stream.result.stats.predicted_tokens_count

    def prompt_rate(self, prompt: str) -> float:
        self.model.reset_cache()
        progress: list[float] = []
        stream = self.model.complete_sync(prompt, {"maxTokens": 1, "seed": SEED})
        started = time.perf_counter()
        for event in stream:
            if isinstance(event, FirstToken):
                break
            progress.append(time.perf_counter())
        elapsed = progress[-1] - started
        list(stream)
        assert stream.result is not None
        return stream.result.stats.prompt_tokens_evaluated / elapsed

    def ttft(self, prompt: str, cold: bool) -> tuple[float, int]:
        if cold:
            self.model.reset_cache()
        stream = self.model.complete_sync(prompt, {"maxTokens": 1, "seed": SEED})
        list(stream)
        assert stream.result is not None
        stats = stream.result.stats
        return stats.time_to_first_token_sec or float("nan"), stats.prompt_tokens_evaluated


class Raw:
    def __init__(self, path: Path, config: LoadConfig, ban_eog: bool) -> None:
        self.llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=config.context_length,
            n_batch=config.batch_size,
            n_ubatch=config.batch_size,
            n_threads=config.n_threads,
            n_threads_batch=config.n_threads,
            swa_full=config.swa_full,
            verbose=False,
        )
        self.vocab = self.llama._model.vocab
        self.bias = end_of_generation_tokens(self.llama) if ban_eog else {}

    @contextlib.contextmanager
    def _banned(self) -> Iterator[None]:
        """`Llama._init_sampler` builds a fresh chain on every call: give it one that starts
        with the logit bias, just as ours does."""
        if not self.bias:
            yield
            return
        plain = llama_internals.LlamaSampler
        bias, n_vocab = self.bias, self.llama.n_vocab()

        class Biased(plain):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__()
                self.add_logit_bias(n_vocab, bias)

        llama_internals.LlamaSampler = Biased
        try:
            yield
        finally:
            llama_internals.LlamaSampler = plain

    def generate_loop(self, prompt: str, n: int) -> tuple[float, int]:
        with self._banned():
            return self._generate_loop(prompt, n)

    def create_completion(self, prompt: str, n: int) -> tuple[float, int]:
        with self._banned():
            return self._create_completion(prompt, n)

    def _generate_loop(self, prompt: str, n: int) -> tuple[float, int]:
        llama = self.llama
        llama.reset()
        llama.set_seed(SEED)
        tokens = llama.tokenize(prompt.encode(), add_bos=True, special=True)
        stamps: list[float] = []
        s = SAMPLING
        for token in llama.generate(
            tokens,
            top_k=s["top_k"],
            top_p=s["top_p"],
            min_p=s["min_p"],
            temp=s["temperature"],
            repeat_penalty=s["repeat_penalty"],
            reset=True,
        ):
            if llama_cpp.llama_vocab_is_eog(self.vocab, token):
                break
            llama.detokenize([token])
            stamps.append(time.perf_counter())
            if len(stamps) >= n:
                break
        return token_rate(stamps), len(stamps)

    def _create_completion(self, prompt: str, n: int) -> tuple[float, int]:
        self.llama.reset()
        s = SAMPLING
        stamps: list[float] = []
        for _chunk in self.llama.create_completion(
            prompt,
            max_tokens=n,
            stream=True,
            seed=SEED,
            top_k=s["top_k"],
            top_p=s["top_p"],
            min_p=s["min_p"],
            temperature=s["temperature"],
            repeat_penalty=s["repeat_penalty"],
        ):
            stamps.append(time.perf_counter())
        return token_rate(stamps), len(stamps)

    def prompt_rate(self, prompt: str) -> float:
        llama = self.llama
        llama.reset()
        started = time.perf_counter()
        tokens = llama.tokenize(prompt.encode(), add_bos=True, special=True)
        llama.eval(tokens)
        return len(tokens) / (time.perf_counter() - started)


def _lm_studio(sampling: dict[str, float]) -> dict[str, float]:
    return {
        "temperature": sampling["temperature"],
        "topKSampling": sampling["top_k"],
        "topPSampling": sampling["top_p"],
        "minPSampling": sampling["min_p"],
        "repeatPenalty": sampling["repeat_penalty"],
    }


def alternate(
    rounds: int, ours: Callable[[], float], raw: Callable[[], float]
) -> tuple[float, float, float]:
    """Median of ours, median of raw, median of the per-round ratios."""
    mine, theirs, ratios = [], [], []
    for _ in range(rounds):
        a = ours()
        b = raw()
        mine.append(a)
        theirs.append(b)
        ratios.append(a / b)
    return statistics.median(mine), statistics.median(theirs), statistics.median(ratios)


def multi_turn(model: LoadedModel, rounds: int) -> tuple[str, str, str, str, str]:
    """TTFT of turn 10 of a chat (KV cache reused) against a cold evaluation of it."""
    from engine.chat import Chat
    from engine.formatting.conversation import respond_sync

    def reply(chat: Chat) -> tuple[float, int, int]:
        stream = respond_sync(model, chat, {"maxTokens": 24, "seed": SEED, "temperature": 0})
        list(stream)
        assert stream.result is not None, stream.error
        chat.add_assistant_response(stream.result.content)
        s = stream.result.stats
        return s.time_to_first_token_sec or 0.0, s.prompt_tokens_evaluated, s.prompt_tokens_count

    warm, cold = [], []
    for _ in range(rounds):
        model.reset_cache()
        chat = Chat("You are a helpful assistant who answers in one sentence.")
        for turn in range(10):
            chat.add_user_message(f"Tell me something interesting about the number {turn + 1}.")
            ttft, evaluated, total = reply(chat)
        warm.append((ttft, evaluated, total))
        model.reset_cache()
        chat.messages.pop()  # the same turn 10 again, from a cold cache
        cold.append(reply(chat))
    w = statistics.median(t for t, _, _ in warm)
    c = statistics.median(t for t, _, _ in cold)
    print(f"  turn 10 TTFT: warm {w*1000:.0f} ms ({warm[-1][1]}/{warm[-1][2]} evaluated), "
          f"cold {c*1000:.0f} ms ({cold[-1][1]} evaluated)")
    return (
        "chat turn 10 TTFT (KV reuse) vs cold",
        f"{w * 1000:.0f} ms ({warm[-1][1]} of {warm[-1][2]} evaluated)",
        f"{c * 1000:.0f} ms ({cold[-1][1]} evaluated)",
        f"{c / w:.1f}x faster",
        "only the new turn",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--long", type=int, default=1500)
    parser.add_argument("--depths", default="1500,3000",
                        help="prompt lengths to measure decoding after ('' for none)")
    parser.add_argument("--only-depths", action="store_true", help="measure decoding at depth only")
    parser.add_argument("--parallel", type=int, default=LoadConfig().parallel,
                        help="our model's slots ([load] parallel)")
    parser.add_argument("--swa-full", action="store_true", help="[load] swa_full on both sides")
    parser.add_argument("--model", type=Path, help="GGUF file (default: the starter model)")
    parser.add_argument("--allow-eos", action="store_true",
                        help="let the model end its text (default: ban end-of-generation tokens)")
    args = parser.parse_args()

    path = args.model or ensure_starter_model(Path(tempfile.gettempdir()) / "llamaterm-bench")
    config = LoadConfig(context_length=4096, batch_size=256, parallel=args.parallel,
                        swa_full=args.swa_full)
    print(f"model: {path.name}, threads {config.n_threads}, batch {config.batch_size}, "
          f"our parallel {config.parallel}, swa_full {config.swa_full}, "
          f"llama-cpp-python {llama_cpp.__version__}, rounds {args.rounds}, "
          f"end of generation {'allowed' if args.allow_eos else 'banned'}")
    ours = Ours(path, config, ban_eog=not args.allow_eos)
    raw = Raw(path, config, ban_eog=not args.allow_eos)
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, unit: str, result: tuple[float, float, float], goal: str) -> None:
        a, b, ratio = result
        rows.append((name, f"{a:.1f} {unit}", f"{b:.1f} {unit}", f"{ratio:.3f}", goal))
        print(f"  {name}: ours {a:.1f}, raw {b:.1f}, ratio {ratio:.3f} (goal {goal})", flush=True)

    counts: dict[str, int] = {}

    def gen(
        kind: Callable[[str, int], tuple[float, int]], n: int, label: str, prompt: str = STORY
    ) -> Callable[[], float]:
        def measure() -> float:
            rate, produced = kind(prompt, n)
            counts[label] = produced
            return rate

        return measure

    # Warm-up: the first prediction pages the weights in, which the other side then
    # finds in memory.
    ours.generate(STORY, 8)
    raw.generate_loop(STORY, 8)
    story_tokens = len(ours.model.tokenize(STORY, add_special=False))
    for depth in [int(d) for d in args.depths.split(",") if d.strip()]:
        deep = STORY * max(1, depth // story_tokens)
        row(
            f"decoding at {len(ours.model.tokenize(deep))} tokens of depth, {args.short} tokens, "
            "vs Llama.generate loop",
            "tok/s",
            alternate(args.rounds, gen(ours.generate, args.short, "ours", deep),
                      gen(raw.generate_loop, args.short, "raw", deep)),
            ">= 0.97",
        )
    if args.only_depths:
        args.short = args.long = 0

    for n in (args.short, args.long):
        if not n:
            continue
        row(
            f"generation, {n} tokens, vs Llama.generate loop",
            "tok/s",
            alternate(args.rounds, gen(ours.generate, n, "ours"), gen(raw.generate_loop, n, "raw")),
            ">= 0.97",
        )
        print(f"    tokens generated: ours {counts['ours']}, raw {counts['raw']}")
        row(
            f"generation, {n} tokens, vs create_completion(stream=True)",
            "tok/s",
            alternate(
                args.rounds, gen(ours.generate, n, "ours"), gen(raw.create_completion, n, "raw")
            ),
            ">= 1.0",
        )
        print(f"    tokens generated: ours {counts['ours']}, raw {counts['raw']}")

    long_prompt = STORY * 20
    if args.only_depths:
        _print_rows(rows)
        ours.model.unload()
        return
    row(
        "prompt processing with progress vs Llama.eval",
        "tok/s",
        alternate(args.rounds, lambda: ours.prompt_rate(long_prompt), lambda: raw.prompt_rate(long_prompt)),
        ">= 0.97",
    )

    follow_up = long_prompt + "Then one night a storm came from the north and the lamp went dark."
    warm_ttfts, cold_ttfts, warm_eval, cold_eval = [], [], 0, 0
    for _ in range(args.rounds):
        ours.ttft(long_prompt, cold=True)
        ttft, warm_eval = ours.ttft(follow_up, cold=False)
        warm_ttfts.append(ttft)
        ttft, cold_eval = ours.ttft(follow_up, cold=True)
        cold_ttfts.append(ttft)
    warm, cold = statistics.median(warm_ttfts), statistics.median(cold_ttfts)
    new_tokens = len(ours.model.tokenize(follow_up)) - len(ours.model.tokenize(long_prompt))
    rows.append((
        f"TTFT follow-up (+{new_tokens} tokens) vs cold",
        f"{warm * 1000:.0f} ms ({warm_eval} evaluated)",
        f"{cold * 1000:.0f} ms ({cold_eval} evaluated)",
        f"{cold / warm:.1f}x faster",
        "only new tokens",
    ))
    print(f"  follow-up TTFT: warm {warm*1000:.0f} ms ({warm_eval} tokens evaluated), "
          f"cold {cold*1000:.0f} ms ({cold_eval} evaluated)")

    turn10 = multi_turn(ours.model, args.rounds)
    rows.append(turn10)

    _print_rows(rows)
    ours.model.unload()


def _print_rows(rows: list[tuple[str, str, str, str, str]]) -> None:
    print()
    print("| measurement | ours | raw llama-cpp-python | ratio | goal |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
