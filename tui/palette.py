"""Command palette entries, all named "category: verb".

Most commands come from bindings: a binding with id "complete.generate" is the
command "complete: generate", with the binding's tooltip as help. So every
action with a key is in the palette, and the palette follows the screen (a
screen's bindings exist only on that screen, and `check_action` hides what does
not apply now). Commands with no key (one per theme, one per local model) are
added here.

The palette reads titles and help as Textual markup: everything put in them here
is escaped or plain `Content`, for key names (`/`, `[`), file names and chat titles
are not markup ("[/]" in one ended the app).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from functools import partial

from textual.app import SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content
from textual.markup import escape
from textual.screen import Screen

from engine.models.catalog import LocalModel, find_models
from tui.app_messages import LoadModelRequested
from tui.screens.base import LlamatermScreen


def command_title(binding_id: str) -> str:
    """The palette title of a binding id: `complete.generate` -> `complete: generate`."""
    category, _, verb = binding_id.partition(".")
    return f"{category}: {verb.replace('_', ' ')}"


def binding_help(binding: Binding, key_display: str) -> str:
    """The palette help of a binding, as markup that reads as written: its tooltip and key."""
    return escape(f"{binding.tooltip or binding.description}  [{key_display}]")


def plain_command(command: SystemCommand) -> SystemCommand:
    """`command` with its title and help escaped, so that they read as written."""
    return SystemCommand(
        escape(command.title), escape(command.help), command.callback, command.discover
    )


def highlight_plain(matcher: Matcher, text: str) -> Content:
    """`text` as it is, the characters that match the palette's query highlighted
    (`Matcher.highlight` would read `text` as markup)."""
    content = Content(text)
    _, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def binding_commands(screen: Screen[object]) -> Iterable[SystemCommand]:
    """A command for each binding with an id that is active and enabled on `screen`."""
    app = screen.app
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.id or "." not in binding.id or binding.id in seen or not active.enabled:
            continue
        seen.add(binding.id)
        yield SystemCommand(
            command_title(binding.id),
            binding_help(binding, app.get_key_display(binding)),
            partial(app.run_action, binding.action, active.node),
        )


class ModelCommands(Provider):
    """A `model: load <key>` command for every local model, found when the palette opens."""

    async def startup(self) -> None:
        # The screen the palette opened over; a dialog has no context, and no model list.
        screen = self.screen
        dirs = screen.context.model_dirs() if isinstance(screen, LlamatermScreen) else []
        self.models: list[LocalModel] = await asyncio.to_thread(find_models, dirs)

    def _commands(self) -> list[tuple[str, str, str]]:
        return [
            (f"model: load {model.key}", str(model.path), str(model.path)) for model in self.models
        ]

    def _load(self, path: str) -> Callable[[], None]:
        def load() -> None:
            self.app.post_message(LoadModelRequested(path))

        return load

    async def discover(self) -> Hits:
        for title, help_text, path in self._commands():
            yield DiscoveryHit(Content(title), self._load(path), text=title, help=escape(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, path in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    highlight_plain(matcher, title),
                    self._load(path),
                    text=title,
                    help=escape(help_text),
                )
