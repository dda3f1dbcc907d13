"""The in-app server in one line: its URL, requests served, and the last request.

The state it shows is the service's (`tui.services.in_app_server.ServerState`)."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from tui.services.in_app_server import ServerState


class ServerStatus(Static):
    """Shows `state`; hidden while the server is off. The owner sets `state`."""

    DEFAULT_CSS = """
    ServerStatus {
        width: auto;
        /* A share of the line, so the model's name keeps the rest (80 columns). */
        max-width: 45%;
        height: 1;
        padding: 0 1 0 0;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        display: none;
        &.-running { display: block; }
    }
    """

    state: reactive[ServerState] = reactive(ServerState)

    def on_mount(self) -> None:
        # The app owns the server; every screen's status line follows it.
        if hasattr(self.app, "server_state"):
            self.watch(self.app, "server_state", self._follow, init=True)

    def _follow(self, state: ServerState) -> None:
        self.state = state

    def watch_state(self, state: ServerState) -> None:
        self.set_class(state.running, "-running")
        self.update(describe(state))


def describe(state: ServerState) -> Content:
    if not state.running:
        return Content("")
    served = f"{state.requests} request{'s' if state.requests != 1 else ''}"
    parts: list[Content | tuple[str, str] | str] = [("⇄ ", "$success"), state.url, f" · {served}"]
    if state.last is not None:
        last = state.last
        colour = "$success" if last.status < 400 else "$warning" if last.status < 500 else "$error"
        parts += [
            f" · {last.method} {last.path} ",
            (str(last.status), colour),
            f" {last.duration * 1000:.0f}ms",
        ]
    return Content.assemble(*parts)
