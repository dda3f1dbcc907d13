"""The Hugging Face Hub: search GGUF repositories, list their files, download them.

Everything goes through huggingface_hub: `HfApi` for search and listings, its file
metadata call (auth, Hub redirects, error mapping), its shared HTTP session, and its
local-directory layout (`<dir>/.cache/huggingface/download/`) so files downloaded here
are recognised by `hf download --local-dir` and the other way round.

The transfer loop itself is ours, because huggingface_hub 2.x cannot do what a
terminal app needs: it deletes a partial file when a download fails or is stopped
(so nothing resumes), and it reads 10 MB per chunk (so a stop can take seconds on a
slow link). Here a partial download is kept as `<hash>.<etag>.incomplete` and
resumed with an HTTP Range request; a stop takes effect within about a second. A
finished file is checked against the Hub's SHA-256 (the ETag of an LFS file) before
it takes its name, so a damaged download never reaches the catalog.

Errors come out as HubError subclasses whose message is one line a person can act
on: HubUnavailable (no network, offline mode, Hub down), AccessDenied (gated or
private), NotFound, DownloadCancelled. Endpoint and token are read when a function is
called, never at import, so HF_ENDPOINT and HF_TOKEN set later take effect.
"""

from __future__ import annotations

from engine.errors import AccessDenied, DownloadCancelled, HubError, HubUnavailable, NotFound

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeAlias
from urllib.parse import urlparse

import httpx2
from huggingface_hub import HfApi, get_hf_file_metadata, get_token, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import WeakFileLock, build_hf_headers, get_session, hf_raise_for_status

from engine.catalog import SPLIT_NAME, is_mmproj
from engine.memory import format_bytes

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT = 5.0
"""Seconds to wait for the Hub to answer at all before saying it is unreachable."""
REACHABLE_FOR = 60.0
"""Seconds a successful probe is trusted, so browsing does not pay for one per call."""
CONNECT_TIMEOUT = 10.0
READ_POLL = 1.0
"""Longest a download waits on the socket before looking at its cancel flag again."""
STALL_LIMIT = 60.0
MAX_RETRIES = 5
PROGRESS_INTERVAL = 0.1
SPEED_WINDOW = 5.0
LOCK_TIMEOUT = 2.0

SortOrder: TypeAlias = Literal["downloads", "recent", "likes", "trending"]
SORT_ORDERS: tuple[str, ...] = ("downloads", "recent", "likes", "trending")
_SORTS: dict[str, Any] = {
    "downloads": "downloads",
    "recent": "last_modified",
    "likes": "likes",
    "trending": "trending_score",
}
_SEARCH_FIELDS: list[Any] = ["downloads", "likes", "lastModified", "gated", "tags", "gguf"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
HASH_CHUNK = 8 * 1024 * 1024












@dataclass(frozen=True, slots=True)
class HubModel:
    """A repository in search results."""

    repo_id: str
    downloads: int | None = None
    likes: int | None = None
    last_modified: datetime | None = None
    gated: bool = False
    parameter_count: int | None = None
    architecture: str | None = None
    context_length: int | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "downloads": self.downloads,
            "likes": self.likes,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
            "gated": self.gated,
            "parameter_count": self.parameter_count,
            "architecture": self.architecture,
            "context_length": self.context_length,
        }


@dataclass(frozen=True, slots=True)
class HubFile:
    """A GGUF model in a repository: one file, or all parts of a split model."""

    name: str
    """Path in the repository of the file to ask for (the first part of a split model)."""
    parts: tuple[str, ...]
    part_sizes: tuple[int | None, ...]
    quantization: str | None
    is_mmproj: bool = False

    @property
    def size(self) -> int | None:
        if any(s is None for s in self.part_sizes):
            return None
        return sum(s for s in self.part_sizes if s is not None)

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parts": list(self.parts),
            "size": self.size,
            "quantization": self.quantization,
            "is_mmproj": self.is_mmproj,
        }


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


# --- endpoint, reachability, errors ---------------------------------------------------


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub only reads it at import)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline_mode() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "on", "yes", "true"}


_reachable: dict[str, float] = {}
_reachable_lock = threading.Lock()


def forget_reachability() -> None:
    """Probe the Hub again on the next call (after the network changed, or in tests)."""
    with _reachable_lock:
        _reachable.clear()


def _ready(endpoint: str | None) -> str:
    """The endpoint to use, after making sure it answers at all.

    huggingface_hub retries an unreachable host for about 20 seconds; one quick probe
    turns "no network" into one clear line in at most PROBE_TIMEOUT seconds.
    """
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    if offline_mode():
        raise HubUnavailable("offline mode is on (HF_HUB_OFFLINE): the Hub is not contacted")
    with _reachable_lock:
        last = _reachable.get(endpoint)
    if last is not None and time.monotonic() - last < REACHABLE_FOR:
        return endpoint
    try:
        get_session().request("HEAD", endpoint + "/", timeout=PROBE_TIMEOUT)
    except (httpx2.TransportError, OfflineModeIsEnabled) as err:
        raise HubUnavailable(
            f"cannot reach the Hugging Face Hub at {endpoint}: {_reason(err)}"
        ) from None
    with _reachable_lock:
        _reachable[endpoint] = time.monotonic()
    return endpoint


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text and text[0] else type(err).__name__


@contextlib.contextmanager
def _translated(
    endpoint: str, repo: str | None = None, filename: str | None = None
) -> Iterator[None]:
    """huggingface_hub's and httpx's exceptions as HubErrors with one clear line."""
    try:
        yield
    except HubError:
        raise
    except GatedRepoError as err:
        raise AccessDenied(_gated_message(endpoint, repo, err)) from None
    except RepositoryNotFoundError as err:
        raise _repo_not_found(endpoint, repo, err) from None
    except RevisionNotFoundError:
        raise NotFound(f"{repo}: no such revision") from None
    except EntryNotFoundError:
        raise NotFound(f"{repo} has no file {filename}") from None
    except OfflineModeIsEnabled:
        raise HubUnavailable(
            "offline mode is on (HF_HUB_OFFLINE): the Hub is not contacted"
        ) from None
    except HfHubHTTPError as err:
        raise _http_error(endpoint, repo, err) from None
    except httpx2.TransportError as err:
        raise HubUnavailable(
            f"cannot reach the Hugging Face Hub at {endpoint}: {_reason(err)}"
        ) from None


def _status(err: HfHubHTTPError) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _has_token() -> bool:
    return get_token() is not None


def _gated_message(endpoint: str, repo: str | None, err: HfHubHTTPError) -> str:
    page = f"{endpoint}/{repo}"
    if _status(err) == 403 or _has_token():
        return f"{repo} is gated and this account has not been granted access: request it at {page}"
    return (
        f"{repo} is gated: accept its terms at {page}, then log in "
        "(set HF_TOKEN or run `hf auth login`)"
    )


def _repo_not_found(endpoint: str, repo: str | None, err: HfHubHTTPError) -> HubError:
    if _status(err) == 401 and not _has_token():
        return AccessDenied(
            f"{repo} was not found or is private: if it is yours, log in "
            "(set HF_TOKEN or run `hf auth login`)"
        )
    return NotFound(f"no repository {repo} on {endpoint} (or this token cannot see it)")


def _http_error(endpoint: str, repo: str | None, err: HfHubHTTPError) -> HubError:
    status = _status(err)
    server = (getattr(err, "server_message", None) or "").strip().splitlines()
    detail = f": {server[0]}" if server and server[0] else ""
    if status == 401:
        return AccessDenied(
            f"the Hub rejected the token (401){detail}: check HF_TOKEN or log in again"
        )
    if status == 403:
        return AccessDenied(f"access to {repo or endpoint} refused (403){detail}")
    if status is not None and (status >= 500 or status == 429):
        return HubUnavailable(f"the Hub at {endpoint} answered {status}{detail}: try again later")
    return HubError(f"the Hub answered {status}{detail}")


# --- search and listing ---------------------------------------------------------------


def search_models(
    text: str,
    *,
    sort: SortOrder = "downloads",
    limit: int = 20,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> list[HubModel]:
    """GGUF repositories matching `text`, most downloaded (or most recent...) first."""
    if sort not in _SORTS:
        raise ValueError(f"unknown sort {sort!r}: use one of {', '.join(_SORTS)}")
    endpoint = _ready(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    with _translated(endpoint):
        found = api.list_models(
            search=text.strip() or None,
            filter="gguf",
            sort=_SORTS[sort],
            limit=limit,
            expand=_SEARCH_FIELDS,
        )
        return [_hub_model(info) for info in found]


def _hub_model(info: Any) -> HubModel:
    gguf = info.gguf if isinstance(info.gguf, dict) else {}
    return HubModel(
        repo_id=info.id,
        downloads=info.downloads,
        likes=info.likes,
        last_modified=info.last_modified or info.created_at,
        gated=bool(info.gated),
        parameter_count=_int_or_none(gguf.get("total")),
        architecture=gguf.get("architecture"),
        context_length=_int_or_none(gguf.get("context_length")),
        tags=tuple(info.tags or ()),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def list_gguf_files(
    repo: str,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> list[HubFile]:
    """The GGUF models in a repository, split parts grouped, with sizes and quantisations."""
    _check_repo_id(repo)
    endpoint = _ready(endpoint)
    api = HfApi(endpoint=endpoint, token=token)
    with _translated(endpoint, repo):
        tree = list(api.list_repo_tree(repo, recursive=True, revision=revision))
    sizes: dict[str, int | None] = {}
    for item in tree:
        path = getattr(item, "path", "")
        if path.lower().endswith(".gguf") and hasattr(item, "size"):
            lfs = getattr(item, "lfs", None)
            sizes[path] = getattr(lfs, "size", None) or item.size
    return group_repo_files(sizes)


def group_repo_files(sizes: Mapping[str, int | None]) -> list[HubFile]:
    """Repository paths grouped into models: split parts together, mmproj files marked."""
    splits: dict[tuple[str, str, int], dict[int, str]] = {}
    files: list[HubFile] = []
    for path in sorted(sizes):
        folder, _, name = path.rpartition("/")
        match = SPLIT_NAME.match(name)
        if match is None:
            projector = is_mmproj(Path(name))
            files.append(HubFile(path, (path,), (sizes[path],), quantization_of(name), projector))
            continue
        key = (folder, match.group("prefix"), int(match.group("count")))
        splits.setdefault(key, {})[int(match.group("number"))] = path
    for (_, prefix, _), numbered in splits.items():
        parts = tuple(numbered[n] for n in sorted(numbered))
        files.append(
            HubFile(
                parts[0],
                parts,
                tuple(sizes[p] for p in parts),
                quantization_of(prefix),
                is_mmproj(Path(prefix)),
            )
        )
    files.sort(key=lambda f: (f.is_mmproj, f.name.lower()))
    return files


_QUANT = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M|L)"
    r"|TQ[12]_0"
    r"|Q[2-8]_K_(?:XXL|XL|S|M|L)"
    r"|Q[2-8]_K"
    r"|Q[2-8]_[01]"
    r"|MXFP4(?:_MOE)?"
    r"|BF16|FP16|FP32|F16|F32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def quantization_of(file_name: str) -> str | None:
    """The quantisation a file name announces ("gemma-3-270m-it-Q4_K_M.gguf" → "Q4_K_M")."""
    found = _QUANT.findall(Path(file_name).stem)
    if not found:
        return None
    name = found[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(name, name)


def pick_file(files: list[HubFile], wanted: str) -> HubFile:
    """The file a person means: a path in the repository, or a quantisation name."""
    for file in files:
        if wanted in (file.name, *file.parts) or wanted == file.name.rpartition("/")[2]:
            return file
    matches = [f for f in files if not f.is_mmproj and (f.quantization or "") == wanted.upper()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(f.name for f in matches)
        raise NotFound(f"{wanted} matches several files: {names}")
    available = ", ".join(f.name for f in files) or "none"
    raise NotFound(f"no GGUF file {wanted!r} (files: {available})")


def split_parts(filename: str) -> list[str]:
    """All parts of a split model, given any one of them; a plain file alone."""
    folder, slash, name = filename.rpartition("/")
    match = SPLIT_NAME.match(name)
    if match is None:
        return [filename]
    count = int(match.group("count"))
    prefix = match.group("prefix")
    return [f"{folder}{slash}{prefix}-{n:05d}-of-{count:05d}.gguf" for n in range(1, count + 1)]


def _check_repo_id(repo: str) -> None:
    if not _REPO_ID.match(repo) or ".." in repo:
        raise NotFound(f"{repo!r} is not a repository id (expected owner/name)")


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
