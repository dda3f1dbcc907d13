"""What the LM Studio endpoints serve from: the app's loaded models, and how to load more.

`SdkState` wraps the server's `ModelProvider` (the same `ModelRegistry` the OpenAI
routes read), the API key, and an optional `ModelLoader`. Without a loader the SDK can
use the models the app loaded but not load or unload any (getOrLoad of an unloaded
key answers "not found"). `CatalogLoader` loads from the local catalog into the
registry and unloads only what it loaded itself, so an SDK script can never pull the
TUI's or `llamaterm serve`'s own model out from under it. As in LM Studio, a model
loaded with a TTL (the SDK asks for 3600 s unless told otherwise) is unloaded once it
has been idle that long; a prediction in progress keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.llama import ENGINE_DEFAULTS, LoadedModel
from engine.load_config import LoadConfig
from engine.logbus import LOG_BUS
from engine.models.catalog import CatalogEntry, CatalogSource, scan_catalog
from engine.prediction import PredictionConfig
from engine.serve.models import ModelProvider, ServedModel

from .config_stack import load_config_over
from .protocol import LmsError

LoadProgress = Callable[[float], Any]


class ModelLoader(Protocol):
    """Loads and unloads models for SDK clients, and lists what could be loaded."""

    def downloaded(self) -> Sequence[CatalogEntry]:
        """The models on disk that could be loaded."""
        ...

    async def load(
        self,
        key: str,
        overrides: dict[str, Any],
        identifier: str | None,
        on_progress: LoadProgress,
        ttl: float | None = None,
    ) -> ServedModel:
        """Load `key` (a catalog key or a path) and serve it under `identifier` (or a free id);
        with a `ttl`, unload it after that many seconds unused."""
        ...

    def touch(self, identifier: str, busy: int = 0) -> None:
        """The model is used now; `busy` +1 when a prediction starts on it, -1 when it ends."""
        ...

    def unload(self, identifier: str) -> None:
        """Unload a model this loader loaded; LmsError for any other."""
        ...

    def close(self) -> None:
        """Unload everything this loader loaded (the server stops)."""
        ...


@dataclass(slots=True)
class SdkState:
    """Everything the LM Studio routes need; built once per app."""

    models: ModelProvider
    api_key: str | None = None
    loader: ModelLoader | None = None
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held from "is it loaded?" to "it is": two clients asking at once load it once."""

    def loaded(self) -> list[ServedModel]:
        return list(self.models.served_models())

    def touch(self, served: ServedModel, busy: int = 0) -> None:
        if self.loader is not None:
            self.loader.touch(served.id, busy)

    def resolve(self, specifier: Any) -> ServedModel:
        """The served model a `ModelSpecifier` (query or instance reference) names."""
        from .protocol import model_not_found

        loaded = self.loaded()
        if not isinstance(specifier, dict):
            specifier = {"type": "query", "query": {}}
        if specifier.get("type") == "instanceReference":
            ref = specifier.get("instanceReference")
            for served in loaded:
                if served.id == ref:
                    return served
            raise model_not_found({"identifier": ref}, [m.id for m in loaded])
        query = specifier.get("query") or {}
        found = self.find(query.get("identifier") or query.get("path"))
        if found is None:
            raise model_not_found(query, [m.id for m in loaded])
        return found

    def find(self, wanted: str | None) -> ServedModel | None:
        """A loaded model by id (or id prefix), model key, path or file name; None: the default."""
        served = self.models.get(wanted)
        if served is not None or wanted is None:
            return served
        lowered = wanted.lower()
        for candidate in self.loaded():
            model = candidate.model
            path = model.path
            names = {model.key.lower(), str(path).lower(), path.name.lower(), path.stem.lower()}
            if lowered in names:
                return candidate
        return None


@dataclass(slots=True)
class _Lease:
    """A TTL: how long a model may sit unused, and whether anything uses it now."""

    ttl: float
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0
    task: asyncio.Task[None] | None = None


class CatalogLoader:
    """A ModelLoader over the local catalog and a ModelRegistry."""

    def __init__(
        self,
        registry: Any,
        sources: Sequence[CatalogSource],
        *,
        load_config: Callable[[CatalogEntry], LoadConfig] | None = None,
        defaults: PredictionConfig = ENGINE_DEFAULTS,
    ) -> None:
        self.registry = registry
        self.sources = list(sources)
        self.load_config = load_config or (lambda entry: LoadConfig())
        self.defaults = defaults
        self._owned: dict[str, LoadedModel] = {}
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, registry: Any, settings: Any) -> CatalogLoader:
        """The catalog, load settings and prediction defaults of a llamaterm config."""
        from engine.models.catalog import sources_for

        return cls(
            registry,
            sources_for(settings),
            load_config=lambda entry: settings.load_config_for(entry.key, entry.path.name),
            defaults=settings.prediction_defaults(),
        )

    def downloaded(self) -> Sequence[CatalogEntry]:
        return [e for e in scan_catalog(self.sources).entries if e.ok]

    def entry(self, key: str) -> CatalogEntry:
        """The catalog entry for a key or path: exact key, then prefix, then substring."""
        entries = self.downloaded()
        as_path = Path(key).expanduser()
        for entry in entries:
            if entry.path == as_path or str(entry.path) == key:
                return entry
        wanted = key.lower()
        for match in (lambda e: e.key == wanted, lambda e: e.key.startswith(wanted),
                      lambda e: wanted in e.key):
            found = [e for e in entries if match(e)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise LmsError(f"{key!r} matches several models: {', '.join(e.key for e in found)}")
        known = ", ".join(e.key for e in entries) or "none"
        raise LmsError(
            f"no local model matches {key!r}",
            suggestion=f"local models: {known}",
            display_data={
                "code": "generic.noModelMatchingQuery",
                "query": {"identifier": key},
                "loadedModelsSample": [],
                "totalLoadedModels": 0,
            },
        )

    async def load(
        self,
        key: str,
        overrides: dict[str, Any],
        identifier: str | None,
        on_progress: LoadProgress,
        ttl: float | None = None,
    ) -> ServedModel:
        entry = self.entry(key)
        config = load_config_over(self.load_config(entry), overrides)
        served_id = identifier or self._free_id(entry.key)
        model = await LoadedModel.load_async(
            entry.path, config, key=entry.key, on_progress=on_progress
        )
        served = ServedModel(served_id, model, self.defaults)
        with self._lock:
            self._owned[served_id] = model
        self.registry.add(served)
        LOG_BUS.emit("info", "server", f"LM Studio SDK loaded {entry.key} as {served_id}")
        if ttl is not None and ttl > 0:
            lease = _Lease(ttl)
            self._leases[served_id] = lease
            lease.task = asyncio.get_running_loop().create_task(self._expire(served_id, lease))
        return served

    def touch(self, identifier: str, busy: int = 0) -> None:
        lease = self._leases.get(identifier)
        if lease is not None:
            lease.last_used = time.monotonic()
            lease.busy += busy

    async def _expire(self, identifier: str, lease: _Lease) -> None:
        while True:
            idle = time.monotonic() - lease.last_used
            if lease.busy <= 0 and idle >= lease.ttl:
                break
            await asyncio.sleep(max(0.05, lease.ttl - idle) if lease.busy <= 0 else lease.ttl)
        if self._leases.get(identifier) is not lease:
            return
        del self._leases[identifier]
        LOG_BUS.emit("info", "server", f"LM Studio SDK: {identifier} unused for {lease.ttl:g}s")
        with contextlib.suppress(LmsError):
            await asyncio.to_thread(self.unload, identifier)

    def _free_id(self, key: str) -> str:
        taken = {m.id for m in self.registry.served_models()}
        if key not in taken:
            return key
        n = 2
        while f"{key}:{n}" in taken:
            n += 1
        return f"{key}:{n}"

    def unload(self, identifier: str) -> None:
        with self._lock:
            model = self._owned.pop(identifier, None)
        if model is None:
            raise LmsError(
                f"model {identifier!r} was not loaded through the SDK and stays loaded",
                suggestion="unload it in the app that loaded it",
            )
        lease = self._leases.pop(identifier, None)
        if lease is not None and lease.task is not None:
            # From any thread; a loop already closed has no timer left to stop.
            with contextlib.suppress(RuntimeError):
                lease.task.get_loop().call_soon_threadsafe(lease.task.cancel)
        self.registry.remove(identifier)
        model.unload()
        LOG_BUS.emit("info", "server", f"LM Studio SDK unloaded {identifier}")

    def close(self) -> None:
        """Unload everything this loader loaded (when the server stops)."""
        for identifier in list(self._owned):
            self.unload(identifier)
