"""Modals of the Models screen: a model's load settings, and adding a remote server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, get_args

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Select, Static

from engine.errors import ModelSettingsError
from engine.load_config import KvCacheType, LoadConfig
from engine.models.remembered import ModelSettingsStore
from engine.store import StoreError
from tui.screens.dialogs import DIALOG_CSS
from tui.widgets.state_checkbox import StateCheckbox

KV_TYPES: tuple[str, ...] = get_args(KvCacheType)


def _text(value: object) -> str:
    return "" if value is None else str(value)


class LoadSettingsScreen(ModalScreen[bool]):
    """Edit what is remembered for one model; dismisses with True when saved.

    Fields show the settings the model would load with now (config file plus what is
    remembered); saving remembers the ones that differ from the config file's.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="load_settings.save", tooltip="Remember these"),
        Binding("escape", "cancel", "Cancel", id="load_settings.cancel", tooltip="Change nothing"),
        Binding(
            "ctrl+r",
            "reset",
            "Reset",
            id="load_settings.reset",
            tooltip="Forget what is remembered for this model",
        ),
    ]

    DEFAULT_CSS = (
        "LoadSettingsScreen {"
        + DIALOG_CSS
        + """
        & > Vertical { width: 72; }
        Grid { grid-size: 2; grid-columns: 22 1fr; grid-rows: 1; grid-gutter: 0 1; height: auto; }
        Grid > Static { padding: 0 0; }
        Checkbox { border: none; padding: 0; height: 1; width: auto; }
        Select { height: 1; }
        #load-settings-error { color: $error; height: auto; }
    }"""
    )

    def __init__(
        self, store: ModelSettingsStore, key: str, base: LoadConfig, current: LoadConfig
    ) -> None:
        super().__init__()
        self.store = store
        self.key = key
        self.base = base
        """The config file's settings for this model: what is not remembered."""
        self.current = current

    def compose(self) -> ComposeResult:
        c = self.current
        with Vertical() as box:
            box.border_title = Content(f"Load settings: {self.key}")  # a file name
            with Grid():
                yield Static("context length")
                yield Input(_text(c.context_length), id="ls-context", type="integer", compact=True)
                yield Static("GPU layers (or max)")
                yield Input(_text(c.gpu_layers), id="ls-gpu", compact=True)
                yield Static("threads (0 = cores)")
                yield Input(_text(c.threads), id="ls-threads", type="integer", compact=True)
                yield Static("batch size")
                yield Input(_text(c.batch_size), id="ls-batch", type="integer", compact=True)
                yield Static("KV cache type")
                yield Select(
                    [(t, t) for t in KV_TYPES],
                    value=c.kv_cache_type,
                    allow_blank=False,
                    id="ls-kv",
                    compact=True,
                )
                yield Static("flash attention")
                yield StateCheckbox(value=c.flash_attention, id="ls-flash")
                yield Static("mmap")
                yield StateCheckbox(value=c.use_mmap, id="ls-mmap")
                yield Static("mlock")
                yield StateCheckbox(value=c.use_mlock, id="ls-mlock")
                yield Static("template override file")
                yield Input(
                    _text(c.chat_template_file), id="ls-template", placeholder="none", compact=True
                )
            yield Static("", id="load-settings-error")
            yield Static("ctrl+s save · ctrl+r forget · Escape cancel", classes="dialog--help")

    def on_mount(self) -> None:
        blink = getattr(self.app, "cursor_blink", True)
        for field in self.query(Input):
            field.cursor_blink = blink
        self.query_one("#ls-context", Input).focus()

    def values(self) -> dict[str, Any]:
        """The fields as load settings; raises ValueError for one that does not parse."""

        def number(widget_id: str, name: str) -> int:
            raw = self.query_one(widget_id, Input).value.strip()
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"{name}: a whole number, please") from None

        gpu_raw = self.query_one("#ls-gpu", Input).value.strip().lower()
        gpu: int | str = "max" if gpu_raw in ("max", "-1") else number("#ls-gpu", "GPU layers")
        template = self.query_one("#ls-template", Input).value.strip()
        return {
            "context_length": number("#ls-context", "context length"),
            "gpu_layers": gpu,
            "threads": number("#ls-threads", "threads"),
            "batch_size": number("#ls-batch", "batch size"),
            "kv_cache_type": self.query_one("#ls-kv", Select).value,
            "flash_attention": self.query_one("#ls-flash", Checkbox).value,
            "use_mmap": self.query_one("#ls-mmap", Checkbox).value,
            "use_mlock": self.query_one("#ls-mlock", Checkbox).value,
            "chat_template_file": template or None,
        }

    def action_save(self) -> None:
        try:
            values = self.values()
            # Only what differs from the config file is remembered, so a later change
            # there still applies to the rest.
            base = self.base.model_dump()
            changes = {k: (None if v == base.get(k) else v) for k, v in values.items()}
            self.store.remember(self.key, changes)
        except (ValueError, ModelSettingsError, StoreError) as err:
            self.query_one("#load-settings-error", Static).update(Content(str(err)))
            return
        self.dismiss(True)

    def action_reset(self) -> None:
        try:
            self.store.forget(self.key)
        except (OSError, StoreError) as err:
            self.query_one("#load-settings-error", Static).update(Content(str(err)))
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


@dataclass(frozen=True, slots=True)
class RemoteServer:
    base_url: str
    api_key: str | None


class AddRemoteScreen(ModalScreen[RemoteServer | None]):
    """Ask for an OpenAI-compatible server's URL and optional API key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="add_remote.cancel", tooltip="Add nothing"),
    ]

    DEFAULT_CSS = "AddRemoteScreen {" + DIALOG_CSS + "}"

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Add a remote server"
            yield Input(placeholder="http://host:1234/v1", id="remote-url", compact=True)
            yield Input(
                placeholder="API key (optional)", id="remote-key", password=True, compact=True
            )
            yield Static(
                "Enter adds · Tab goes to the API key · Escape cancels", classes="dialog--help"
            )

    def on_mount(self) -> None:
        blink = getattr(self.app, "cursor_blink", True)
        for field in self.query(Input):
            field.cursor_blink = blink
        self.query_one("#remote-url", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        # One Enter adds, from either field: the key is optional, and Tab reaches it.
        url = self.query_one("#remote-url", Input).value.strip()
        if not url:
            self.query_one("#remote-url", Input).focus()
            return
        key = self.query_one("#remote-key", Input).value.strip()
        self.dismiss(RemoteServer(url if "://" in url else f"http://{url}", key or None))

    def action_cancel(self) -> None:
        self.dismiss(None)
