"""`llamaterm models`: the model browser without a screen.

    llamaterm models [list]                 every local model, with what its header says
    llamaterm models info PATH|KEY          one model, its load settings and whether they fit
    llamaterm models search TEXT            GGUF repositories on the Hugging Face Hub
    llamaterm models download REPO [FILE]   a file (or quantisation, e.g. Q4_K_M) from a repo;
                                            without FILE, the repo's GGUF files

Each takes --json. Results go to stdout, progress and problems to stderr; Ctrl+C stops a
download cleanly (the next run resumes it). Uses the same engine code as the Models
screen, and never imports textual. Building the parser imports nothing from the engine
(importing the engine loads llama.cpp, which `llamaterm --help` should not wait for).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from engine.load_config import LoadConfig
    from engine.models.catalog import CatalogEntry
    from engine.models.download import DownloadProgress
    from engine.models.hub import HubFile
    from engine.models.memory import FitReport
    from engine.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SORT_CHOICES = ("downloads", "recent", "likes", "trending")
"""engine.models.hub.SORT_ORDERS, repeated so that building the parser imports no engine code."""


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `models` and its actions to the `llamaterm` command's subparsers."""
    models = subparsers.add_parser(
        "models",
        help="list, inspect, search and download GGUF models (default: list)",
        description="Local GGUF models and the Hugging Face Hub, without the app.",
    )
    actions = models.add_subparsers(dest="models_command", metavar="ACTION")

    listing = actions.add_parser("list", help="every local model and what its header says")
    _json_option(listing)

    info = actions.add_parser("info", help="one model: metadata, load settings, memory fit")
    info.add_argument("model", metavar="PATH", help="a .gguf path or a catalog key")
    info.add_argument("--context-length", type=int, help="check this context length")
    info.add_argument("--gpu-layers", help='check this many GPU layers, or "max"')
    info.add_argument("--kv-cache-type", help="check this KV cache type (f16, q8_0...)")
    info.add_argument("--flash-attention", action="store_true", default=None)
    _json_option(info)

    search = actions.add_parser("search", help="search GGUF repositories on the Hugging Face Hub")
    search.add_argument("text", nargs="*", help="words to search for")
    search.add_argument("--sort", choices=SORT_CHOICES, default="downloads")
    search.add_argument("--limit", type=int, default=20)
    _json_option(search)

    download = actions.add_parser(
        "download", help="download a GGUF file (all parts of a split model) from a repository"
    )
    download.add_argument("repo", help="the repository, owner/name")
    download.add_argument(
        "file", nargs="?", help="a file in the repo or a quantisation (Q4_K_M); omit to list them"
    )
    download.add_argument("--revision", help="a branch, tag or commit (default: main)")
    _json_option(download)
    return models


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    """Run a `models` action; returns the exit status."""
    from engine.models import hub

    command = getattr(args, "models_command", None) or "list"
    out, err = sys.stdout, sys.stderr
    try:
        if command == "list":
            return _list(settings, _wants_json(args), out, err)
        if command == "info":
            return _info(args, settings, out, err)
        if command == "search":
            return _search(args, out)
        if command == "download":
            return _download(args, settings, out, err)
    except hub.HubError as error:
        print(f"llamaterm: {error}", file=err)
        return EXIT_ERROR
    print(f"llamaterm: unknown models action {command!r}", file=err)
    return EXIT_USAGE


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _print_json(value: Any, out: TextIO) -> None:
    json.dump(value, out, indent=2, ensure_ascii=False)
    out.write("\n")


# --- list ---------------------------------------------------------------------------------


def _catalog(settings: Settings) -> tuple[list[CatalogEntry], list[str]]:
    from engine.models.catalog import scan_catalog, sources_for

    # The starter too, while its packages hold it and its first load has not assembled
    # it: a fresh install has that model, and `llamaterm` loads it.
    scan = scan_catalog(sources_for(settings, starter=True))
    # The person's own models first, the starter after them.
    entries = sorted(scan.entries, key=lambda e: (e.source == "starter", e.key))
    return entries, scan.problems


def _list(settings: Settings, as_json: bool, out: TextIO, err: TextIO) -> int:
    entries, problems = _catalog(settings)
    if as_json:
        _print_json({"models": [e.to_json() for e in entries], "problems": problems}, out)
        return EXIT_OK
    for problem in problems:
        print(f"llamaterm: {problem}", file=err)
    if not entries:
        print("no local models (download one: llamaterm models search TEXT)", file=out)
        return EXIT_OK
    rows: list[tuple[str, ...]] = [("MODEL", "PARAMS", "QUANT", "SIZE", "CONTEXT", "ARCH", "WHERE")]
    rows += [_list_row(e) for e in entries]
    _table(rows, out)
    for entry in entries:
        if entry.error:
            print(f"  ! {entry.key}: {entry.error}", file=out)
    return EXIT_OK


def _where(entry: CatalogEntry) -> str:
    if entry.source == "starter":
        return f"starter, {entry.location}"
    return entry.source_label + (f" {entry.repo_id}" if entry.repo_id else "")


def _list_row(entry: CatalogEntry) -> tuple[str, ...]:
    where = _where(entry)
    key = (
        entry.key
        + (" !" if entry.error else "")
        + (f" +{len(entry.parts)} parts" if entry.is_split else "")
    )
    return (
        key,
        _params(entry.parameter_count, entry.size_label),
        entry.quantization or "?",
        _bytes(entry.size_bytes),
        str(entry.context_length or "?"),
        entry.architecture or "?",
        where,
    )


def _params(count: int | None, label: str | None = None) -> str:
    if label:
        return label
    if not count:
        return "?"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}".replace(".0", "")
    return str(count)


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        print("  ".join(cells).rstrip(), file=out)


# --- info ---------------------------------------------------------------------------------


def _find_entry(spec: str, settings: Settings) -> CatalogEntry | None:
    from engine.models.catalog import read_model_info

    path = Path(spec).expanduser()
    if path.exists() or path.suffix == ".gguf":
        return read_model_info(path)
    entries, _ = _catalog(settings)
    wanted = spec.lower()
    for matches in (
        [e for e in entries if e.key == wanted],
        [e for e in entries if e.key.startswith(wanted)],
        [e for e in entries if wanted in e.key],
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(e.key for e in matches)
            raise AmbiguousModel(f"{spec!r} matches several models: {names}")
    return None


class AmbiguousModel(LookupError):
    """A key that matches more than one local model."""


def _load_config(args: argparse.Namespace, settings: Settings, entry: CatalogEntry) -> LoadConfig:
    from engine.load_config import LoadConfig
    from engine.models.remembered import ModelSettingsStore

    store = ModelSettingsStore(settings.data_dir())
    config = store.load_config(settings, entry.key, entry.path.name)
    overrides: dict[str, Any] = {}
    if args.context_length is not None:
        overrides["context_length"] = args.context_length
    if args.gpu_layers is not None:
        overrides["gpu_layers"] = "max" if args.gpu_layers == "max" else int(args.gpu_layers)
    if args.kv_cache_type is not None:
        overrides["kv_cache_type"] = args.kv_cache_type
    if args.flash_attention:
        overrides["flash_attention"] = True
    if not overrides:
        return config
    return LoadConfig.model_validate({**config.model_dump(), **overrides})


def _info(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    try:
        entry = _find_entry(args.model, settings)
    except AmbiguousModel as error:
        print(f"llamaterm: {error}", file=err)
        return EXIT_ERROR
    if entry is None:
        print(f"llamaterm: no local model matches {args.model!r}", file=err)
        return EXIT_ERROR
    try:
        config = _load_config(args, settings, entry)
    except ValueError as error:
        print(f"llamaterm: {error}".splitlines()[0], file=err)
        return EXIT_USAGE
    from engine.models.memory import fit_check

    report = fit_check(entry, config) if entry.shape is not None or entry.ok else None
    if _wants_json(args):
        _print_json(
            {
                "model": entry.to_json(),
                "load": config.model_dump(mode="json"),
                "fit": _fit_json(report) if report else None,
            },
            out,
        )
    else:
        _print_info(entry, config, report, out)
    return EXIT_OK if entry.ok else EXIT_ERROR


def _print_info(
    entry: CatalogEntry, config: LoadConfig, report: FitReport | None, out: TextIO
) -> None:
    shape = entry.shape
    lines = [
        ("model", entry.display_name),
        ("key", entry.key),
        ("file", str(entry.path) + (f" (+{len(entry.parts) - 1} parts)" if entry.is_split else "")),
        ("where", _where(entry)),
        ("size", _bytes(entry.size_bytes)),
        ("architecture", entry.architecture or "?"),
        (
            "parameters",
            _params(entry.parameter_count) + (f" ({entry.size_label})" if entry.size_label else ""),
        ),
        ("quantisation", entry.quantization or "?"),
        ("context", f"{entry.context_length or '?'} tokens (trained)"),
        ("chat template", "yes" if entry.has_chat_template else "no (fallback by architecture)"),
        ("tool calls", entry.tool_format),
        ("thinking", entry.reasoning or "no"),
    ]
    if not entry.has_chat_template and not entry.error:
        from tui.model_state import BASE_MODEL_NOTE

        lines.append(("note", f"{BASE_MODEL_NOTE} (llamaterm complete)"))
    if shape is not None:
        kv_heads = max(shape.head_count_kv, default=0)
        lines.append(
            (
                "layers",
                (
                    f"{shape.block_count} · embedding {shape.embedding_length} · "
                    f"heads {shape.head_count}/{kv_heads} kv · head dim {shape.key_length}"
                ),
            )
        )
        if shape.sliding_window:
            lines.append(
                (
                    "sliding window",
                    f"{shape.sliding_window} tokens on {sum(shape.swa_layers)} layers",
                )
            )
    if entry.mmproj:
        lines.append(("projector", ", ".join(p.name for p in entry.mmproj)))
    if entry.error:
        lines.append(("error", entry.error))
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name.rjust(width)}  {value}", file=out)
    if report is None:
        return
    print(file=out)
    gpu = config.gpu_layers
    print(
        f"load: context {config.context_length}, gpu_layers {gpu}, kv {config.kv_cache_type}, "
        f"batch {config.batch_size}, flash attention {'on' if config.flash_attention else 'off'}",
        file=out,
    )
    from engine.models.memory import describe_estimate

    for line in describe_estimate(report.estimate):
        print(f"  {line}", file=out)
    print(f"  free: {_free(report)}", file=out)
    print(report.summary(), file=out)
    for note in report.notes:
        print(f"  note: {note}", file=out)


def _free(report: FitReport) -> str:
    memory = report.memory
    ram = _bytes(memory.ram_available) if memory.ram_available is not None else "unknown"
    text = f"{ram} RAM"
    if memory.gpu_free is not None:
        devices = len(memory.gpus or ())
        text += f", {_bytes(memory.gpu_free)} GPU ({devices} device{'' if devices == 1 else 's'})"
    return text


def _fit_json(report: FitReport) -> dict[str, Any]:
    estimate = report.estimate
    return {
        "fits": report.fits,
        "summary": report.summary(),
        "ram_needed": estimate.ram_bytes,
        "gpu_needed": estimate.gpu_bytes,
        "kv_cache": estimate.kv_bytes,
        "ram_available": report.memory.ram_available,
        "gpu_free": report.memory.gpu_free,
        "ram_shortfall": report.ram_shortfall,
        "gpu_shortfall": report.gpu_shortfall,
        "suggested_context_length": report.suggested_context_length,
        "suggested_gpu_layers": report.suggested_gpu_layers,
        "notes": list(report.notes),
    }


# --- search -------------------------------------------------------------------------------


def _search(args: argparse.Namespace, out: TextIO) -> int:
    from engine.models import hub

    found = hub.search_models(" ".join(args.text), sort=args.sort, limit=args.limit)
    if _wants_json(args):
        _print_json([m.to_json() for m in found], out)
        return EXIT_OK
    if not found:
        print("no GGUF repositories found", file=out)
        return EXIT_OK
    rows = [("REPOSITORY", "DOWNLOADS", "LIKES", "UPDATED", "PARAMS")]
    for model in found:
        rows.append(
            (
                model.repo_id + (" (gated)" if model.gated else ""),
                f"{model.downloads:,}" if model.downloads is not None else "?",
                str(model.likes if model.likes is not None else "?"),
                model.last_modified.date().isoformat() if model.last_modified else "?",
                _params(model.parameter_count),
            )
        )
    _table(rows, out)
    return EXIT_OK


# --- download -----------------------------------------------------------------------------


def _download(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    from engine.models import download as hub_download
    from engine.models import hub
    from engine.paths import models_dir

    if args.file is None or not args.file.lower().endswith(".gguf"):
        files = hub.list_gguf_files(args.repo, revision=args.revision)
        if args.file is None:
            return _print_files(args.repo, files, _wants_json(args), out)
        filename = hub.pick_file(files, args.file).name
    else:
        filename = args.file
    target = models_dir(settings.data_dir())
    printer = ProgressPrinter(err)
    cancel = threading.Event()
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["path"] = hub_download.download(
                args.repo, filename, target, progress=printer, cancel=cancel, revision=args.revision
            )
        except BaseException as error:  # noqa: BLE001 (the main thread reports it)
            result["error"] = error

    _run_interruptibly(work, cancel)
    printer.close()
    error = result.get("error")
    if isinstance(error, hub_download.DownloadCancelled):
        print(f"llamaterm: {error}", file=err)
        return EXIT_INTERRUPTED
    if error is not None:
        raise error
    downloaded: Path = result["path"]
    if _wants_json(args):
        _print_json({"repo": args.repo, "file": filename, "path": str(downloaded)}, out)
    else:
        print(downloaded, file=out)
    return EXIT_OK


def _run_interruptibly(work: Callable[[], None], cancel: threading.Event) -> None:
    """Run `work` on a thread; Ctrl+C sets `cancel` and waits for the work to stop.

    Waits on an Event rather than Thread.join: a join interrupted by Ctrl+C can leave
    the thread looking finished while it still runs.
    """
    done = threading.Event()

    def run() -> None:
        try:
            work()
        finally:
            done.set()

    threading.Thread(target=run, name="llamaterm-download", daemon=True).start()
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            cancel.set()


def _print_files(repo: str, files: list[HubFile], as_json: bool, out: TextIO) -> int:
    if as_json:
        _print_json({"repo": repo, "files": [f.to_json() for f in files]}, out)
        return EXIT_OK
    if not files:
        print(f"{repo} has no GGUF files", file=out)
        return EXIT_OK
    rows = [("FILE", "QUANT", "SIZE", "PARTS")]
    for file in files:
        size = _bytes(file.size) if file.size is not None else "?"
        kind = "projector" if file.is_mmproj else (file.quantization or "?")
        rows.append((file.name, kind, size, str(len(file.parts))))
    _table(rows, out)
    return EXIT_OK


class ProgressPrinter:
    """Download progress on a stream: one line redrawn in a terminal, a line per 10% in a pipe."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.last_decile = -1
        self.drawn = False

    def __call__(self, progress: DownloadProgress) -> None:
        line = format_progress(progress)
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
            self.drawn = True
        else:
            decile = int((progress.fraction or 0) * 10)
            if decile == self.last_decile and not progress.finished:
                return
            self.last_decile = decile
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def format_progress(progress: DownloadProgress) -> str:
    """`file (part 2/3)  41.2%  1.2 GB / 3.0 GB  25.3 MB/s  1m12s left`."""
    name = progress.filename.rpartition("/")[2]
    if progress.parts > 1:
        name += f" (part {progress.part}/{progress.parts})"
    done = _bytes(progress.bytes_done)
    if progress.total:
        amount = (
            f"{100 * progress.bytes_done / progress.total:5.1f}%  {done} / {_bytes(progress.total)}"
        )
    else:
        amount = done
    speed = f"{_bytes(progress.speed)}/s" if progress.speed else ""
    if progress.finished:
        left = "done"
    elif progress.eta is not None:
        left = f"{_duration(progress.eta)} left"
    else:
        left = ""
    return "  ".join(part for part in (name, amount, speed, left) if part)


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _bytes(size: float) -> str:
    from engine.models.memory import format_bytes

    return format_bytes(size)
