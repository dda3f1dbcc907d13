"""Hugging Face Hub search and downloads, the Hub half of the Models screen.

Blocking Hub calls run in thread workers that only post messages; the handlers here
own every change to the widgets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.markup import escape
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Input, ProgressBar, Static

from engine.errors import AccessDenied, DownloadCancelled, HubError, HubUnavailable
from engine.models import download as hub_download
from engine.models import hub
from engine.models.download import DownloadProgress
from engine.models.hub import HubFile, HubModel
from engine.models.memory import format_bytes
from tui.widgets.models.model_details import format_count
from tui.wording import plural


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "? left"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m left"
    return f"{seconds // 60}:{seconds % 60:02d} left"


def progress_line(progress: DownloadProgress) -> str:
    total = format_bytes(progress.total) if progress.total else "?"
    part = f"part {progress.part}/{progress.parts} · " if progress.parts > 1 else ""
    resumed = (
        f" · resumed at {format_bytes(progress.resumed_bytes)}" if progress.resumed_bytes else ""
    )
    return (
        f"{part}{format_bytes(progress.bytes_done)} / {total} · "
        f"{format_bytes(progress.speed)}/s · {format_eta(progress.eta)}{resumed}"
    )


class HubBrowser(Vertical):
    """Search input, a results table (repositories, then one repository's files) and a
    download bar. The screen's keys call `open_selected`, `download_selected`, `back`
    and `cancel_download`."""

    DEFAULT_CSS = """
    HubBrowser {
        #hub-search { height: 1; margin: 0 1; }
        /* auto: an error wraps at 80 columns rather than run off the edge */
        #hub-status { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
        #hub-status.-error { color: $error; }
        #hub-results { height: 1fr; }
        #hub-download { height: 1; padding: 0 1; display: none; }
        #hub-download.-active { display: block; }
        #hub-download ProgressBar { width: 34; }
        #hub-download-label { width: 1fr; }
    }
    """

    view: reactive[Literal["repos", "files"]] = reactive("repos")
    downloading: reactive[bool] = reactive(False)

    @dataclass
    class Found(Message):
        text: str
        models: list[HubModel]

    @dataclass
    class Listed(Message):
        repo: str
        files: list[HubFile]

    @dataclass
    class Failed(Message):
        """A search, listing or download that did not work; `error` is one line."""

        error: str
        access: bool = False
        unreachable: bool = False
        """The Hub could not be reached (offline, or a proxy in the way)."""

    @dataclass
    class Progressed(Message):
        progress: DownloadProgress

    @dataclass
    class Downloaded(Message):
        """A download finished; the screen scans the catalog again."""

        path: Path

    @dataclass
    class Cancelled(Message):
        filename: str

    def __init__(self, models_dir: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.models_dir = models_dir
        self.models: list[HubModel] = []
        self.files: list[HubFile] = []
        self.repo = ""
        self._cancel: threading.Event | None = None
        self._downloading_file = ""

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="Search GGUF models on the Hugging Face Hub", id="hub-search", compact=True
        )
        yield Static("Type and press Enter to search.", id="hub-status")
        yield DataTable(id="hub-results", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="hub-download"):
            yield ProgressBar(id="hub-progress", show_eta=False)
            yield Static("", id="hub-download-label")

    def on_mount(self) -> None:
        self._show_repos()

    def focus_search(self) -> None:
        self.query_one("#hub-search", Input).focus()

    def status(self, text: str, *, error: bool = False) -> None:
        line = self.query_one("#hub-status", Static)
        line.set_class(error, "-error")
        # Content, not markup: an error message may hold brackets.
        line.update(Content(text))

    def on_key(self, event: events.Key) -> None:
        # Escape leaves the search box for the results, where the screen's keys
        # (h, /, d, Backspace) work again.
        if event.key == "escape" and self.query_one("#hub-search", Input).has_focus:
            event.stop()
            event.prevent_default()
            self.query_one("#hub-results", DataTable).focus()

    # --- search -----------------------------------------------------------------

    @on(Input.Submitted, "#hub-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search(event.value)

    def search(self, text: str) -> None:
        self.status(f"Searching for {text.strip() or 'everything'}…")
        self._search(text)

    @work(thread=True, exclusive=True, exit_on_error=False, group="hub-search")
    def _search(self, text: str) -> None:
        try:
            models = hub.search_models(text, limit=50)
        except HubError as err:
            self.post_message(self._failed(err))
            return
        self.post_message(self.Found(text, models))

    def on_hub_browser_found(self, message: Found) -> None:
        message.stop()
        self.models = message.models
        self._show_repos()
        found = len(self.models)
        self.status(
            f"{found} GGUF repositor{'y' if found == 1 else 'ies'} for {message.text.strip()!r}"
            " · Enter lists its files"
            if found
            else f"No GGUF repositories for {message.text.strip()!r}."
        )
        if found:
            self.query_one("#hub-results", DataTable).focus()

    def on_hub_browser_failed(self, message: Failed) -> None:
        message.stop()
        prefix = "Access refused: " if message.access else ""
        # Offline mode names its own variable; anything else unreachable gets the hint.
        hint = f" · {OFFLINE_HINT}" if message.unreachable and "HF_HUB_OFFLINE" not in message.error else ""
        self.status(prefix + message.error + hint, error=True)

    def _show_repos(self) -> None:
        self.view = "repos"
        table = self._fresh_table(
            ("repository", "repo"), ("params", "params"), ("arch", "arch"),
            ("downloads", "downloads"), ("likes", "likes"), ("updated", "updated"),
        )
        for index, model in enumerate(self.models):
            name = model.repo_id + (" 🔒" if model.gated else "")
            table.add_row(
                escape(name),  # a table reads str as markup; Hub names are not
                format_count(model.parameter_count) if model.parameter_count else "",
                model.architecture or "",
                f"{model.downloads:,}" if model.downloads is not None else "",
                str(model.likes or 0),
                model.last_modified.date().isoformat() if model.last_modified else "",
                key=str(index),
            )

    def _fresh_table(self, *columns: tuple[str, str]) -> DataTable:
        """The results table emptied and given `columns` (label, key): repos or files."""
        table = self.query_one("#hub-results", DataTable)
        table.clear(columns=True)
        for label, key in columns:
            table.add_column(label, key=key)
        return table

    # --- one repository's files -------------------------------------------------

    def open_selected(self) -> None:
        """Enter: list the selected repository's files, or download the selected file."""
        if self.view == "files":
            self.download_selected()
            return
        table = self.query_one("#hub-results", DataTable)
        if not self.models or not 0 <= table.cursor_row < len(self.models):
            return
        self.repo = self.models[table.cursor_row].repo_id
        self.status(f"Listing {self.repo}…")
        self._list(self.repo)

    @on(DataTable.RowSelected, "#hub-results")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open_selected()

    @work(thread=True, exclusive=True, exit_on_error=False, group="hub-list")
    def _list(self, repo: str) -> None:
        try:
            files = hub.list_gguf_files(repo)
        except HubError as err:
            self.post_message(self._failed(err))
            return
        self.post_message(self.Listed(repo, files))

    def on_hub_browser_listed(self, message: Listed) -> None:
        message.stop()
        self.repo = message.repo
        self.files = [f for f in message.files if not f.is_mmproj] + [
            f for f in message.files if f.is_mmproj
        ]
        self.view = "files"
        table = self._fresh_table(
            ("file", "file"), ("quant", "quant"), ("size", "size"), ("parts", "parts"),
            ("local", "local"),
        )
        for index, file in enumerate(self.files):
            name = file.name + ("  (projector)" if file.is_mmproj else "")
            table.add_row(
                escape(name),
                file.quantization or "",
                format_bytes(file.size) if file.size is not None else "?",
                str(len(file.parts)),
                self._local_state(file),
                key=str(index),
            )
        table.focus()
        self.status(
            f"{message.repo}: {plural(len(self.files), 'GGUF file')} · d or Enter downloads · "
            "Backspace goes back"
        )

    def _local_state(self, file: HubFile) -> str:
        local = hub_download.local_dir_for(self.models_dir, self.repo) / file.parts[0]
        if local.exists():
            return "✓ here"
        partial = hub_download.partial_bytes(self.models_dir, self.repo, file.parts[0])
        return f"{format_bytes(partial)} partial" if partial else ""

    def back(self) -> bool:
        """Back from a repository's files to the search results; False if already there."""
        if self.view != "files":
            return False
        self._show_repos()
        self.status("Enter lists a repository's files.")
        return True

    # --- download ---------------------------------------------------------------

    def selected_file(self) -> HubFile | None:
        table = self.query_one("#hub-results", DataTable)
        if self.view != "files" or not 0 <= table.cursor_row < len(self.files):
            return None
        return self.files[table.cursor_row]

    def download_selected(self) -> None:
        file = self.selected_file()
        if file is None:
            self.app.notify("Open a repository (Enter) and pick a file first.", severity="warning")
            return
        if self.downloading:
            self.app.notify("A download is already running; Escape cancels it.", severity="warning")
            return
        self._cancel = threading.Event()
        self._downloading_file = file.name
        self.downloading = True
        self.show_progress(DownloadProgress(file.name, 1, len(file.parts), 0, file.size, 0.0, None))
        self._download(self.repo, file.name, self._cancel)

    @work(thread=True, exclusive=True, exit_on_error=False, group="hub-download")
    def _download(self, repo: str, filename: str, cancel: threading.Event) -> None:
        def report(progress: DownloadProgress) -> None:
            self.post_message(self.Progressed(progress))

        try:
            path = hub_download.download(repo, filename, self.models_dir, progress=report, cancel=cancel)
        except DownloadCancelled:
            self.post_message(self.Cancelled(filename))
            return
        except HubError as err:
            self.post_message(self._failed(err))
            self.post_message(self.Cancelled(""))
            return
        except OSError as err:
            self.post_message(self.Failed(f"{filename}: {err}"))
            self.post_message(self.Cancelled(""))
            return
        self.post_message(self.Downloaded(path))

    def _failed(self, err: HubError) -> Failed:
        return self.Failed(
            _one_line(err), isinstance(err, AccessDenied), isinstance(err, HubUnavailable)
        )

    def cancel_download(self) -> bool:
        if not self.downloading or self._cancel is None:
            return False
        self._cancel.set()
        self.status(f"Cancelling {self._downloading_file}…")
        return True

    def on_hub_browser_progressed(self, message: Progressed) -> None:
        message.stop()
        if self.downloading:
            self.show_progress(message.progress)

    def show_progress(self, progress: DownloadProgress) -> None:
        bar = self.query_one("#hub-progress", ProgressBar)
        bar.update(total=progress.total or None, progress=progress.bytes_done)
        self.query_one("#hub-download-label", Static).update(
            Content(f"{progress.filename}: {progress_line(progress)}")
        )
        self.query_one("#hub-download").add_class("-active")

    def on_hub_browser_cancelled(self, message: Cancelled) -> None:
        self._end_download()
        if message.filename:
            message.stop()
            self.status(f"Cancelled {message.filename}; downloading it again resumes.")
        else:
            message.stop()

    def on_hub_browser_downloaded(self, message: Downloaded) -> None:
        # Not stopped: the screen scans the catalog again.
        self._end_download()
        self.status(f"Downloaded {message.path.name}; it is in the local list now.")

    def _end_download(self) -> None:
        self.downloading = False
        self._cancel = None
        self.query_one("#hub-download").remove_class("-active")
        if self.view == "files":
            table = self.query_one("#hub-results", DataTable)
            for index, file in enumerate(self.files):
                table.update_cell(str(index), "local", self._local_state(file))


OFFLINE_HINT = "offline? set HF_ENDPOINT to a mirror you can reach"
"""Said under an error that means the Hub could not be reached."""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
