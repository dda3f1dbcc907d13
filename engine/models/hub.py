"""The Hugging Face Hub: search GGUF repositories, list their files, name the errors.

Everything goes through huggingface_hub: `HfApi` for search and listings, its shared
HTTP session for the reachability probe. Downloads are in engine.models.download.

Errors come out as HubError subclasses whose message is one line a person can act
on: HubUnavailable (no network, offline mode, Hub down), AccessDenied (gated or
private), NotFound, DownloadCancelled. Endpoint and token are read when a function is
called, never at import, so HF_ENDPOINT and HF_TOKEN set later take effect.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

import httpx2
from huggingface_hub import HfApi, get_token, scan_cache_dir
from huggingface_hub.errors import (
    CacheNotFound,
    CorruptedCacheException,
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session

from engine.errors import AccessDenied, DownloadCancelled, HubError, HubUnavailable, NotFound
from engine.models.catalog import SPLIT_NAME, is_mmproj

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT = 5.0
"""Seconds to wait for the Hub to answer at all before saying it is unreachable."""
REACHABLE_FOR = 60.0
"""Seconds a successful probe is trusted, so browsing does not pay for one per call."""

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


def cached_gguf_files(cache: Path, problems: list[str]) -> Iterator[tuple[str, dict[Path, int]]]:
    """(repo id, {file path: size}) of the GGUF files of each model in a Hugging Face cache,
    the revision a ref points at first; what the cache scan warns of goes to `problems`."""
    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, CorruptedCacheException) as err:
        problems.append(f"{cache}: {err}")
        return
    problems += [f"HF cache: {warning}" for warning in info.warnings]
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        files: dict[Path, int] = {}
        # Revisions a ref (main) points at first, so their copy of a file is the one listed.
        revisions = sorted(repo.revisions, key=lambda r: (not r.refs, -r.last_modified))
        blobs: set[Path] = set()
        for revision in revisions:
            for cached in revision.files:
                if cached.file_path.suffix.lower() != ".gguf" or cached.blob_path in blobs:
                    continue
                blobs.add(cached.blob_path)
                files[cached.file_path] = cached.size_on_disk
        yield repo.repo_id, files
