"""Old path of the Hugging Face Hub client, kept while callers move: search and listings
are now engine.models.hub, downloads engine.models.download."""

from __future__ import annotations

import shutil  # noqa: F401 - tests patch hub.shutil.disk_usage through this path

from engine.errors import AccessDenied, DownloadCancelled, HubError, HubUnavailable, NotFound
from engine.models.download import *  # noqa: F403
from engine.models.download import (
    CONNECT_TIMEOUT,
    HASH_CHUNK,
    LOCK_TIMEOUT,
    MAX_RETRIES,
    PROGRESS_INTERVAL,
    READ_POLL,
    SPEED_WINDOW,
    STALL_LIMIT,
    DownloadProgress,
    ProgressCallback,
    download,
    local_dir_for,
    partial_bytes,
)
from engine.models.hub import *  # noqa: F403
from engine.models.hub import (
    DEFAULT_ENDPOINT,
    PROBE_TIMEOUT,
    REACHABLE_FOR,
    SORT_ORDERS,
    HubFile,
    HubModel,
    SortOrder,
    forget_reachability,
    group_repo_files,
    hub_endpoint,
    list_gguf_files,
    offline_mode,
    pick_file,
    quantization_of,
    search_models,
    split_parts,
)

__all__ = [
    "CONNECT_TIMEOUT", "DEFAULT_ENDPOINT", "HASH_CHUNK", "LOCK_TIMEOUT", "MAX_RETRIES",
    "PROBE_TIMEOUT", "PROGRESS_INTERVAL", "READ_POLL", "REACHABLE_FOR", "SORT_ORDERS",
    "SPEED_WINDOW", "STALL_LIMIT", "AccessDenied", "DownloadCancelled", "DownloadProgress",
    "HubError", "HubFile", "HubModel", "HubUnavailable", "NotFound", "ProgressCallback",
    "SortOrder", "download", "forget_reachability", "group_repo_files", "hub_endpoint",
    "list_gguf_files", "local_dir_for", "offline_mode", "partial_bytes", "pick_file",
    "quantization_of", "search_models", "split_parts",
]
