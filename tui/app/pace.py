"""The dashboard's speed control: at most `rate` training steps per second, None for full speed.

The session calls the pacer after every step (`Session.run(..., pace=pacer)`), so the pace holds
between logged steps too; headless runs pass no pacer and are unaffected. The wait is on the
run's stop event, so a pause is as quick at 1 step/s as at full speed.
"""

from __future__ import annotations

import threading
import time

LEVELS = (1.0, 10.0, 100.0)         # then full speed (None)
WATCH_SECONDS = 40.0                # a tiny scenario's whole run takes about this long at "auto"


def auto_rate(total_steps: int, seconds: float = WATCH_SECONDS) -> float | None:
    """A pace at which the whole budget takes about `seconds`, or None (full speed) when that
    is faster than the top level: big runs are slow enough to watch as they are."""
    rate = max(1.0, round(total_steps / seconds))
    return rate if rate <= LEVELS[-1] else None


def label(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:g}/s"


class Pacer:
    """Called from the training thread after each step; `rate` is set from the UI thread."""

    def __init__(self, rate: float | None = None):
        self.rate = rate
        self.paced = rate             # the last rate below full speed, for `toggle_max`
        self.stop = threading.Event()
        self._next: float | None = None

    def __call__(self) -> None:
        rate = self.rate
        if rate is None:
            self._next = None
            return
        period = 1.0 / rate
        now = time.monotonic()
        if self._next is None or not now - period < self._next < now + period:
            self._next = now          # start a fresh schedule: a pause, a lag or a new rate
        self._next += period          # a schedule, not a sleep per step: no drift at 1 or 10/s
        delay = self._next - now
        if delay > 0:
            self.stop.wait(delay)

    def levels(self) -> list[float | None]:
        extra = [self.paced] if self.paced is not None else []
        return sorted(set(LEVELS) | set(extra)) + [None]

    def shift(self, direction: int) -> float | None:
        """One level faster (+1) or slower (-1); returns the new rate."""
        levels = self.levels()
        i = levels.index(self.rate) if self.rate in levels else len(levels) - 1
        self.set(levels[max(0, min(len(levels) - 1, i + direction))])
        return self.rate

    def toggle_max(self) -> float | None:
        """Full speed, or back to the last pace below it."""
        self.set(None if self.rate is not None else (self.paced or LEVELS[-1]))
        return self.rate

    def set(self, rate: float | None) -> None:
        self.rate = rate
        if rate is not None:
            self.paced = rate
