"""Which loaded model serves a request: `ServedModel`, the `ModelProvider` protocol, a registry."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.llama import ENGINE_DEFAULTS, LoadedModel
from engine.prediction import PredictionConfig


@dataclass(slots=True)
class ServedModel:
    """A loaded model under the id clients name it by, with its prediction defaults."""

    id: str
    model: LoadedModel
    defaults: PredictionConfig = ENGINE_DEFAULTS
    """Used where a request says nothing (the config file's [prediction] over ours)."""
    created: int = field(default_factory=lambda: int(time.time()))


class ModelProvider(Protocol):
    """Where the server finds its models; the TUI's may change while the server runs."""

    def served_models(self) -> Sequence[ServedModel]: ...

    def get(self, model_id: str | None) -> ServedModel | None:
        """The model with this id; the default one for None; None when there is none."""
        ...


class ModelRegistry:
    """A ModelProvider over a mutable set of loaded models; the first added is the default."""

    def __init__(self, models: Iterable[ServedModel] = (), default: str | None = None) -> None:
        self._models: dict[str, ServedModel] = {m.id: m for m in models}
        self.default = default

    def add(self, served: ServedModel, *, make_default: bool = False) -> None:
        self._models[served.id] = served
        if make_default:
            self.default = served.id

    def remove(self, model_id: str) -> None:
        self._models.pop(model_id, None)
        if self.default == model_id:
            self.default = None

    def served_models(self) -> Sequence[ServedModel]:
        return [m for m in self._models.values() if m.model.is_loaded]

    def get(self, model_id: str | None) -> ServedModel | None:
        models = {m.id: m for m in self.served_models()}
        if model_id is None:
            if self.default in models:
                return models[self.default]
            return next(iter(models.values()), None)
        if model_id in models:
            return models[model_id]
        # Clients often name a model by a shorter key ("gemma-3-270m" for the q4 file).
        wanted = model_id.lower()
        matches = [m for key, m in models.items() if key.lower().startswith(wanted)]
        return matches[0] if len(matches) == 1 else None


def model_json(served: ServedModel) -> dict[str, Any]:
    """A model as OpenAI's `/v1/models` lists it, with its context length and architecture,
    and the fields Xinference's client picks a handle by (`xinference.model_fields`)."""
    info = served.model.info
    entry: dict[str, Any] = {
        "id": served.id,
        "object": "model",
        "created": served.created,
        "owned_by": "llamaterm",
    }
    if info is not None:
        entry["context_length"] = info.context_length
        entry["architecture"] = info.architecture
    from .xinference import model_fields  # late: keeps the registry free of Starlette

    entry.update(model_fields(served))
    return entry
