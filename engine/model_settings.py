"""Old path of the remembered per-model load settings, kept while callers move: now
engine.models.remembered."""

from __future__ import annotations

from engine.errors import ModelSettingsError
from engine.models.remembered import *  # noqa: F403
from engine.models.remembered import (
    FILE_NAME,
    SCHEMA_VERSION,
    ModelSettingsStore,
    RememberedLoad,
)

__all__ = ["FILE_NAME", "SCHEMA_VERSION", "ModelSettingsError", "ModelSettingsStore", "RememberedLoad"]
