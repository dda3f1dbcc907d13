"""The live speed of a prediction: tokens counted as they stream, and tokens a second.

The worker that reads the engine's events counts each text delta's tokens here; the
screen reads the count and the rate on its refresh timer and shows them in the status
line until the final stats (measured by the engine) take their place.

The rate is measured from the first token to the latest one, as the engine measures
generation speed (prompt processing excluded), so a reply that pauses keeps the rate
it had: the figure changes only when tokens arrive, never from the clock alone.
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
        self._first: float | None = None
        self._last: float | None = None
        self._first_batch = 0

    def count(self, tokens: int) -> None:
        """`tokens` more were generated just now."""
        if tokens <= 0:
            return
        now = self._clock() if self._clock is not None else monotonic()
        if self._first is None:
            self._first = now
            # What arrived with the first token took the time to first token, not
            # generation time: left out of the rate.
            self._first_batch = tokens
        self.generated += tokens
        self._last = now

    @property
    def per_second(self) -> float | None:
        """Tokens a second after the first ones; None until tokens arrived apart in time."""
        if self._first is None or self._last is None:
            return None
        elapsed = self._last - self._first
        after_first = self.generated - self._first_batch
        return after_first / elapsed if elapsed > 0 and after_first > 0 else None
