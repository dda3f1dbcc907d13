"""App-wide messages: requests for the model, what happened to it and to predictions.

Workers post these; handlers on the screens and the app own every state change.
Messages that belong to one widget are nested in that widget instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from engine.contract import ChatModel
from engine.prediction import PredictionResult


@dataclass
class ModelLoadStarted(Message):
    """A model is being resolved and loaded."""

    name: str


@dataclass
class ModelLoaded(Message):
    model: ChatModel
    path: Path


@dataclass
class ModelLoadFailed(Message):
    name: str
    error: str


@dataclass
class ModelLoadCancelled(Message):
    name: str


@dataclass
class PredictionProgress(Message):
    """Prompt processing progress, 0.0 to 1.0, and the tokens done of those to do
    (0 of 0 when the model does not count them)."""

    tag: str
    fraction: float
    done: int = 0
    total: int = 0


@dataclass
class PredictionFirstToken(Message):
    tag: str
    time_to_first_token_sec: float


@dataclass
class PredictionFinished(Message):
    """The prediction ended (stopped, cancelled or complete); the result has its stats."""

    tag: str
    result: PredictionResult


@dataclass
class PredictionFailed(Message):
    tag: str
    error: BaseException


# --- requests: screens post these up; the app owns the model ------------------


@dataclass
class LoadModelRequested(Message):
    """Load this model (a catalog key or a path); the one loaded now is unloaded first."""

    spec: str


@dataclass
class UnloadModelRequested(Message):
    """Unload the model and free its memory."""


@dataclass
class CancelModelLoadRequested(Message):
    """Stop the load in progress."""
