"""The app around the screens: model loading, themes, keymap, command palette."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

from textual.command import CommandList
from tui_testing import TERMINAL_SIZE, wait_for_model, wait_for_prediction, wait_until

from tui.app import LlamatermApp, known_binding_ids
from tui.palette import binding_commands, command_title
from tui.screens.complete.complete_screen import CompleteScreen
from tui.widgets.status.model_status import ModelStatus

MakeApp = Callable[..., LlamatermApp]


def failed(app: LlamatermApp) -> bool:
    return app.model_state.status == "failed"


def status_text(app: LlamatermApp) -> str:
    return str(app.screen.query_one("#model-text").render())


async def test_opens_on_the_model_asked_for_and_remembers_it(
    make_app: MakeApp, isolated: Path, tiny_model_path: Path
) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        assert app.model is not None
        assert "ctx 512" in status_text(app)
    state = json.loads((isolated / "state.json").read_text())
    assert state["last_model"] == str(tiny_model_path)

    # No model given, none configured: the last one used.
    app = make_app(model=None)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        assert app.model is not None and app.model.path == tiny_model_path


async def test_a_missing_or_corrupt_model_is_reported_and_the_app_works_on(
    make_app: MakeApp, tmp_path: Path
) -> None:
    for bad in (tmp_path / "missing.gguf", tmp_path / "corrupt.gguf"):
        if bad.name == "corrupt.gguf":
            bad.write_bytes(b"not a model at all")
        app = make_app(model=str(bad))
        async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
            await wait_until(pilot, partial(failed, app))
            assert app.model is None
            errors = [n for n in app._notifications if n.severity == "error"]
            assert errors and bad.name in errors[0].message
            assert "could not load" in status_text(app)
            await pilot.press("f4", "f3", "f2")
            await pilot.press(*"still typing")
            screen = app.screen
            assert isinstance(screen, CompleteScreen)
            assert screen.complete_area.text.endswith("still typing")


async def test_loading_shows_an_indicator(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        status = app.screen.query_one(ModelStatus)
        if app.model_state.status == "loading":
            assert status.has_class("-loading")
        await wait_for_model(pilot)
        assert not status.has_class("-loading")


async def test_themes_are_registered_and_the_choice_persists(
    make_app: MakeApp, isolated: Path
) -> None:
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        assert app.theme == "llamaterm-dark"
        for name in ("llamaterm-light", "llamaterm-256", "llamaterm-contrast"):
            assert name in app.available_themes
        app.theme = "llamaterm-light"
        await pilot.pause()
        assert app.theme_variables["generated-text"] == "#1a7f37"
    assert json.loads((isolated / "state.json").read_text())["theme"] == "llamaterm-light"
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE):
        assert app.theme == "llamaterm-light"


async def test_a_broken_theme_file_is_reported_in_one_notification(
    make_app: MakeApp, tmp_path: Path
) -> None:
    user_themes = tmp_path / "config" / "llamaterm" / "themes"
    user_themes.mkdir(parents=True)
    (user_themes / "broken.toml").write_text("name = ")
    (user_themes / "half.toml").write_text('name = "half"\n[colors]\nprimary = "red"\n')
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await pilot.pause()
        theme_notes = [n for n in app._notifications if "theme file" in n.title]
        assert len(theme_notes) == 1
        assert "broken.toml" in theme_notes[0].message and "half.toml" in theme_notes[0].message
        assert theme_notes[0].title == "2 theme files not loaded"
        assert app.theme == "llamaterm-dark"


async def test_keymap_from_the_config_rebinds_by_id(make_app: MakeApp) -> None:
    app = make_app(keymap={"complete.generate": "ctrl+r", "screen.logs": "f8", "no.such": "x"})
    async with app.run_test(size=TERMINAL_SIZE, notifications=True) as pilot:
        await wait_for_model(pilot)
        assert any("no.such" in n.message for n in app._notifications)
        screen = app.screen
        assert isinstance(screen, CompleteScreen)
        screen.complete_area.load_text("Rebound")
        await pilot.press("ctrl+r")
        await wait_for_prediction(pilot)
        assert screen.complete_area.generated_spans
        await pilot.press("f8")
        assert app.current_mode == "logs"


def test_every_binding_has_an_id_and_a_tooltip() -> None:
    from tui.app import LlamatermApp as App
    from tui.screens.chat.chat_screen import ChatScreen
    from tui.screens.logs.logs_screen import LogRecordScreen, LogsScreen
    from tui.screens.models.models_screen import ModelsScreen
    from tui.screens.prediction_settings import PredictionSettingsScreen

    for cls in (
        App,
        ChatScreen,
        CompleteScreen,
        ModelsScreen,
        LogsScreen,
        LogRecordScreen,
        PredictionSettingsScreen,
    ):
        for binding in cls.__dict__.get("BINDINGS", []):
            assert binding.id and "." in binding.id, (cls.__name__, binding)  # type: ignore[union-attr]
            assert binding.tooltip, (cls.__name__, binding)  # type: ignore[union-attr]
    assert {"complete.generate", "complete.stop", "logs.save", "models.load", "screen.chat"} <= (
        known_binding_ids()
    )


async def test_palette_commands_are_category_verb_and_follow_the_screen(make_app: MakeApp) -> None:
    assert command_title("complete.generate") == "complete: generate"
    app = make_app()
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await wait_for_model(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in (
            "complete: generate",
            "complete: settings",
            "complete: terminal",
            "screen: logs",
            "model: unload",
            "theme: llamaterm-light",
            "app: quit",
        ):
            assert title in titles, title
        assert "complete: stop" not in titles, "stop only while generating"
        assert all(": " in title for title in titles)

        await pilot.press("f4")
        titles = [command.title for command in binding_commands(app.screen)]
        assert "logs: save" in titles and "complete: generate" not in titles

        # Running a command runs the binding's action.
        command = next(
            c for c in app.get_system_commands(app.screen) if c.title == "screen: models"
        )
        await command.callback()  # type: ignore[misc]
        await pilot.pause()
        assert app.current_mode == "models"
        command = next(
            c for c in app.get_system_commands(app.screen) if c.title == "theme: llamaterm-256"
        )
        command.callback()
        assert app.theme == "llamaterm-256"


async def test_palette_loads_a_local_model_by_key(
    make_app: MakeApp, isolated: Path, tiny_model_path: Path
) -> None:
    models = isolated / "models"
    models.mkdir(parents=True)
    (models / "palette-model.gguf").symlink_to(tiny_model_path)
    app = make_app(autoload=False)
    async with app.run_test(size=TERMINAL_SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"model: load palette")
        commands = app.screen.query_one(CommandList)
        await wait_until(pilot, lambda: commands.option_count > 0)
        first = str(commands.get_option_at_index(0).prompt)
        assert "model: load palette-model" in first
        await pilot.press("down", "enter")
        await wait_for_model(pilot)
        assert app.model is not None and app.model.path.name == "palette-model.gguf"


async def test_the_gil_switch_interval_is_short_while_the_app_runs(make_app: MakeApp) -> None:
    import sys

    from tui.app import UI_SWITCH_INTERVAL

    before = sys.getswitchinterval()
    assert before > UI_SWITCH_INTERVAL  # Python's default, 5 ms
    app = make_app(autoload=False)
    async with app.run_test():
        assert sys.getswitchinterval() == UI_SWITCH_INTERVAL
    assert sys.getswitchinterval() == before
