"""A small local stand-in for the Hugging Face Hub, for tests (point HF_ENDPOINT at it).

It serves what huggingface_hub 2.x calls for search, listing and download:

* ``GET /api/models?search=&filter=gguf&sort=&limit=&expand=`` (``HfApi.list_models``)
* ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}`` (``model_info``)
* ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=`` (``list_repo_tree``)
* ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with ``ETag``, ``X-Repo-Commit``,
  ``Content-Length``, ``Accept-Ranges`` and HTTP ranges (``get_hf_file_metadata`` and
  the download itself); with ``cdn=True`` it answers like the real Hub for LFS files:
  a 302 with ``X-Linked-Etag``/``X-Linked-Size`` to a "CDN" on another origin
  (``localhost`` instead of ``127.0.0.1``), which must not receive the token
* ``HEAD /`` (a reachability probe)

Repositories may be gated (401 without a token, 403 with a token not granted access,
``X-Error-Code: GatedRepo``) or private (401 ``RepoNotFound`` without a token), and
errors carry the headers huggingface_hub maps to its exception types. Knobs for
download tests: ``throttle`` (bytes per second), ``drop_after`` (close the connection
after that many body bytes, once), ``corrupt_next`` (flip one byte of the next file
body, once), ``ignore_ranges`` and ``requests`` (everything asked, for asserts).

Plain module, no pytest import::

    with HubServer(default_repos(tmp_path)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from gguf import GGUFWriter, LlamaFileType
from gguf_factory import write_tiny_gguf

GOOD_TOKEN = "hf_test_owner"
"""A token the server knows, granted access to every gated repository."""
UNGRANTED_TOKEN = "hf_test_stranger"
"""A token the server knows, not granted access to gated repositories."""


@dataclass
class HostedRepo:
    repo_id: str
    files: dict[str, bytes]
    gated: bool = False
    private: bool = False
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2025-01-01T00:00:00.000Z"
    tags: tuple[str, ...] = ("gguf",)
    gguf: dict[str, Any] | None = None

    @property
    def commit(self) -> str:
        return hashlib.sha1(self.repo_id.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "_id": self.commit[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "downloads": self.downloads,
            "likes": self.likes,
            "lastModified": self.last_modified,
            "createdAt": self.last_modified,
            "gated": "manual" if self.gated else False,
            "private": self.private,
            "tags": list(self.tags),
            "library_name": "gguf" if "gguf" in self.tags else None,
            **({"gguf": self.gguf} if self.gguf else {}),
        }


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class _Blob:
    data: bytes
    sha256: str = field(init=False)
    git_oid: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.git_oid = hashlib.sha1(self.data).hexdigest()


class HubServer:
    """The stand-in Hub on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(
        self,
        repos: Iterable[HostedRepo] = (),
        *,
        tokens: Iterable[str] = (GOOD_TOKEN, UNGRANTED_TOKEN),
        granted: Iterable[str] = (GOOD_TOKEN,),
    ) -> None:
        self.repos: dict[str, HostedRepo] = {}
        self.blobs: dict[str, _Blob] = {}
        self.tokens = set(tokens)
        self.granted = set(granted)
        self.throttle: float | None = None
        """Bytes per second for file bodies; None for full speed."""
        self.chunk_size = 4096
        self.drop_after: int | None = None
        """Close the connection after this many body bytes of the next download (once)."""
        self.corrupt_next = False
        """Flip one byte in the next file body served (once), as a bad proxy might."""
        self.on_chunk: Callable[[int], None] | None = None
        """Called on the serving thread after each body chunk, with the bytes sent so far:
        lets a test act at a known point of a download rather than after a delay."""
        self.cdn = False
        self.ignore_ranges = False
        """Answer every request with the whole file, as some proxies do."""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for repo in repos:
            self.add(repo)

    def add(self, repo: HostedRepo) -> None:
        self.repos[repo.repo_id] = repo
        for data in repo.files.values():
            blob = _Blob(data)
            self.blobs[blob.sha256] = blob

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not running"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            # A short poll interval makes stop() quick: tests start and stop many servers.
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="hub-server",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def downloads(self) -> list[RecordedRequest]:
        """The GET requests for file bodies (resolve or CDN), in order."""
        return [
            r
            for r in self.requests
            if r.method == "GET" and ("/resolve/" in r.path or r.path.startswith("/cdn/"))
        ]


def _handler_for(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        pass

    Handler.hub = hub
    return Handler


class _Refused(Exception):
    def __init__(self, status: int, code: str | None = None, message: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _HubHandler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read hub.requests instead

    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    def do_GET(self) -> None:
        self._dispatch(body=True)

    # --- routing -------------------------------------------------------------------

    def _dispatch(self, *, body: bool) -> None:
        self._extra_headers: dict[str, str] = {}
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        self.hub.record(
            RecordedRequest(
                self.command, path, query, {k.lower(): v for k, v in self.headers.items()}
            )
        )
        try:
            self._route(path, query, body)
        except _Refused as refused:
            self._error(refused)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, path: str, query: dict[str, list[str]], body: bool) -> None:
        segments = [s for s in path.split("/") if s]
        if not segments:
            self._send(200, b"ok", "text/plain", body=body)
        elif segments[:2] == ["api", "models"] and len(segments) == 2:
            self._json(self._search(query), body)
        elif segments[:2] == ["api", "models"] and len(segments) >= 4:
            self._api_repo("/".join(segments[2:4]), segments[4:], query, body)
        elif segments[0] == "cdn" and len(segments) == 2:
            blob = self.hub.blobs.get(segments[1])
            if blob is None:
                raise _Refused(404, None, "no such blob")
            self._file(blob, body)
        elif len(segments) >= 5 and segments[2] == "resolve":
            repo = self._repo("/".join(segments[:2]), download=True)
            self._resolve(repo, segments[3], "/".join(segments[4:]), body)
        else:
            raise _Refused(404, None, "not found")

    def _api_repo(
        self, repo_id: str, rest: list[str], query: dict[str, list[str]], body: bool
    ) -> None:
        repo = self._repo(repo_id, download=False)
        if not rest:
            self._json(self._info(repo), body)
        elif rest[0] == "revision" and len(rest) == 2:
            self._revision(repo, rest[1])
            self._json(self._info(repo), body)
        elif rest[0] == "tree" and len(rest) >= 2:
            self._revision(repo, rest[1])
            recursive = _truthy(query.get("recursive", ["false"])[0])
            self._json(self._tree(repo, "/".join(rest[2:]), recursive), body)
        else:
            raise _Refused(404, None, "not found")

    # --- access ------------------------------------------------------------------------

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise _Refused(401, None, "Invalid credentials in Authorization header")
        return token

    def _repo(self, repo_id: str, *, download: bool) -> HostedRepo:
        token = self._token()
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and token is None):
            raise _Refused(401 if token is None else 404, "RepoNotFound", "Repository not found")
        if download and repo.gated:
            if token is None:
                raise _Refused(
                    401,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                )
            if token not in self.hub.granted:
                raise _Refused(
                    403,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted and you are not in the "
                    "authorized list.",
                )
        return repo

    def _revision(self, repo: HostedRepo, revision: str) -> None:
        if unquote(revision) not in ("main", repo.commit):
            raise _Refused(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    # --- API bodies --------------------------------------------------------------------

    def _search(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        token = self._token()
        text = (query.get("search") or [""])[0].lower()
        filters = query.get("filter", [])
        found = [
            repo
            for repo in self.hub.repos.values()
            if text in repo.repo_id.lower()
            and all(f in repo.tags for f in filters)
            and (token is not None or not repo.private)
        ]
        sort = (query.get("sort") or ["trendingScore"])[0]
        keys = {
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
            "lastModified": lambda r: r.last_modified,
            "createdAt": lambda r: r.last_modified,
        }
        if sort in keys:
            found.sort(key=keys[sort], reverse=True)
        limit = int((query.get("limit") or ["1000"])[0])
        return [repo.summary() for repo in found[:limit]]

    def _info(self, repo: HostedRepo) -> dict[str, Any]:
        siblings = [
            {"rfilename": name, "size": len(data)} for name, data in sorted(repo.files.items())
        ]
        return {**repo.summary(), "sha": repo.commit, "siblings": siblings}

    def _tree(self, repo: HostedRepo, folder: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, data in sorted(repo.files.items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if "/" in rest:
                directory = prefix + rest.split("/")[0]
                entries.setdefault(
                    directory,
                    {"type": "directory", "oid": "0" * 40, "size": 0, "path": directory},
                )
                if not recursive:
                    continue
            blob = _Blob(data)
            entries[name] = {
                "type": "file",
                "oid": blob.git_oid,
                "size": len(data),
                "path": name,
                "lfs": {"oid": blob.sha256, "size": len(data), "pointerSize": 134},
            }
        return list(entries.values())

    # --- files -------------------------------------------------------------------------

    def _resolve(self, repo: HostedRepo, revision: str, filename: str, body: bool) -> None:
        self._revision(repo, revision)
        data = repo.files.get(filename)
        if data is None:
            self._extra_headers = {"X-Repo-Commit": repo.commit}
            raise _Refused(404, "EntryNotFound", "Entry not found")
        blob = _Blob(data)
        common = {
            "X-Repo-Commit": repo.commit,
            "X-Linked-Etag": f'"{blob.sha256}"',
            "X-Linked-Size": str(len(data)),
        }
        if self.hub.cdn:
            location = f"{self.hub.cdn_url}/cdn/{blob.sha256}"
            self._send(302, b"", "text/plain", body=body, headers={**common, "Location": location})
            return
        self._file(blob, body, common)

    def _file(self, blob: _Blob, body: bool, headers: Mapping[str, str] | None = None) -> None:
        data = blob.data
        total = len(data)
        start, end = 0, total - 1
        status = 200
        range_header = None if self.hub.ignore_ranges else self.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, total)
            if parsed is None:
                self._send(
                    416, b"", "text/plain", body=body, headers={"Content-Range": f"bytes */{total}"}
                )
                return
            start, end = parsed
            status = 206
        extra = {
            **(headers or {}),
            "ETag": f'"{blob.sha256}"',
            "Accept-Ranges": "bytes",
        }
        if status == 206:
            extra["Content-Range"] = f"bytes {start}-{end}/{total}"
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if body:
            self._stream(data[start : end + 1])

    def _stream(self, payload: bytes) -> None:
        hub = self.hub
        sent = 0
        drop_after, hub.drop_after = hub.drop_after, None
        if hub.corrupt_next and payload:
            hub.corrupt_next = False
            middle = len(payload) // 2
            payload = payload[:middle] + bytes([payload[middle] ^ 0xFF]) + payload[middle + 1 :]
        while sent < len(payload):
            chunk = payload[sent : sent + hub.chunk_size]
            if drop_after is not None and sent + len(chunk) > drop_after:
                self.wfile.write(chunk[: max(0, drop_after - sent)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)
            self.wfile.flush()
            sent += len(chunk)
            if hub.on_chunk is not None:
                hub.on_chunk(sent)
            if hub.throttle:
                time.sleep(len(chunk) / hub.throttle)

    # --- responses -------------------------------------------------------------------

    def _json(self, payload: Any, body: bool) -> None:
        self._send(200, json.dumps(payload).encode(), "application/json", body=body)

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        *,
        body: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body and payload:
            self.wfile.write(payload)

    def _error(self, refused: _Refused) -> None:
        headers = dict(self._extra_headers)
        if refused.code:
            headers["X-Error-Code"] = refused.code
        if refused.message:
            headers["X-Error-Message"] = refused.message
        payload = json.dumps({"error": refused.message}).encode()
        self._send(
            refused.status,
            payload,
            "application/json",
            body=self.command != "HEAD",
            headers=headers,
        )


def _parse_range(header: str, total: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if not first:  # a suffix range: the last N bytes
        count = int(last)
        return (max(0, total - count), total - 1) if count else None
    start = int(first)
    end = int(last) if last else total - 1
    if start >= total or end < start:
        return None
    return start, min(end, total - 1)


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes"}


# --- tiny models to host --------------------------------------------------------------


def write_split_gguf(base: Path, *, parts: int = 3, name: str = "split test model") -> list[Path]:
    """A small llama-shaped model written as `parts` split files
    (`<stem>-0000N-of-0000M.gguf` beside `base`); parseable, not loadable."""
    n_layer = parts
    n_tensors = 3 + 3 * n_layer
    writer = GGUFWriter(None, "llama", split_max_tensors=-(-n_tensors // parts))
    writer.add_name(name)
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    writer.add_context_length(4096)
    writer.add_embedding_length(64)
    writer.add_block_count(n_layer)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_feed_forward_length(128)
    writer.add_vocab_size(32)
    rng = np.random.default_rng(1)

    def weights(rows: int) -> np.ndarray:
        return rng.standard_normal((rows, 64)).astype(np.float16)

    writer.add_tensor("token_embd.weight", weights(32))
    writer.add_tensor("output.weight", weights(32))
    writer.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    for il in range(n_layer):
        writer.add_tensor(f"blk.{il}.attn_q.weight", weights(64))
        writer.add_tensor(f"blk.{il}.attn_k.weight", weights(32))
        writer.add_tensor(f"blk.{il}.attn_v.weight", weights(32))
    base.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file(path=base)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    written = sorted(base.parent.glob(f"{base.stem}-*-of-*.gguf"))
    assert len(written) == parts, f"wrote {len(written)} parts, wanted {parts}"
    return written


def write_mmproj_gguf(path: Path) -> Path:
    """A tiny CLIP-style projector file: a GGUF that is not a language model."""
    writer = GGUFWriter(None, "clip")
    writer.add_name("tiny projector")
    writer.add_tensor("mm.0.weight", np.zeros((8, 8), dtype=np.float16))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def default_repos(workdir: Path) -> list[HostedRepo]:
    """The repositories tests use: a tiny model in two "quantisations" with a projector,
    a split model, a gated one, a private one and a repository without GGUF files."""
    workdir.mkdir(parents=True, exist_ok=True)
    tiny = write_tiny_gguf(workdir / "tiny.gguf").read_bytes()
    other = write_tiny_gguf(workdir / "tiny-8.gguf", seed=8).read_bytes()
    projector = write_mmproj_gguf(workdir / "mmproj.gguf").read_bytes()
    split = [p.read_bytes() for p in write_split_gguf(workdir / "split" / "split-Q4_K_M.gguf")]
    gguf_meta = {"total": 130752, "architecture": "llama", "context_length": 2048}
    return [
        HostedRepo(
            "tester/tiny-GGUF",
            {
                "tiny-Q4_K_M.gguf": tiny,
                "tiny-Q8_0.gguf": other,
                "mmproj-tiny-F16.gguf": projector,
                "README.md": b"# tiny\n",
            },
            downloads=500,
            likes=3,
            last_modified="2025-03-01T00:00:00.000Z",
            gguf=gguf_meta,
        ),
        HostedRepo(
            "tester/split-GGUF",
            {
                f"Q4_K_M/split-Q4_K_M-{n:05d}-of-{len(split):05d}.gguf": data
                for n, data in enumerate(split, start=1)
            },
            downloads=50,
            last_modified="2025-06-01T00:00:00.000Z",
        ),
        HostedRepo(
            "gated/tiny-GGUF",
            {"tiny-Q4_K_M.gguf": tiny},
            gated=True,
            downloads=5,
            last_modified="2024-01-01T00:00:00.000Z",
        ),
        HostedRepo("tester/private-GGUF", {"tiny-Q4_K_M.gguf": tiny}, private=True),
        HostedRepo(
            "tester/tiny-safetensors",
            {"model.safetensors": b"\0" * 16},
            tags=("safetensors",),
            downloads=10_000,
        ),
    ]
