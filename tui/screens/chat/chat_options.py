"""A chat's own options on the Chat screen: the settings dialog (system prompt,
sampling, thinking, tools) and the tools a reply offers the model.

The tools file is read again before each use (the person may have edited it); a new
problem in it is reported once. Only the settings the person changed from the
config's defaults are kept with the chat, so later edits of the config still apply.

This mixin declares below what it uses of the rest of the screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.prediction import PredictionConfig
from engine.tools import ToolDefinition, read_configured_tools, tools_path
from tui.screens.base import LlamatermScreen
from tui.screens.chat.chat_settings import ChatOptions, ChatSettingsScreen
from tui.store.saved_chats import SavedChat

if TYPE_CHECKING:
    from tui.screens.chat.reply_stream import ReplyInProgress
    from tui.widgets.chat.chat_view import ChatView


class ChatOptionsHandling(LlamatermScreen):
    """The Chat screen's settings dialog and tools (a mixin of `ChatScreen`)."""

    if TYPE_CHECKING:
        current: SavedChat
        chat_view: ChatView
        _defaults: PredictionConfig
        _reply: ReplyInProgress | None
        _tools: list[ToolDefinition]
        _tool_errors: list[str]
        _tool_warnings: list[str]

        def _save(self, saved: SavedChat) -> bool: ...

    def action_settings(self) -> None:
        saved = self.current
        self._reload_tools()

        async def apply(options: ChatOptions | None) -> None:
            if options is not None:
                await self._apply_settings(saved, options)

        self.app.push_screen(
            ChatSettingsScreen(
                saved.system_prompt,
                saved.prediction.merged_over(self._defaults),
                saved.tools,
                [tool.name for tool in self._tools],
                tools_file=self._tools_file(),
            ),
            apply,
        )

    async def _apply_settings(self, saved: SavedChat, options: ChatOptions) -> None:
        defaults = self._defaults.model_dump()
        changed = {
            name: value
            for name, value in options.config.model_dump(exclude_none=True).items()
            if defaults.get(name) != value
        }
        saved.prediction = PredictionConfig.model_validate(changed)
        saved.tools = options.tools
        prompt_changed = options.system_prompt != saved.system_prompt
        saved.system_prompt = options.system_prompt
        self._save(saved)
        if prompt_changed and saved is self.current and self._reply is None:
            await self.chat_view.show(saved, self.context.settings.ui.show_reasoning)
        if saved.tools.enabled and not self._tools_for(saved):
            self.notify("Tools are on, but there are none to offer.", severity="warning")

    def _tools_file(self) -> Path:
        """The tools file the app reads ([tools] file, else beside the config, else data)."""
        return tools_path(self.context.settings, self.context.data_dir)

    def _reload_tools(self) -> None:
        """Read the tools file again (it may have been edited); report new problems once:
        errors (a tool left out) as errors, warnings (loaded, but likely not meant) as
        warnings."""
        found = read_configured_tools(self.context.settings, self.context.data_dir)
        self._tools = found.tools
        if found.errors and found.errors != self._tool_errors:
            self.notify(
                "\n".join(found.errors), title="Tools file", severity="error", timeout=15
            )
        if found.warnings and found.warnings != self._tool_warnings:
            self.notify(
                "\n".join(found.warnings),
                title="Tools file warnings",
                severity="warning",
                timeout=15,
            )
        self._tool_errors = list(found.errors)
        self._tool_warnings = list(found.warnings)

    def _tools_for(self, saved: SavedChat) -> list[ToolDefinition]:
        if not saved.tools.enabled:
            return []
        self._reload_tools()
        names = saved.tools.names
        return [tool for tool in self._tools if names is None or tool.name in names]
