"""The log bus is read on one thread while other threads publish to it."""

from __future__ import annotations

import threading

from engine.logbus import LogBus


def test_reading_recent_while_other_threads_publish_never_raises() -> None:
    bus = LogBus(keep=200)
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            bus.emit("info", "test", "line")

    writers = [threading.Thread(target=publish) for _ in range(3)]
    for writer in writers:
        writer.start()
    try:
        # Iterating the live deque here raised "deque mutated during iteration" in CI.
        for _ in range(2000):
            assert all(record.message == "line" for record in bus.recent)
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert len(bus.recent) == 200


def test_recent_is_a_copy_the_reader_can_keep() -> None:
    bus = LogBus(keep=10)
    bus.emit("info", "test", "first")
    snapshot = bus.recent
    bus.emit("info", "test", "second")
    assert [r.message for r in snapshot] == ["first"]
    assert [r.message for r in bus.recent] == ["first", "second"]
