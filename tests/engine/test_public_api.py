"""The names people import keep importing while modules move inside the engine."""

from __future__ import annotations

import importlib

import engine


def test_every_name_in_engine_all_imports() -> None:
    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert not missing, missing


def test_names_outside_all_that_scripts_use() -> None:
    assert importlib.import_module("engine.remote").RemoteModel
    assert callable(engine.parse_output)


def test_every_engine_error_is_an_engine_error() -> None:
    from engine import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.EngineError), name
