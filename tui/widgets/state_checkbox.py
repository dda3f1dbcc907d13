"""A checkbox whose state reads without colour: `[x] on` / `[ ] off`.

Textual's Checkbox draws `▐X▌` either way and tells on from off only by colour,
which a monochrome or 256-colour terminal (or a person who cannot tell the two
colours apart) does not show. This one draws `[x]` or `[ ]`, and with no label of
its own it says `on` or `off` beside the box.
"""

from __future__ import annotations

from textual.content import Content, ContentText
from textual.widgets import Checkbox

ON_TEXT = "on"
OFF_TEXT = "off"


class StateCheckbox(Checkbox):
    """A Checkbox drawn `[x]`/`[ ]`; without a label it reads `on`/`off`."""

    DEFAULT_CSS = """
    StateCheckbox {
        & > .toggle--button { background: transparent; color: $foreground-muted; }
        &.-on > .toggle--button { background: transparent; color: $text-success; text-style: bold; }
    }
    """

    def __init__(
        self,
        label: ContentText | None = None,
        value: bool = False,
        *,
        id: str | None = None,
        classes: str | None = None,
        compact: bool = True,
        tooltip: str | None = None,
    ) -> None:
        self._states_label = label is None
        super().__init__(
            ON_TEXT if label is None and value else OFF_TEXT if label is None else label,
            value,
            id=id,
            classes=classes,
            compact=compact,
            tooltip=tooltip,
        )

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.styled("[x]" if self.value else "[ ]", style)

    def watch_value(self) -> None:
        super().watch_value()
        # Set in __init__ after Textual's first set of the value.
        if getattr(self, "_states_label", False):
            self.label = ON_TEXT if self.value else OFF_TEXT
