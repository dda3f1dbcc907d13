"""THE loader: from a model reference to a loaded model, the same way for every surface.

`engine.llm()`, the app, `llamaterm complete`/`chat` and `serve` all call `resolve_load`
and then `load_model` (or `load_model_async`), so a model loads with the same settings
whichever way it is opened. Two steps, because resolving is cheap and says what will
happen (`LoadPlan.sources` names where each setting came from), while loading is slow
and may be cancelled.

A reference is a catalog key ("gemma-3-270m", matched case-insensitively: exact, then
prefix, then substring), a file name, a path, or nothing (the configured default, else
the starter model). Load settings are layered, later over earlier:

    LoadConfig's defaults < config [load] < config [models."<key>".load]
                          < remembered (model_settings.json) < the call's own overrides
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.errors import ModelNotFoundError
from engine.load_config import LoadConfig
from engine.models.catalog import LocalModel, find_models, model_key
from engine.models.remembered import ModelSettingsStore, one_line
from engine.models.starter import STARTER_FILE, STARTER_KEY, ensure_starter_model
from engine.paths import models_dir as models_dir_of

if TYPE_CHECKING:
    import threading

    from engine.llama import LoadedModel
    from engine.settings import Settings

Overrides = LoadConfig | Mapping[str, Any] | None
"""A call's own load settings: a mapping of the settings to change (snake_case or
camelCase), or a whole LoadConfig that replaces every layer."""

DEFAULTS = "defaults"
CONFIG_LOAD = "[load]"
REMEMBERED = "remembered"
CALL = "call"


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What `load_model` will load, and with what, before anything slow happens."""

    path: Path
    """The file to load (the first part of a split model)."""
    key: str
    """The catalog key, which the loaded model is known by (and its settings are kept under)."""
    load_config: LoadConfig
    sources: Mapping[str, str] = field(default_factory=dict)
    """For every LoadConfig field, the layer that set it: "defaults", "[load]",
    '[models."<key>"]', "remembered" or "call"."""
    problems: tuple[str, ...] = ()
    """Remembered settings that were ignored (unreadable file, values that no longer validate)."""

    def source_of(self, setting: str) -> str:
        return self.sources.get(setting, DEFAULTS)


def resolve_load(
    reference: str | Path | None,
    settings: Settings,
    *,
    data_dir: Path | None = None,
    overrides: Overrides = None,
    remembered: ModelSettingsStore | None = None,
) -> LoadPlan:
    """Find the model `reference` names and the settings to load it with.

    `data_dir` (default: the settings' data directory) holds models/ and the remembered
    settings; `remembered` replaces the store read from it. May assemble the starter
    model (seconds, the first time): call it off the event loop. Raises
    ModelNotFoundError for a reference that names nothing, or several models.
    """
    data = Path(data_dir) if data_dir is not None else settings.data_dir()
    # Absolute, but links are not followed: a link's name is its catalog key.
    path = Path(os.path.abspath(resolve_path(reference, settings, data).expanduser()))
    key = model_key(path)
    if remembered is None:
        remembered = ModelSettingsStore(data)
    config, sources, problems = layered_load_config(
        settings, key, path.name, remembered=remembered, overrides=overrides
    )
    return LoadPlan(path, key, config, sources, problems)


def layered_load_config(
    settings: Settings,
    key: str,
    file_name: str = "",
    *,
    remembered: ModelSettingsStore | None = None,
    overrides: Overrides = None,
) -> tuple[LoadConfig, dict[str, str], tuple[str, ...]]:
    """The LoadConfig for model `key`, which layer set each field, and what was ignored.

    The one place the layers are stacked; `Settings.load_config_for` is its first three.
    """
    if isinstance(overrides, LoadConfig):
        return overrides, dict.fromkeys(LoadConfig.model_fields, CALL), ()
    values = LoadConfig().model_dump()
    sources = dict.fromkeys(values, DEFAULTS)

    def apply(layer: Mapping[str, Any], name: str) -> None:
        values.update(layer)
        sources.update(dict.fromkeys(layer, name))

    apply(settings.load.model_dump(include=settings.load.model_fields_set), CONFIG_LOAD)
    found = settings.model_override_for(key, file_name)
    if found is not None:
        name, override = found
        layer = override.load.model_dump(exclude_none=True)
        if override.chat_template_file is not None:
            layer["chat_template_file"] = override.chat_template_file
        apply(layer, f"[models.{_quoted(name)}]")
    problems: list[str] = []
    if remembered is not None:
        kept = remembered.get(key).model_dump(exclude_none=True)
        try:
            LoadConfig.model_validate({**values, **kept})
        except ValidationError as err:
            # Remembered values that no longer validate must not stop a load.
            problems.append(f"{remembered.path}: {key}: ignored: {one_line(err)}")
        else:
            apply(kept, REMEMBERED)
        problems = [*remembered.problems_for(key), *problems]
    if overrides:
        # Validated on their own first, so that a bad override names itself.
        apply(LoadConfig.model_validate(overrides).model_dump(exclude_unset=True), CALL)
    return LoadConfig.model_validate(values), sources, tuple(dict.fromkeys(problems))


def resolve_path(reference: str | Path | None, settings: Settings, data_dir: Path) -> Path:
    """The file a reference names: nothing means [model] default, else the starter model."""
    models = models_dir_of(data_dir)
    reference = str(reference) if reference else settings.model.default
    if not reference:
        return ensure_starter_model(models)
    try:
        return resolve_model(reference, settings.paths.model_dirs, models)
    except ModelNotFoundError:
        if reference == STARTER_KEY:
            # "gemma-3-270m" beside other 270M variants: the name means the starter.
            return ensure_starter_model(models)
        raise


def resolve_model(key_or_path: str, directories: Iterable[Path], models_dir: Path) -> Path:
    """A path as given, or the local model whose key best matches.

    Matching is case-insensitive: an exact key first, then a key that starts with
    the text, then one that contains it. The starter model is assembled on first use.
    """
    as_path = Path(key_or_path).expanduser()
    if as_path.name == STARTER_FILE and as_path.parent == models_dir and not as_path.exists():
        # The catalog lists the starter at the path its first load assembles it to.
        return ensure_starter_model(models_dir)
    if as_path.suffix == ".gguf" or os.sep in key_or_path or as_path.exists():
        return as_path
    wanted = key_or_path.lower()
    models = find_models([models_dir, *directories])
    matchers: list[Callable[[LocalModel], bool]] = [
        lambda m: m.key == wanted,
        lambda m: m.key.startswith(wanted),
        lambda m: wanted in m.key,
    ]
    for matches in ([m for m in models if match(m)] for match in matchers):
        if len(matches) == 1:
            return matches[0].path
        if len(matches) > 1:
            names = ", ".join(m.key for m in matches)
            raise ModelNotFoundError(f"{key_or_path!r} matches several models: {names}")
    if STARTER_KEY.startswith(wanted) or wanted in STARTER_FILE:
        return ensure_starter_model(models_dir)
    known = ", ".join(m.key for m in models) or "none"
    raise ModelNotFoundError(f"no local model matches {key_or_path!r} (local models: {known})")


def load_model(
    plan: LoadPlan,
    on_progress: Callable[[float], Any] | None = None,
    cancel: threading.Event | None = None,
) -> LoadedModel:
    """Load what `plan` says, blocking; `cancel` stops a load between tensors."""
    from engine.llama import LoadedModel

    return LoadedModel.load(
        plan.path, plan.load_config, key=plan.key, on_progress=on_progress, cancel=cancel
    )


async def load_model_async(
    plan: LoadPlan,
    on_progress: Callable[[float], Any] | None = None,
    cancel: threading.Event | None = None,
) -> LoadedModel:
    """`load_model` without blocking the event loop (llama.cpp loads on the model's thread)."""
    from engine.llama import LoadedModel

    return await LoadedModel.load_async(
        plan.path, plan.load_config, key=plan.key, on_progress=on_progress, cancel=cancel
    )


def _quoted(name: str) -> str:
    return f'"{name}"'
