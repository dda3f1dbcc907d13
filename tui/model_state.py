"""What the app knows about its model, as one immutable value the widgets display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
    def of(cls, model: LoadedModel) -> ModelState:
        info = model.info
        return cls(
            status="loaded",
            name=info.display_name if info else model.key,
            context_length=info.context_length if info else 0,
            offload=model.offload.describe(),
            path=str(model.path),
        )
