"""The Models screen: the local catalog with details and a memory check, per-model load
settings, Hugging Face Hub search and downloads, and models of remote servers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, Static

from engine.load_config import LoadConfig
from engine.models.catalog import CatalogEntry, default_sources, scan_catalog
from engine.models.memory import FitReport, MemorySnapshot, fit_check, format_bytes, probe_memory
from engine.models.remembered import ModelSettingsStore
from engine.models.starter import STARTER_KEY
from engine.paths import models_dir
from engine.remote import RemoteError, RemoteModel, RemoteSource
from tui.app_messages import (
    CancelModelLoadRequested,
    LoadModelRequested,
    UnloadModelRequested,
)
from tui.context import AppContext
from tui.model_state import ModelState
from tui.screens.base import LlamatermScreen
from tui.screens.dialogs import ConfirmScreen
from tui.screens.models.model_dialogs import AddRemoteScreen, LoadSettingsScreen, RemoteServer
from tui.widgets.models.model_details import (
    ModelDetails,
    entry_lines,
    format_count,
    remote_lines,
    traits,
)
from tui.widgets.models.model_hub import HubBrowser
from tui.wording import plural


def format_size(size: int) -> str:
    return format_bytes(size)


def display_path(path: Path, data_dir: Path) -> str:
    """A path inside the data directory as `data/...`: shorter, and the same on every machine."""
    try:
        return f"data/{path.relative_to(data_dir)}"
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True)
class ModelRow:
    key: str
    path: Path | None
    """None for remote models; for the starter before its first load, where that puts it."""
    size: str
    where: str
    entry: CatalogEntry | None = None
    remote: RemoteModel | None = None


STARTER_WHERE = "starter: assembled when loaded"


def entry_row(entry: CatalogEntry, data_dir: Path) -> ModelRow:
    where = STARTER_WHERE if entry.source == "starter" else display_path(entry.path, data_dir)
    return ModelRow(entry.key, entry.path, format_size(entry.size_bytes), where, entry=entry)


class ModelsScreen(LlamatermScreen):
    MODE = "models"

    memory_probe = staticmethod(probe_memory)
    """How free memory is measured; tests put a fixed snapshot here."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "l",
            "load",
            "Load",
            id="models.load",
            tooltip="Load the selected model (Enter does too)",
        ),
        Binding("u", "unload", "Unload", id="models.unload", tooltip="Unload the loaded model"),
        Binding(
            "e",
            "settings",
            "Settings",
            id="models.settings",
            tooltip="Edit the selected model's load settings (remembered per model)",
        ),
        Binding(
            "r",
            "refresh",
            "Refresh",
            id="models.refresh",
            tooltip="Scan the model directories again",
        ),
        Binding(
            "h",
            "toggle_hub",
            "Hub",
            id="models.hub",
            tooltip="Switch between local models and Hugging Face Hub search",
        ),
        Binding("/", "search", "Search", id="models.search", tooltip="Search the Hugging Face Hub"),
        Binding(
            "d",
            "download",
            "Download",
            id="models.download",
            tooltip="Download the selected Hub file (resumes a cancelled one)",
        ),
        Binding(
            "backspace",
            "hub_back",
            "Back",
            id="models.hub_back",
            tooltip="Back from a repository's files to the search results",
        ),
        Binding(
            "a",
            "add_remote",
            "Remote",
            id="models.add_remote",
            tooltip="Add an OpenAI-compatible server whose models to list",
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="models.cancel",
            tooltip="Cancel the download or the model being loaded",
        ),
    ]

    DEFAULT_CSS = """
    ModelsScreen {
        #models-switcher { height: 1fr; }
        #models-local { height: 1fr; }
        #models-table { height: 1fr; }
        #models-details-box { height: 12; border-top: solid $primary-muted; padding: 0 1; }
        #models-hint { height: 1; padding: 0 1; color: $text-muted; }
    }
    """

    @dataclass
    class RemoteModelChosen(Message):
        """The person chose a remote model; the app makes it its model."""

        model: RemoteModel

    def __init__(self, context: AppContext) -> None:
        super().__init__(context)
        self.rows: list[ModelRow] = []
        self.problems: list[str] = []
        self.memory: MemorySnapshot | None = None
        self.remote_sources: list[RemoteSource] = []
        self.remote_models: dict[str, list[RemoteModel]] = {}
        self.remote_errors: dict[str, str] = {}

    def compose_body(self) -> ComposeResult:
        data_models = models_dir(self.context.data_dir)
        with ContentSwitcher(initial="models-local", id="models-switcher"):
            with Vertical(id="models-local"):
                yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="models-details-box"):
                    yield ModelDetails(id="models-details")
            yield HubBrowser(data_models, id="models-hub")
        yield Static("", id="models-hint")

    @property
    def store(self) -> ModelSettingsStore:
        return ModelSettingsStore(self.context.data_dir)

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#models-table", DataTable)

    @property
    def hub(self) -> HubBrowser:
        return self.query_one(HubBrowser)

    def on_mount(self) -> None:
        # LlamatermScreen.on_mount runs too: Textual calls each class's handler.
        self.remote_sources = [
            RemoteSource(remote.base_url, remote.api_key, remote.name)
            for remote in self.context.settings.remotes
        ]
        table = self.table
        for key, label in (
            ("mark", " "),
            ("model", "model"),
            ("params", "params"),
            ("quant", "quant"),
            ("size", "size"),
            ("context", "ctx"),
            ("traits", "kind"),
            ("where", "where"),
        ):
            table.add_column(label, key=key)
        self.watch(self.app, "model_state", self._mark_loaded, init=False)
        self.action_refresh()
        table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        hub_shown = self._hub_shown()
        if action in ("download", "hub_back"):
            return hub_shown
        if action in ("load", "settings"):
            return not hub_shown
        if action == "unload":
            return True if self.context.model_state.status == "loaded" else None
        if action == "cancel":
            return self.context.model_state.status == "loading" or self.hub.downloading
        return True

    def _hub_shown(self) -> bool:
        return self.query_one(ContentSwitcher).current == "models-hub"

    # --- the catalog ------------------------------------------------------------

    def action_refresh(self) -> None:
        self._scan()
        for source in self.remote_sources:
            self._list_remote(source)

    @work(exclusive=True, group="models-scan", exit_on_error=False)
    async def _scan(self) -> None:
        context = self.context
        # With the starter while its first load has not assembled it into models/.
        sources = default_sources(
            models_dir(context.data_dir), context.settings.paths.model_dirs, starter=True
        )
        scan, memory = await asyncio.gather(
            asyncio.to_thread(scan_catalog, sources), asyncio.to_thread(type(self).memory_probe)
        )
        self.memory = memory
        self.problems = scan.problems
        self.show_rows(scan.entries)

    def show_rows(self, entries: list[CatalogEntry]) -> None:
        data_dir = self.context.data_dir
        # The person's own models first, the starter after them.
        ordered = sorted(entries, key=lambda e: (e.source == "starter", e.key))
        rows = [entry_row(e, data_dir) for e in ordered]
        for source in self.remote_sources:
            for model in self.remote_models.get(source.base_url, []):
                rows.append(
                    ModelRow(model.model_id, None, "", f"remote: {model.base_url}", remote=model)
                )
        selected = self.selected_row()
        self.rows = rows
        table = self.table
        table.clear()
        for index, row in enumerate(rows):
            # Escaped: a table reads str cells as Rich markup, and "[/]x.gguf" is a file name.
            table.add_row(*(escape(cell) for cell in self._cells(row)), key=str(index))
        if selected is not None:
            again = next((i for i, r in enumerate(rows) if r.key == selected.key), None)
            if again is not None:
                table.move_cursor(row=again)
        self._mark_loaded(self.context.model_state)
        self._show_hint()
        self.show_details()

    def _cells(self, row: ModelRow) -> tuple[str, ...]:
        entry = row.entry
        if entry is None:
            return ("", row.key, "", "", row.size, "", "", row.where)
        if entry.error:
            return ("", row.key, "", "", row.size, "", "", f"⚠ {entry.error}"[:60])
        return (
            "",
            entry.display_name,
            entry.size_label or format_count(entry.parameter_count),
            entry.quantization or "",
            row.size,
            str(entry.context_length or ""),
            traits(entry),
            row.where,
        )

    def _show_hint(self) -> None:
        if self._hub_shown():
            text = "h local models · / search · Enter open/download · Escape cancels a download"
        else:
            dirs = ", ".join(
                display_path(d, self.context.data_dir) for d in self.context.model_dirs()
            )
            broken = sum(1 for r in self.rows if r.entry is not None and r.entry.error)
            remote_errors = "; ".join(f"{u}: {e}" for u, e in self.remote_errors.items())
            text = plural(len(self.rows), "model") if self.rows else f"No .gguf files in {dirs}"
            if broken:
                text += f" · {broken} unreadable"
            text += " · e settings · h Hub"
            if remote_errors:
                text = f"remote: {remote_errors}"
        self.query_one("#models-hint", Static).update(Content(text))  # paths, server errors

    def _mark_loaded(self, state: ModelState) -> None:
        self.refresh_bindings()
        table = self.table
        loaded = Path(state.path).resolve() if state.status == "loaded" and state.path else None
        model = self.context.model
        remote = model if model is not None and model.is_remote else None
        for index, row in enumerate(self.rows):
            if row.remote is not None:
                mark = remote is not None and (remote.location, remote.key) == (
                    row.remote.location,
                    row.remote.key,
                )
            else:
                mark = loaded is not None and row.path is not None and row.path.resolve() == loaded
            table.update_cell(str(index), "mark", "●" if mark else "")

    def selected_row(self) -> ModelRow | None:
        if not self.is_mounted or not self.rows:
            return None
        cursor = self.table.cursor_row
        if not 0 <= cursor < len(self.rows):
            return None
        return self.rows[cursor]

    # --- details and the memory check -------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "models-table":
            event.stop()
            self.show_details()

    def load_configs(self, entry: CatalogEntry) -> tuple[LoadConfig, LoadConfig]:
        """(the config file's settings for `entry`, those with what is remembered on top)."""
        settings = self.context.settings
        base = settings.load_config_for(entry.key, entry.path.name)
        return base, self.store.load_config(settings, entry.key, entry.path.name)

    def fit_report(self, entry: CatalogEntry) -> FitReport | None:
        if self.memory is None or entry.error or entry.shape is None:
            return None
        return fit_check(entry, self.load_configs(entry)[1], self.memory)

    def show_details(self) -> None:
        row = self.selected_row()
        details = self.query_one(ModelDetails)
        if row is None:
            details.lines = ()
        elif row.remote is not None:
            details.lines = tuple(remote_lines(row.remote))
        elif row.entry is None:
            details.lines = (f"[b]{row.key}[/b]", row.where)
        else:
            report = self.fit_report(row.entry)
            details.lines = tuple(entry_lines(row.entry, report, row.where))

    # --- load, unload, settings -------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "models-table":
            event.stop()
            self.action_load()

    def action_load(self) -> None:
        row = self.selected_row()
        if row is None:
            self.notify("No model selected.", severity="warning")
            return
        if row.remote is not None:
            self.post_message(self.RemoteModelChosen(row.remote))
            return
        starter = row.path is None or (row.entry is not None and row.entry.source == "starter")
        # The loader assembles the starter from its packages on the way.
        path = STARTER_KEY if starter else str(row.path)
        report = self.fit_report(row.entry) if row.entry is not None else None
        if report is None or report.fits:
            self.post_message(LoadModelRequested(path))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(LoadModelRequested(path))

        self.app.push_screen(
            ConfirmScreen(
                "Not enough memory",
                f"{row.key} {report.summary()}.\n\nLoad it anyway? (e changes its settings)",
            ),
            answered,
        )

    def action_unload(self) -> None:
        self.post_message(UnloadModelRequested())

    def action_settings(self) -> None:
        row = self.selected_row()
        if row is None or row.entry is None:
            self.notify("Load settings are for local model files.", severity="warning")
            return
        base, current = self.load_configs(row.entry)

        def saved(changed: bool | None) -> None:
            if changed:
                self.show_details()
                self.notify(f"Load settings for {row.key} remembered.")

        self.app.push_screen(LoadSettingsScreen(self.store, row.key, base, current), saved)

    def action_cancel(self) -> None:
        if self.hub.cancel_download():
            return
        self.post_message(CancelModelLoadRequested())

    # --- the Hub ----------------------------------------------------------------

    def action_toggle_hub(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "models-local" if self._hub_shown() else "models-hub"
        if self._hub_shown():
            self.hub.focus_search()
        else:
            self.table.focus()
        self._show_hint()
        self.refresh_bindings()

    def action_search(self) -> None:
        if not self._hub_shown():
            self.action_toggle_hub()
        self.hub.focus_search()

    def action_download(self) -> None:
        self.hub.download_selected()

    def action_hub_back(self) -> None:
        self.hub.back()

    def on_hub_browser_downloaded(self, message: HubBrowser.Downloaded) -> None:
        self.notify(f"Downloaded {message.path.name}.", title="Hub")
        self._scan()

    # --- remote servers ---------------------------------------------------------

    def action_add_remote(self) -> None:
        def added(server: RemoteServer | None) -> None:
            if server is None:
                return
            source = RemoteSource(server.base_url, server.api_key)
            self.remote_sources = [s for s in self.remote_sources if s.base_url != source.base_url]
            self.remote_sources.append(source)
            self._list_remote(source)

        self.app.push_screen(AddRemoteScreen(), added)

    def _list_remote(self, source: RemoteSource) -> None:
        self.run_worker(
            self._fetch_remote(source),
            group=f"remote {source.base_url}",
            exclusive=True,
            exit_on_error=False,
        )

    async def _fetch_remote(self, source: RemoteSource) -> None:
        try:
            models = await source.list_models()
        except (RemoteError, OSError) as err:
            self.remote_errors[source.base_url] = " ".join(str(err).split())
            self.remote_models.pop(source.base_url, None)
        else:
            self.remote_errors.pop(source.base_url, None)
            self.remote_models[source.base_url] = models
            self.notify(f"{plural(len(models), 'model')} at {source.base_url}", title="Remote")
        self._scan()
