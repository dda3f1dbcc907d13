"""What the app knows about its model, as one immutable value the widgets display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from engine.runtime import LoadedModel

ModelStatusName = Literal["none", "loading", "loaded", "failed"]


@dataclass(frozen=True, slots=True)
class ModelState:
    status: ModelStatusName = "none"
    name: str = ""
    """The display name (loaded) or what was asked for (loading, failed)."""
    context_length: int = 0
    offload: str = ""
    error: str = ""
    path: str = ""

    @classmethod
    def loading(cls, name: str) -> ModelState:
        return cls(status="loading", name=name)

    @classmethod
    def failed(cls, name: str, error: str) -> ModelState:
        return cls(status="failed", name=name, error=error)

    @classmethod
    def of(cls, model: LoadedModel | Any) -> ModelState:
        info = model.info
        if not isinstance(model, LoadedModel):
            # A remote model (engine.remote): the server holds it, nothing is offloaded here.
            return cls(
                status="loaded",
                name=info.display_name if info else model.key,
                context_length=info.context_length if info else 0,
                offload="remote",
                path=str(getattr(model, "base_url", "")),
            )
        return cls(
            status="loaded",
            name=info.display_name if info else model.key,
            context_length=info.context_length if info else 0,
            offload=model.offload.describe(),
            path=str(model.path),
        )
