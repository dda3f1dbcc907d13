"""What the app knows about its model, as one immutable value the widgets display."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.contract import ChatModel

ModelStatusName = Literal["none", "loading", "loaded", "failed"]

BASE_MODEL_NOTE = "base model: it continues text; Complete suits it better"
"""Said wherever a model without a chat template is shown: in chat it echoes the prompt."""


@dataclass(frozen=True, slots=True)
class ModelState:
    status: ModelStatusName = "none"
    name: str = ""
    """The display name (loaded) or what was asked for (loading, failed)."""
    context_length: int = 0
    offload: str = ""
    error: str = ""
    path: str = ""
    base_model: bool = False
    """The model has no chat template: it continues text (Complete suits it better)."""

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
            base_model=not model.info.has_chat_template,
        )
