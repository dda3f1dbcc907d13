"""Downloads from the Hugging Face Hub, resumable and stoppable.

Through huggingface_hub: its file metadata call (auth, Hub redirects, error mapping),
its shared HTTP session, and its local-directory layout
(`<dir>/.cache/huggingface/download/`) so files downloaded here are recognised by
`hf download --local-dir` and the other way round.

The transfer loop itself is ours, because huggingface_hub 2.x cannot do what a
terminal app needs: it deletes a partial file when a download fails or is stopped
(so nothing resumes), and it reads 10 MB per chunk (so a stop can take seconds on a
slow link). Here a partial download is kept as `<hash>.<etag>.incomplete` and
resumed with an HTTP Range request; a stop takes effect within about a second. A
finished file is checked against the Hub's SHA-256 (the ETag of an LFS file) before
it takes its name, so a damaged download never reaches the catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias
from urllib.parse import urlparse

import httpx2
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils import WeakFileLock, build_hf_headers, get_session, hf_raise_for_status

from engine.errors import DownloadCancelled, HubError, HubUnavailable, NotFound
from engine.models.hub import _check_repo_id, _ready, _reason, _translated, split_parts
from engine.models.memory import format_bytes

CONNECT_TIMEOUT = 10.0
READ_POLL = 1.0
"""Longest a download waits on the socket before looking at its cancel flag again."""
STALL_LIMIT = 60.0
MAX_RETRIES = 5
PROGRESS_INTERVAL = 0.1
SPEED_WINDOW = 5.0
LOCK_TIMEOUT = 2.0
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
HASH_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """Where a download stands; sent to the progress callback about ten times a second."""

    filename: str
    """The part being fetched."""
    part: int
    """1-based index of that part."""
    parts: int
    bytes_done: int
    """Bytes on disk for the whole model (all parts), resumed bytes included."""
    total: int | None
    speed: float
    """Bytes per second over the last few seconds (0 until measured)."""
    eta: float | None
    """Seconds left at that speed; None when unknown."""
    resumed_bytes: int = 0
    """Bytes that were already on disk when this attempt started."""
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        return self.bytes_done / self.total if self.total else None


ProgressCallback: TypeAlias = Callable[[DownloadProgress], None]


# --- download -------------------------------------------------------------------------


def local_dir_for(models_dir: Path, repo: str) -> Path:
    """Where a repository's files go: `<models_dir>/<owner>/<name>/`, as LM Studio does."""
    _check_repo_id(repo)
    return Path(models_dir) / repo


def partial_bytes(models_dir: Path, repo: str, filename: str) -> int:
    """Bytes of an interrupted download of `filename` (all its parts) waiting to resume."""
    from huggingface_hub._local_folder import get_local_download_paths

    local_dir = local_dir_for(models_dir, repo)
    if not local_dir.is_dir():
        return 0
    total = 0
    for part in split_parts(filename):
        probe = get_local_download_paths(local_dir, part).incomplete_path("x")
        prefix = probe.name.split(".")[0]
        total += sum(p.stat().st_size for p in probe.parent.glob(f"{prefix}.*.incomplete"))
    return total


@dataclass(frozen=True, slots=True)
class _Plan:
    """One file to fetch, as the Hub described it."""

    filename: str
    url: str
    headers: dict[str, str]
    commit: str
    etag: str
    size: int | None
    file_path: Path
    lock_path: Path
    incomplete: Path


def download(
    repo: str,
    filename: str,
    models_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """Download one GGUF file, or every part of a split model, into
    `<models_dir>/<owner>/<name>/`, and return the path to load (the first part).

    Files already there (same ETag) are not fetched again; an interrupted download
    resumes where it stopped. Setting `cancel` stops within about a second with
    DownloadCancelled, keeping what arrived. `progress` is called from this thread.
    """
    local_dir = local_dir_for(models_dir, repo)
    endpoint = _ready(endpoint)
    cancel = cancel or threading.Event()
    with _translated(endpoint, repo, filename):
        plans = []
        for part in split_parts(filename):
            _stop_if(cancel)
            plans.append(_plan(repo, part, local_dir, revision, endpoint, token))
        meter = _Meter(progress, plans)
        _check_disk_space(local_dir, plans)
        for index, plan in enumerate(plans, start=1):
            _stop_if(cancel)
            _fetch(local_dir, plan, index, meter, cancel)
    meter.finish()
    return plans[0].file_path


def _plan(
    repo: str, filename: str, local_dir: Path, revision: str | None, endpoint: str, token: Any
) -> _Plan:
    from huggingface_hub._local_folder import get_local_download_paths

    try:
        paths = get_local_download_paths(local_dir, filename)
    except ValueError as err:
        raise NotFound(f"{filename!r}: {err}") from None
    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    headers = build_hf_headers(token=token)
    meta = get_hf_file_metadata(url, token=token, endpoint=endpoint, timeout=CONNECT_TIMEOUT)
    if not meta.commit_hash or not meta.etag:
        raise HubError(f"{endpoint} does not answer like the Hugging Face Hub (no commit or ETag)")
    location = meta.location
    if location == url:
        # Pin the commit, so a resume next week fetches the same bytes or notices they changed.
        location = hf_hub_url(repo, filename, revision=meta.commit_hash, endpoint=endpoint)
    if _origin(location) != _origin(endpoint):
        headers.pop("authorization", None)  # a signed CDN URL must not receive the token
    headers["Accept-Encoding"] = "identity"
    return _Plan(
        filename=filename,
        url=location,
        headers=headers,
        commit=meta.commit_hash,
        etag=meta.etag,
        size=meta.size,
        file_path=paths.file_path,
        lock_path=paths.lock_path,
        incomplete=paths.incomplete_path(meta.etag),
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = urlparse(url)
    return parsed.scheme, (parsed.hostname or "").lower(), parsed.port


def _stop_if(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise DownloadCancelled("download cancelled; run it again to resume")


def _have(local_dir: Path, plan: _Plan) -> bool:
    """Is this exact file (same ETag) already downloaded?"""
    from huggingface_hub._local_folder import read_download_metadata

    if not plan.file_path.is_file():
        return False
    metadata = read_download_metadata(local_dir, plan.filename)
    if metadata is not None:
        return metadata.etag == plan.etag
    return plan.size is not None and plan.file_path.stat().st_size == plan.size


def _check_disk_space(local_dir: Path, plans: list[_Plan]) -> None:
    needed = 0
    for plan in plans:
        if plan.size is None or plan.file_path.is_file():
            continue
        present = plan.incomplete.stat().st_size if plan.incomplete.exists() else 0
        needed += max(0, plan.size - present)
    free = shutil.disk_usage(local_dir).free
    if needed > free:
        raise HubError(
            f"not enough disk space in {local_dir}: "
            f"{format_bytes(needed)} needed, {format_bytes(free)} free"
        )


def _fetch(
    local_dir: Path, plan: _Plan, index: int, meter: _Meter, cancel: threading.Event
) -> None:
    from filelock import Timeout
    from huggingface_hub._local_folder import write_download_metadata

    if _have(local_dir, plan):
        meter.skip(plan)
        return
    try:
        with WeakFileLock(plan.lock_path, timeout=LOCK_TIMEOUT):
            _transfer(plan, index, meter, cancel)
            os.replace(plan.incomplete, plan.file_path)
    except Timeout:
        raise HubError(f"{plan.filename} is being downloaded by another process") from None
    # After the lock is released: huggingface_hub takes the same lock to write this.
    write_download_metadata(local_dir, plan.filename, plan.commit, plan.etag)
    _remove_stale_partials(plan)


class _Checksum:
    """SHA-256 of a file as it is written. The Hub's ETag of an LFS file (every GGUF)
    is the SHA-256 of its content, so a download that went wrong anywhere (a proxy, a
    flipped bit, a partial file changed on disk before a resume) is caught. Other ETags
    (a small file's git blob id) are not checksums: nothing is checked then."""

    def __init__(self, etag: str) -> None:
        self.expected = etag.lower() if _SHA256.fullmatch(etag) else None
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        if self.expected is not None:
            self._hash.update(data)

    def reset(self) -> None:
        self._hash = hashlib.sha256()

    def absorb(self, path: Path, length: int, cancel: threading.Event) -> None:
        """Hash the first `length` bytes already on disk (a download being resumed)."""
        if self.expected is None or length == 0:
            return
        with open(path, "rb") as existing:
            while length > 0:
                _stop_if(cancel)
                chunk = existing.read(min(HASH_CHUNK, length))
                if not chunk:
                    break
                self._hash.update(chunk)
                length -= len(chunk)

    def matches(self) -> bool:
        return self.expected is None or self._hash.hexdigest() == self.expected


def _transfer(plan: _Plan, index: int, meter: _Meter, cancel: threading.Event) -> None:
    """Bring plan.incomplete up to the full file, resuming what is there, and check it
    against the Hub's checksum."""
    offset = plan.incomplete.stat().st_size if plan.incomplete.exists() else 0
    if plan.size is not None and offset > plan.size:
        plan.incomplete.unlink()
        offset = 0
    checksum = _Checksum(plan.etag)
    checksum.absorb(plan.incomplete, offset, cancel)
    meter.start(plan, index, offset)
    attempts = 0
    stalled_since: float | None = None
    with open(plan.incomplete, "ab") as out:
        while plan.size is None or offset < plan.size:
            _stop_if(cancel)
            try:
                offset, complete = _stream(plan, out, offset, meter, checksum, cancel)
                attempts, stalled_since = 0, None
                if complete:
                    break
            except httpx2.ReadTimeout:
                # Nothing arrived for READ_POLL seconds: look at the cancel flag, reconnect.
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > STALL_LIMIT:
                    raise HubUnavailable(
                        f"download of {plan.filename} stalled; run it again to resume"
                    ) from None
            except httpx2.TransportError as err:
                attempts += 1
                if attempts > MAX_RETRIES:
                    raise HubUnavailable(
                        f"download of {plan.filename} interrupted ({_reason(err)}); "
                        "run it again to resume"
                    ) from None
                cancel.wait(min(0.5 * 2.0 ** (attempts - 1), 8.0))
            offset = out.tell()
        out.flush()
        os.fsync(out.fileno())
    if plan.size is not None and offset != plan.size:
        plan.incomplete.unlink()
        raise HubError(f"{plan.filename}: got {offset} bytes, expected {plan.size}; try again")
    if not checksum.matches():
        plan.incomplete.unlink()
        raise HubError(
            f"{plan.filename}: the downloaded bytes do not match the Hub's SHA-256 checksum; "
            "the damaged file was removed, run the download again"
        )


def _stream(
    plan: _Plan,
    out: BinaryIO,
    offset: int,
    meter: _Meter,
    checksum: _Checksum,
    cancel: threading.Event,
) -> tuple[int, bool]:
    """One GET from `offset`; returns the new offset and whether the server sent it all."""
    headers = dict(plan.headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = httpx2.Timeout(CONNECT_TIMEOUT, read=READ_POLL)
    with get_session().stream("GET", plan.url, headers=headers, timeout=timeout) as response:
        if response.status_code == 416 and plan.size is not None and offset == plan.size:
            return offset, True
        if response.status_code >= 400:
            response.read()
        hf_raise_for_status(response)
        if offset and not _resumes_at(response, offset):
            # The server ignored the range (or answered another one): start over.
            out.seek(0)
            out.truncate()
            checksum.reset()
            meter.restart(offset)
            offset = 0
        for chunk in response.iter_bytes():
            if cancel.is_set():
                out.flush()
                raise DownloadCancelled(
                    f"download cancelled; {format_bytes(meter.done)} kept, run it again to resume"
                )
            out.write(chunk)
            checksum.update(chunk)
            offset += len(chunk)
            meter.add(len(chunk))
    complete = plan.size is None or offset >= plan.size
    return offset, complete


def _resumes_at(response: httpx2.Response, offset: int) -> bool:
    if response.status_code != 206:
        return False
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return match is not None and int(match.group(1)) == offset


def _remove_stale_partials(plan: _Plan) -> None:
    # Partials of this file under another ETag are from an older version: no use now.
    prefix = plan.incomplete.name.split(".")[0]
    for stale in plan.incomplete.parent.glob(f"{prefix}.*.incomplete"):
        with contextlib.suppress(OSError):
            stale.unlink()


class _Meter:
    """Turns byte counts into DownloadProgress events: speed over a sliding window,
    at most one event per PROGRESS_INTERVAL."""

    def __init__(self, callback: ProgressCallback | None, plans: list[_Plan]) -> None:
        self.callback = callback
        self.plans = plans
        sizes = [p.size for p in plans]
        self.total = None if any(s is None for s in sizes) else sum(s for s in sizes if s)
        self.done = 0
        self.resumed = 0
        self.filename = plans[0].filename if plans else ""
        self.part = 1
        self.samples: deque[tuple[float, int]] = deque()
        self.last_emit = 0.0

    def start(self, plan: _Plan, index: int, present: int) -> None:
        self.filename, self.part = plan.filename, index
        self.done += present
        self.resumed += present
        self.samples.clear()
        self._emit(force=True)

    def skip(self, plan: _Plan) -> None:
        size = plan.size or plan.file_path.stat().st_size
        self.done += size
        self.resumed += size

    def restart(self, lost: int) -> None:
        self.done -= lost
        self.resumed -= lost
        self.samples.clear()

    def add(self, count: int) -> None:
        self.done += count
        self._emit()

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self._progress(finished=True))

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW:
            self.samples.popleft()
        if self.callback is None or (not force and now - self.last_emit < PROGRESS_INTERVAL):
            return
        self.last_emit = now
        self.callback(self._progress())

    def _progress(self, finished: bool = False) -> DownloadProgress:
        speed = 0.0
        if len(self.samples) >= 2:
            (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
            speed = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        eta = None
        if self.total is not None and speed > 0:
            eta = max(0.0, (self.total - self.done) / speed)
        if finished:
            eta = 0.0
        return DownloadProgress(
            filename=self.filename,
            part=self.part,
            parts=len(self.plans),
            bytes_done=self.done,
            total=self.total,
            speed=speed,
            eta=eta,
            resumed_bytes=self.resumed,
            finished=finished,
        )
