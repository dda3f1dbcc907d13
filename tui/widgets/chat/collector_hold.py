"""While a reply streams, Python's cyclic garbage collector leaves the old heap alone.

A frame of a streaming reply allocates thousands of short-lived objects (strips,
caches, tokens), so the collector runs often, and now and then a full collection
walks every object the process holds: the model, Textual, every message on the
screen. Measured on the 5,000-token reply of `bench/tui_streaming.py`, those full
collections were the frames that stalled the event loop longest (80 to 130 ms
of one thread's time, twice the usual frame).

So the first reply to start streaming freezes what is alive (`gc.freeze`: moved
out of the collector's reach, still freed by reference counting), and a moment
after the last one ends (`THAW_AFTER`) it is unfrozen, so garbage made of cycles
before the reply (a closed chat's widgets) is still collected afterwards. Not at
once: the full collection that unfreezing soon brings on took 100 to 200 ms, and
it would fall on the reply's last frame. Objects made while the reply streams are
collected as usual, until a part of the reply is finished for good (`keep`): then
they are frozen too, so the collector's work stays as small as a reply grows.
"""

from __future__ import annotations

import asyncio
import gc

THAW_AFTER = 1.0
"""Seconds after the last stream ends before the heap is unfrozen."""

_holders: set[int] = set()


def hold(owner: object) -> None:
    """`owner` starts streaming: freeze the heap if nothing else is streaming."""
    if not _holders:
        gc.freeze()
    _holders.add(id(owner))


def release(owner: object) -> None:
    """`owner` is done (or gone): unfreeze once no stream holds the collector."""
    if id(owner) not in _holders:
        return
    _holders.discard(id(owner))
    if _holders:
        return
    try:
        asyncio.get_running_loop().call_later(THAW_AFTER, _thaw)
    except RuntimeError:  # no event loop: nothing to keep smooth
        _thaw()


def _thaw() -> None:
    if not _holders:  # a new stream may hold it again by now
        gc.unfreeze()


def keep() -> None:
    """A stream made objects that stay (a finished part of a reply): freeze them too."""
    if _holders:
        gc.freeze()


def holding() -> bool:
    return bool(_holders)
