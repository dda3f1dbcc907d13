"""The live speed of a prediction: tokens counted as they stream, and tokens a second.

The worker that reads the engine's events counts each text delta's tokens here; the
screen reads the count and the rate on its refresh timer and shows them in the status
line until the final stats (measured by the engine) take their place.

The rate is measured from the first token to the latest one, as the engine measures
generation speed (prompt processing excluded), so a reply that pauses keeps the rate
it had: the figure changes only when tokens arrive, never from the clock alone.

When the first token came is taken from the engine (`FirstToken`'s time to first
token, after the prediction's start), not from when its event reached the screen's
loop: a loop busy at the start of a reply receives the first tokens late and then
several at once, and measured on arrival they made the rate two or three times too
high for the first seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic


class TokenRate:
    """Tokens generated so far and when; filled by one worker, read by the screen."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        """None: this module's `monotonic`, looked up when counting (tests set a steady one)."""
        self.generated = 0
        """Every token counted."""
        self._started: float | None = None
        self._first: float | None = None
        self._last: float | None = None
        self._first_batch = 0

    def _now(self) -> float:
        return self._clock() if self._clock is not None else monotonic()

    def start(self) -> None:
        """The prediction starts now (before its prompt is processed)."""
        self._started = self._now()

    def first_token(self, time_to_first_token_sec: float) -> None:
        """The engine sampled the first token this long after the start."""
        if self._started is not None and self._first is None:
            self._first = self._started + max(0.0, time_to_first_token_sec)
            self._first_batch = 1

    def count(self, tokens: int) -> None:
        """`tokens` more were generated just now."""
        if tokens <= 0:
            return
        now = self._now()
        if self._first is None:
            # No first-token time from the engine: from this arrival on. What came
            # with it took the time to first token, not generation time.
            self._first = now
            self._first_batch = tokens
        self.generated += tokens
        self._last = now

    @property
    def per_second(self) -> float | None:
        """Tokens a second after the first one; None until tokens arrived apart in time."""
        if self._first is None or self._last is None:
            return None
        elapsed = self._last - self._first
        after_first = self.generated - self._first_batch
        return after_first / elapsed if elapsed > 0 and after_first > 0 else None
