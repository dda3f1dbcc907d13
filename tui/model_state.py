"""What the app knows about its model, as one immutable value the widgets display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.contract import ChatModel

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
    def of(cls, model: ChatModel) -> ModelState:
        return cls(
            status="loaded",
            name=model.info.display_name,
            context_length=model.info.context_length,
            offload=model.placement,
            path=model.location,
        )
