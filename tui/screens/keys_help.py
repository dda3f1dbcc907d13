"""`?`: the keys of the screen in front, in a modal, with what each does.

The list is taken from the screen's active bindings when `?` is pressed, so it follows
the focus (the chat list's keys when it has the focus, a tool card's when one waits for
approval) and the keymap (rebound keys show as rebound). Keys hidden from the footer are
listed too. Everything shown is plain text, never markup: key names such as `[` and `/`
and descriptions naming files or models must read as written.

`?` is an ordinary binding of the app, so a text field that takes `?` as a character
(the message box, a search) types it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


@dataclass(frozen=True, slots=True)
class KeyRow:
    keys: str
    """The keys, as the footer writes them, joined by " / "."""
    description: str
    binding_id: str


def key_rows(screen: Screen[object]) -> list[KeyRow]:
    """One row per active, enabled binding of `screen` that has an id (its keys
    together), in the order the screen offers them: the focused widget's first, the
    app's last. Textual's own bindings without an id (scrolling, Tab) are left out:
    they work as everywhere, and would bury the app's keys at 24 lines."""
    app = screen.app
    grouped: dict[tuple[int, str], list[str]] = {}
    found: dict[tuple[int, str], Binding] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if not active.enabled or binding.system or not binding.id:
            continue
        group = (id(active.node), binding.action)
        keys = grouped.setdefault(group, [])
        shown = app.get_key_display(binding)
        if shown not in keys:
            keys.append(shown)
        found.setdefault(group, binding)
    rows = []
    for group, keys in grouped.items():
        binding = found[group]
        description = binding.tooltip or binding.description or binding.action
        rows.append(KeyRow(" / ".join(keys), description, binding.id or ""))
    return rows


def rows_content(rows: list[KeyRow]) -> Content:
    """The rows as plain text, one a line (what the modal shows, for reading in tests)."""
    lines = [Content.assemble((row.keys, "bold $accent"), "  ", row.description) for row in rows]
    return Content("\n").join(lines) if lines else Content("No keys here.")


class KeysScreen(ModalScreen[None]):
    """The keys of the screen below; Escape (or `?`, or q) closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,question_mark,q",
            "close",
            "Close",
            id="keys.close",
            tooltip="Close the list of keys",
        ),
    ]

    DEFAULT_CSS = """
    KeysScreen {
        align: center middle;
        & > Vertical {
            width: 90;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: round $primary;
            background: $surface;
            padding: 0 1;
        }
        & VerticalScroll { height: auto; max-height: 1fr; }
        & .keys--row { height: auto; }
        & .keys--key { width: 14; color: $accent; text-style: bold; }
        & .keys--what { width: 1fr; }
        & .keys--help { color: $text-muted; dock: bottom; }
    }
    """

    def __init__(self, screen_name: str, rows: list[KeyRow]) -> None:
        super().__init__()
        self.screen_name = screen_name
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = Content(f"Keys: {self.screen_name}")
            with VerticalScroll(id="keys-list"):
                for row in self.rows:
                    # Content, not markup: "[" and "/" are keys here.
                    with Horizontal(classes="keys--row"):
                        yield Static(Content(row.keys), classes="keys--key")
                        yield Static(Content(row.description), classes="keys--what")
                if not self.rows:
                    yield Static("No keys here.")
            yield Static(
                "Ctrl+P finds every command by name · Escape closes", classes="keys--help"
            )

    def action_close(self) -> None:
        self.dismiss(None)
