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
from textual.containers import Vertical, VerticalScroll
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
    """One row per active, enabled binding of `screen` (its keys together), in the
    order the screen offers them: the focused widget's first, the app's last."""
    app = screen.app
    grouped: dict[tuple[int, str], list[str]] = {}
    found: dict[tuple[int, str], Binding] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        if not active.enabled or binding.system:
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
    """The rows as plain text in two columns, keys stressed."""
    width = min(18, max((len(row.keys) for row in rows), default=0))
    lines = []
    for row in rows:
        lines.append(
            Content.assemble(
                (row.keys.ljust(width), "bold $accent"),
                "  ",
                row.description,
            )
        )
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
        & .keys--help { color: $text-muted; }
    }
    """

    def __init__(self, screen_name: str, rows: list[KeyRow]) -> None:
        super().__init__()
        self.screen_name = screen_name
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = Content(f"Keys: {self.screen_name}")
            with VerticalScroll():
                yield Static(rows_content(self.rows), id="keys-list")
            yield Static(
                "Ctrl+P finds every command by name · Escape closes", classes="keys--help"
            )

    def action_close(self) -> None:
        self.dismiss(None)
