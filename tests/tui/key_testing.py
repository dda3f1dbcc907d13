"""Typing as a terminal delivers it: keys sent together, not one per idle app (see `burst`)."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.keys import Keys
from textual.pilot import Pilot
from tui_testing import wait_until


def key_event(key: str) -> events.Key:
    """The event a terminal driver makes for `key` (a character or a key name)."""
    character = key if len(key) == 1 else _CHARACTERS.get(key)
    return events.Key(key, character)


async def burst(pilot: Pilot[Any], *keys: str) -> None:
    """Send `keys` the way they arrive over SSH or from `tmux send-keys`: all at once.

    `Pilot.press` waits for the app to be idle after every key, so keys never
    arrive while the one before is still being handled; a terminal does not wait.
    A key given as a string of several characters that is not a key name is typed
    character by character ("hello"). Returns once every key has been handled.
    """
    app = pilot.app
    driver = app._driver  # noqa: SLF001 - the place a terminal's keys arrive
    assert driver is not None
    for key in keys:
        for one in _split(key):
            event = key_event(one)
            event.set_sender(app)
            driver.send_message(event)
    await pilot.pause()
    await wait_until(pilot, lambda: getattr(app, "keys_waiting", 0) == 0)
    await pilot.pause()


def _split(key: str) -> list[str]:
    """One key if `key` names one ("backspace", "ctrl+u", "slash"), else its characters."""
    if len(key) == 1 or "+" in key or key in _KEY_NAMES:
        return [key]
    return list(key)


_CHARACTERS = {"space": " ", "slash": "/", "question_mark": "?", "left_square_bracket": "["}
"""Printable keys a terminal names (Textual's driver sends `?` as "question_mark")."""

_KEY_NAMES = {key.value for key in Keys} | set(_CHARACTERS) | {
    "backslash", "enter", "backspace", "tab", "escape", "delete",
}
