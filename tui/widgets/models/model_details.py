"""The details panel of the Models screen: a model's metadata and whether it fits."""

from __future__ import annotations

from textual.markup import escape
from textual.reactive import reactive
from textual.widgets import Static

from engine.contract import ChatModel
from engine.models.catalog import CatalogEntry
from engine.models.memory import FitReport, MemorySnapshot, describe_estimate, format_bytes
from tui.model_state import BASE_MODEL_NOTE


def format_count(count: int | None) -> str:
    """A parameter count as LM Studio shows it: 1.2B, 270M, 131K."""
    if count is None:
        return "?"
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= size:
            return f"{count / size:.1f}{unit}".replace(".0", "")
    return str(count)


def traits(entry: CatalogEntry) -> str:
    """What the model is made for, in words: `base` (no chat template: it continues
    text), else `chat`, with `tools` (a native tool-call format) and `think`."""
    if not entry.has_chat_template:
        return "base"
    words = ["chat"]
    if entry.tool_format != "default":
        words.append("tools")
    if entry.supports_thinking:
        words.append("think")
    return " ".join(words)


def memory_line(memory: MemorySnapshot) -> str:
    ram = format_bytes(memory.ram_available) if memory.ram_available is not None else "unknown"
    line = f"free: {ram} RAM"
    if memory.gpu_free is not None:
        line += f", {format_bytes(memory.gpu_free)} GPU"
    elif memory.gpus is None:
        line += ", no GPU found"
    return line


def entry_lines(entry: CatalogEntry, report: FitReport | None, where: str) -> list[str]:
    """The details of a local model, as markup lines (names and paths escaped: files
    are named as people like, "[/]x.gguf" included)."""
    lines = [
        f"[b]{escape(entry.display_name)}[/b]  [dim]{escape(entry.key)}[/dim]",
        f"file: {escape(where)}",
    ]
    if entry.is_split:
        lines.append(f"parts: {len(entry.parts)}")
    if entry.mmproj:
        lines.append("projector: " + escape(", ".join(p.name for p in entry.mmproj)))
    if entry.error:
        lines.append(f"[b $error]cannot be read:[/] {escape(entry.error)}")
        return lines
    lines += [
        (
            f"architecture: {escape(entry.architecture or '?')}   parameters: "
            f"{escape(entry.size_label or format_count(entry.parameter_count))}   "
            f"quantisation: {escape(entry.quantization or '?')}"
        ),
        f"size: {format_bytes(entry.size_bytes)}   trained context: {entry.context_length or '?'}",
        (
            f"chat template: {'yes' if entry.has_chat_template else 'no'}   tool calls: "
            f"{entry.tool_format}   thinking: {'yes' if entry.supports_thinking else 'no'}"
        ),
    ]
    if not entry.has_chat_template:
        lines.append(f"[$text-warning]{BASE_MODEL_NOTE}[/]")
    if report is not None:
        lines += fit_lines(report)
    return lines


def fit_lines(report: FitReport) -> list[str]:
    estimate = report.estimate
    head = f"memory at {estimate.context_length} tokens ({memory_line(report.memory)}):"
    lines = ["", escape(head), *(f"  {escape(line)}" for line in describe_estimate(estimate))]
    if report.fits:
        lines.append(f"[$success]✓ {escape(report.summary())}[/]")
    else:
        lines.append(f"[b $warning]⚠ {escape(report.summary())}[/]")
    lines += [f"  [dim]{escape(note)}[/dim]" for note in report.notes]
    return lines


def remote_lines(model: ChatModel) -> list[str]:
    context = model.info.context_length
    return [
        f"[b]{escape(model.key)}[/b]  [dim]{escape(model.placement)}[/dim]",
        f"server: {escape(model.location)}",
        f"context: {context or 'as the server has it'}",
        "The server renders the prompt and runs the model; nothing is loaded here.",
    ]


class ModelDetails(Static):
    """Shows `lines`; the screen sets them when the selection or the estimate changes."""

    lines: reactive[tuple[str, ...]] = reactive(tuple)

    def watch_lines(self, lines: tuple[str, ...]) -> None:
        self.update("\n".join(lines) if lines else "[dim]No model selected.[/dim]")
