"""Limits on one template render: steps, seconds and output size, counted in the sandbox.

A chat template comes with a downloaded model, so it may loop for ever or build a
string of gigabytes. A thread cannot be killed, so the sandbox counts as it goes:
every loop iteration and every call is a step (a step call is put at the top of each
`for` body when the template is compiled), the clock is read every so many steps,
string and list repetition (`'x' * n`) is checked before it is made, what `~`, `+`
and calls build is checked after (so no value grows past twice the limit), and the
output is counted as it streams out. Filters (`center(10**9)`) are not counted. Breaking a limit raises `TemplateLimitError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jinja2.nodes
from jinja2.compiler import CodeGenerator, Frame

from engine.errors import TemplateError

STEP_FUNCTION = "__llamaterm_render_step"
"""The global the compiled template calls once per loop iteration."""

CHARS_PER_TOKEN_BOUND = 32
"""Output allowed per token of context: far above any real tokeniser's average."""

_CLOCK_EVERY = 256
"""Steps between reads of the clock (a read costs more than a step)."""


class TemplateLimitError(TemplateError):
    """A template render went past its step, time or output limit."""


class RenderCancelled(TemplateError):
    """The prediction a template was rendering for was cancelled mid-render."""


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """How far one render may go."""

    max_steps: int = 2_000_000
    """Loop iterations and calls; a long chat with tools takes a few thousand."""
    max_seconds: float = 5.0
    max_output_chars: int = 8_000_000

    @classmethod
    def for_context(cls, context_length: int, **kwargs: Any) -> RenderLimits:
        """Limits whose output bound is a multiple of the model's context length."""
        output = max(1 << 16, CHARS_PER_TOKEN_BOUND * max(0, context_length))
        return cls(max_output_chars=output, **kwargs)


class RenderBudget:
    """What one render has used so far, on the thread that renders."""

    def __init__(self, limits: RenderLimits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.steps = 0
        self.output = 0
        self.deadline = time.monotonic() + limits.max_seconds
        self.cancelled: threading.Event | None = getattr(_local, "cancelled", None)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            self._fail(f"more than {self.limits.max_steps:,} loop steps")
        if self.steps % _CLOCK_EVERY == 0:
            if time.monotonic() > self.deadline:
                self._fail(f"more than {self.limits.max_seconds:g} s")
            if self.cancelled is not None and self.cancelled.is_set():
                raise RenderCancelled(f"rendering chat template {self.name!r} was cancelled")

    def add_output(self, chars: int) -> None:
        self.output += chars
        if self.output > self.limits.max_output_chars:
            self._fail(f"more than {self.limits.max_output_chars:,} characters of output")

    def check_repeat(self, left: Any, right: Any) -> None:
        """`left * right` about to run: refuse a string or list larger than the output."""
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                if len(seq) * count > self.limits.max_output_chars:
                    self._fail(
                        f"a repetition of {len(seq) * count:,} items "
                        f"(the limit is {self.limits.max_output_chars:,})"
                    )

    def check_call(self, function: Any, args: tuple[Any, ...]) -> None:
        """A str or list method asked for a size past the limit (`'x'.ljust(10**10)`)."""
        if isinstance(getattr(function, "__self__", None), (str, list)):
            for arg in args:
                if isinstance(arg, int) and arg > self.limits.max_output_chars:
                    self._fail(
                        f"a call asking for {arg:,} items (the limit is "
                        f"{self.limits.max_output_chars:,})"
                    )

    def check_size(self, value: Any) -> Any:
        """A string or list just built (by `~`, `+` or a call): refuse one past the limit."""
        if isinstance(value, (str, list, tuple)) and len(value) > self.limits.max_output_chars:
            self._fail(f"a value of {len(value):,} items (the limit is {self.limits.max_output_chars:,})")
        return value

    def _fail(self, what: str) -> None:
        raise TemplateLimitError(f"chat template {self.name!r} stopped: it took {what}")


_local = threading.local()


def current_budget() -> RenderBudget | None:
    """The budget of the render running on this thread, if any."""
    budget: RenderBudget | None = getattr(_local, "budget", None)
    return budget


@contextmanager
def render_budget(limits: RenderLimits, name: str) -> Iterator[RenderBudget]:
    """Count the renders inside against `limits` (nested renders share the outer one)."""
    outer = current_budget()
    if outer is not None:
        yield outer
        return
    budget = _local.budget = RenderBudget(limits, name)
    try:
        yield budget
    finally:
        _local.budget = None


@contextmanager
def renders_cancelled_by(cancelled: threading.Event) -> Iterator[None]:
    """Renders on this thread, while inside, stop with RenderCancelled once `cancelled` is set."""
    _local.cancelled = cancelled
    try:
        yield
    finally:
        _local.cancelled = None


def render_step() -> str:
    """The step call in each loop body; outside a render it counts nothing."""
    budget = current_budget()
    if budget is not None:
        budget.step()
    return ""


class LimitedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with each `a ~ b` checked by the render's budget."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_size(")
        super().visit_Concat(node, frame)
        self.write(")")


def instrument(tree: jinja2.nodes.Template) -> jinja2.nodes.Template:
    """Put a step call at the top of every `for` body of a parsed template."""
    for loop in tree.find_all(jinja2.nodes.For):
        call = jinja2.nodes.Call(jinja2.nodes.Name(STEP_FUNCTION, "load"), [], [], None, None)
        loop.body.insert(0, jinja2.nodes.ExprStmt(call))
    return tree
