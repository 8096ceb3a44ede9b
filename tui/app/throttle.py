"""The one throttle of the dashboard: how often the worker posts a kind of message, and how often
and how much the UI thread draws."""

from __future__ import annotations

import math
import time


class Throttle:
    """Lets a thing happen at most every `every` seconds. With a `share`, it also keeps the
    thread time that the thing costs (`spend`, times `overhead` for Textual's own work on the
    result) to that share of wall time: the debt is repaid at `share` seconds per second, and
    nothing more happens until it is paid. Python time on the UI thread is time the training
    thread waits for the GIL."""

    def __init__(self, every: float = 0.0, share: float | None = None, overhead: float = 1.5):
        self.every, self.share, self.overhead = every, share, overhead
        self.last = -math.inf           # when it last happened (`mark`)
        self.debt = 0.0
        self.paid_at = time.monotonic()

    def allows(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.share is not None:
            self.debt = max(0.0, self.debt - (now - self.paid_at) * self.share)
            self.paid_at = now
        return now - self.last >= self.every and self.debt <= 0.0

    def mark(self, now: float | None = None) -> None:
        self.last = time.monotonic() if now is None else now

    def spend(self, seconds: float) -> None:
        self.debt += seconds * self.overhead
