"""Keys take effect in the order they were typed: the app hands on one key at a time.

Textual forwards a key to the focused widget's message queue and goes on to the next
key at once. A printable key is handled by the widget itself (an input inserts it);
any other key (Backspace, Left, Ctrl+U, Enter in a dialog, Ctrl+N) is a binding,
which runs only once the key has bubbled, one message queue at a time, from the
widget up through its containers and the screen back to the app. Keys that arrive
together (over SSH, from `tmux send-keys`, a fast typist) overtook each other on the
way: "abc", Backspace, "XY" gave "abcX"; "hello", Ctrl+U, "world" gave nothing.

`KeysInOrderApp` holds each key (and each paste) until the one before it has been
handled all the way. It follows every key it forwards with a probe, a message that
bubbles the same way; when the probe is back at the app, the key has been handled
(or stopped) on every node it passed. A second probe then goes the same way, so that
the messages the key's handling posted to those nodes (an input's `Submitted`, a
list's `Selected`) are handled too before the next key arrives: Enter then "world"
puts "world" in the box the Enter emptied, not in the message it sent.

A probe is lost when a node on its way goes (a dialog that closed on the key): the
next key then goes on as soon as the key's target is seen to be gone, and after
`LONGEST_WAIT` at the latest, so that a stuck widget cannot stop the keyboard.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from textual import events
from textual.app import App
from textual.dom import DOMNode
from textual.message import Message
from textual.message_pump import MessagePump
from textual.timer import Timer

ReturnType = TypeVar("ReturnType")

PROBE_PASSES = 2
"""Probes per key: the first follows the key, the second what its handling posted."""

CHECK_INTERVAL = 0.05
"""Seconds between checks for a lost probe while keys wait."""

LONGEST_WAIT = 1.0
"""Seconds a key waits for the one before it at most (a widget that never answers)."""


@dataclass
class KeyHandled(Message, bubble=True):
    """Follows a key up the DOM to the app (see the module docstring)."""

    ticket: int
    passes_left: int


class KeysInOrderApp(App[ReturnType], Generic[ReturnType]):
    """An app that forwards a key (or a paste) only once the one before it was handled."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._held_input: deque[events.Key | events.Paste] = deque()
        self._in_flight: tuple[int, MessagePump, float] | None = None
        """The ticket of the key on its way, the node it went to, and when it left."""
        self._tickets = 0
        self._lost_probe_timer: Timer | None = None

    @property
    def keys_waiting(self) -> int:
        """Keys (and pastes) typed but not yet handed on (tests wait on it)."""
        return len(self._held_input) + (self._in_flight is not None)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            if self._in_flight is not None:
                self._held_input.append(event)
                self._watch_for_lost_probes()
                return
            await self._hand_on(event)
            return
        await super().on_event(event)

    async def _hand_on(self, event: events.Key | events.Paste) -> None:
        """Let Textual dispatch `event`; if it went to a widget, follow it with a probe."""
        await super().on_event(event)
        if not event.is_forwarded:
            return  # a priority binding, or nothing to give it to: handled already
        # Where Textual forwarded it: focus does not move between there and here.
        target: MessagePump = self.focused or self.screen
        self._tickets += 1
        self._in_flight = (self._tickets, target, time.monotonic())
        if not target.post_message(KeyHandled(self._tickets, PROBE_PASSES - 1)):
            self._in_flight = None

    async def _on_key_handled(self, message: KeyHandled) -> None:
        message.stop()
        in_flight = self._in_flight
        if in_flight is None or in_flight[0] != message.ticket:
            return  # a probe given up on
        _, target, _ = in_flight
        if message.passes_left > 0 and target.post_message(
            KeyHandled(message.ticket, message.passes_left - 1)
        ):
            return
        await self._next()

    async def _next(self) -> None:
        """Hand on held keys until one goes to a widget (and so is in flight)."""
        self._in_flight = None
        while self._in_flight is None and self._held_input:
            await self._hand_on(self._held_input.popleft())
        if not self._held_input and self._lost_probe_timer is not None:
            self._lost_probe_timer.pause()

    def _watch_for_lost_probes(self) -> None:
        if self._lost_probe_timer is None:
            self._lost_probe_timer = self.set_interval(
                CHECK_INTERVAL, self._check_lost_probe, name="keys in order"
            )
        else:
            self._lost_probe_timer.resume()

    async def _check_lost_probe(self) -> None:
        in_flight = self._in_flight
        if in_flight is None:
            if self._held_input:
                await self._next()
            return
        _, target, since = in_flight
        if not _is_live(target) or time.monotonic() - since > LONGEST_WAIT:
            await self._next()


def _is_live(node: MessagePump) -> bool:
    """Whether a probe posted to `node` can still come back."""
    if node._closing or node._closed:  # noqa: SLF001 - Textual has no public test for it
        return False
    return not isinstance(node, DOMNode) or node.is_attached
