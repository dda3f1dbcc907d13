"""Remembered settings: the load settings a person chose per model, in `<data>/model_settings.json`.

A person who picks a context length or a GPU split for a model in the app should get
it again next time. Those choices live here, not in the config file (which llamaterm
never writes), and apply over it: [load] < [models."<key>".load] < remembered.

The file is re-read on every call, so two llamaterm processes see each other's
changes; writes are atomic. A file that does not parse, or is not a model settings
file at all, is set aside (see engine.store) and reported in `problems`, never
overwritten. What a file holds that this version does not understand (an entry that
does not validate, settings or tables of a newer version) is reported, not applied,
and written back as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from engine.errors import ModelSettingsError
from engine.load_config import CheckedPath, LoadConfig
from engine.settings import LoadOverride, Settings
from engine.store import StoreError, atomic_write_json, quarantine, read_json_or_quarantine

SCHEMA_VERSION = 1
FILE_NAME = "model_settings.json"

_log = logging.getLogger("llamaterm.model_settings")


class RememberedLoad(LoadOverride):
    """The load settings remembered for one model; unset fields come from the config."""

    chat_template_file: CheckedPath | None = Field(default=None, alias="chatTemplateFile")
    """A Jinja chat template to use instead of the one in the GGUF."""

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)


_KNOWN = frozenset(
    name for key, info in RememberedLoad.model_fields.items() for name in (key, info.alias) if name
)
"""Setting names (and aliases) this version understands."""


@dataclass
class _Contents:
    """The file as read: what applies, and what is kept to be written back untouched."""

    models: dict[str, RememberedLoad] = field(default_factory=dict)
    unknown: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per model, the settings this version does not know (a newer version's)."""
    invalid: dict[str, Any] = field(default_factory=dict)
    """Entries that do not validate, as they were in the file."""
    tables: dict[str, Any] = field(default_factory=dict)
    """The file's other top-level keys."""
    version: int = SCHEMA_VERSION


class ModelSettingsStore:
    """Remembered load settings, keyed by catalog key."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self.problems: list[str] = []
        """What went wrong reading the file (set aside, unreadable, bad entries)."""
        self._entry_problems: dict[str, list[str]] = {}

    def problems_for(self, key: str) -> list[str]:
        """The problems that concern loading `key`: the file's own, and its entry's."""
        others = {p for k, found in self._entry_problems.items() if k != key for p in found}
        return [p for p in self.problems if p not in others]

    def get(self, key: str) -> RememberedLoad:
        """What is remembered for `key` (empty when nothing is)."""
        return self._read().get(key, RememberedLoad())

    def all(self) -> dict[str, RememberedLoad]:
        return self._read()

    def remember(self, key: str, changes: Mapping[str, Any] | RememberedLoad) -> RememberedLoad:
        """Merge `changes` into what is remembered for `key` and save.

        Keys may be snake_case or LM Studio's camelCase; a value of None forgets that
        setting. Raises ModelSettingsError for an invalid value, leaving the file as it was.
        """
        if isinstance(changes, RememberedLoad):
            update = changes.model_dump(exclude_none=True)
            cleared: set[str] = set()
        else:
            update, cleared = _normalise(changes)
        contents = self._load()
        models = contents.models
        merged = models.get(key, RememberedLoad()).model_dump(exclude_none=True)
        merged.update(update)
        for name in cleared:
            merged.pop(name, None)
        try:
            remembered = RememberedLoad.model_validate(merged)
            LoadConfig.model_validate(_load_values(LoadConfig(), remembered))
        except ValidationError as err:
            raise ModelSettingsError(one_line(err)) from None
        if remembered.is_empty():
            models.pop(key, None)
        else:
            models[key] = remembered
        # What the person chose now replaces an entry that did not validate.
        contents.invalid.pop(key, None)
        self._write(contents)
        return remembered

    def forget(self, key: str) -> None:
        """Drop everything remembered for `key`."""
        contents = self._load()
        parts: list[dict[str, Any]] = [contents.models, contents.unknown, contents.invalid]
        # A list, not a generator: every part must lose the key, not only the first found.
        if any([part.pop(key, None) is not None for part in parts]):
            self._write(contents)

    def load_config(self, settings: Settings, key: str, file_name: str = "") -> LoadConfig:
        """The LoadConfig to load `key` with: the config file's settings for it, with what
        is remembered on top (engine.models.loader stacks the layers)."""
        from engine.models.loader import layered_load_config

        config, _, problems = layered_load_config(settings, key, file_name, remembered=self)
        for problem in problems:
            self._report(problem)
        return config

    def _read(self) -> dict[str, RememberedLoad]:
        return self._load().models

    def _load(self) -> _Contents:
        data, error = read_json_or_quarantine(self.path)
        if error is not None:
            self._report(error)
            return _Contents()
        if data is None and not self.path.exists():
            return _Contents()
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            # Not ours, or damaged: set it aside so that the next save cannot destroy it.
            self._set_aside("not a model settings file")
            return _Contents()
        version = data.get("schema_version")
        contents = _Contents(
            tables={k: v for k, v in data.items() if k not in ("schema_version", "models")},
            # A newer version's file stays one: its entries are written back as they were.
            version=max(version, SCHEMA_VERSION) if type(version) is int else SCHEMA_VERSION,
        )
        for key, values in data["models"].items():
            self._load_entry(contents, key, values)
        return contents

    def _load_entry(self, contents: _Contents, key: str, values: Any) -> None:
        original = values
        if isinstance(values, dict):
            unknown = {name: value for name, value in values.items() if name not in _KNOWN}
            values = {name: value for name, value in values.items() if name in _KNOWN}
            if unknown:
                contents.unknown[key] = unknown
                names = ", ".join(sorted(unknown))
                self._report(f"{self.path}: {key}: {names}: not known to this version; kept")
        try:
            contents.models[key] = RememberedLoad.model_validate(values)
        except ValidationError as err:
            problem = f"{self.path}: {key}: ignored: {one_line(err)}"
            self._entry_problems.setdefault(key, []).append(problem)
            self._report(problem)
            contents.unknown.pop(key, None)
            contents.invalid[key] = original

    def _set_aside(self, problem: str) -> None:
        try:
            aside = quarantine(self.path)
        except OSError as err:
            self._report(f"{self.path}: {problem}; could not set it aside: {err.strerror or err}")
            return
        self._report(f"{self.path}: {problem}; set aside as {aside.name}")

    def _write(self, contents: _Contents) -> None:
        if self.path.exists() and self._unreadable():
            raise StoreError(f"{self.path}: cannot be read; not overwriting it")
        models: dict[str, Any] = dict(contents.invalid)
        for key in contents.unknown.keys() | contents.models.keys():
            known = contents.models.get(key)
            dumped = known.model_dump(mode="json", exclude_none=True) if known else {}
            models[key] = {**contents.unknown.get(key, {}), **dumped}
        payload = {
            **contents.tables,
            "schema_version": contents.version,
            "models": dict(sorted(models.items())),
        }
        atomic_write_json(self.path, payload)

    def _unreadable(self) -> bool:
        try:
            self.path.read_bytes()
        except OSError:
            return True
        return False

    def _report(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)
            _log.warning("%s", message)


def _normalise(changes: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Aliases to field names; None values become names to forget."""
    aliases = {
        field.alias: name for name, field in RememberedLoad.model_fields.items() if field.alias
    }
    update: dict[str, Any] = {}
    cleared: set[str] = set()
    for raw_name, value in changes.items():
        name = aliases.get(raw_name, raw_name)
        if name not in RememberedLoad.model_fields:
            raise ModelSettingsError(f"unknown load setting {raw_name!r}")
        if value is None:
            cleared.add(name)
        else:
            update[name] = value
    return update, cleared


def _load_values(base: LoadConfig, remembered: RememberedLoad) -> dict[str, Any]:
    values = base.model_dump()
    values.update(remembered.model_dump(exclude_none=True))
    return values


def one_line(err: ValidationError) -> str:
    """A validation error as one line: `field: problem; field: problem`."""
    problems = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(dict.fromkeys(problems))
