"""Gradient alarms: a logged step whose gradient norm exploded or vanished, and the words for a
divergence. The session checks every logged Step and yields an `Alarm` record after it; the
command line prints it as a warning and goes on, the dashboard pauses on it."""

from __future__ import annotations

import math
import statistics
from collections import deque

from .records import Alarm, Diverged, Step

EXPLODE_FACTOR = 1e3
VANISH_BELOW = 1e-7
MEDIAN_WINDOW = 50
CONVERGED_LOSS = 1e-3
RECURRENT = ("rnn", "lstm", "gru")


def is_recurrent(layers) -> bool:
    """Whether layer specs (dicts with "type") hold a recurrent cell: the hints then name LSTM/GRU."""
    return any(layer.get("type") in RECURRENT for layer in layers)


class GradMonitor:
    """Watches the global gradient norm of logged steps: exploding (over 1e3 x its running median
    and above any norm seen before, so a converged model's occasional hard batch is not an
    explosion) or vanishing (< 1e-7 while the loss is not yet tiny). Each kind fires once until
    the norm is back to normal."""

    def __init__(self, recurrent: bool = False) -> None:
        self.recent: deque[float] = deque(maxlen=MEDIAN_WINDOW)
        self.peak = 0.0
        self.firing: set[str] = set()
        self.recurrent = recurrent

    def check(self, rec: Step) -> Alarm | None:
        g = rec.grad_norm
        if not math.isfinite(g):
            return None         # the session reports non-finite values itself (Diverged)
        median = statistics.median(self.recent) if len(self.recent) >= 5 else None
        kind = None
        if median is not None and median > 0 and g > EXPLODE_FACTOR * median and g > self.peak:
            kind = "exploding"
        elif g < VANISH_BELOW and rec.loss > CONVERGED_LOSS:
            kind = "vanishing"          # (a tiny gradient at a tiny loss is convergence, not a problem)
        self.recent.append(g)
        self.peak = max(self.peak, g)
        if kind is None:
            self.firing.clear()
            return None
        if kind in self.firing:
            return None
        self.firing.add(kind)
        cell = "; switch the cell to LSTM or GRU" if self.recurrent else ""
        if kind == "exploding":
            text = (f"Gradient norm exploded at step {rec.step}: {g:.3g} is over {EXPLODE_FACTOR:.0e} x its "
                    f"running median ({median:.3g}). Try a lower lr (now {rec.lr:.3g}) or set clip_norm{cell}.")
        else:
            text = (f"Gradients vanished at step {rec.step}: norm {g:.3g} < {VANISH_BELOW:g}. "
                    f"Try a higher lr (now {rec.lr:.3g}), a different activation or initialisation{cell}.")
        return Alarm(rec.step, kind, text)


def diverged_alarm(rec: Diverged, recurrent: bool = False) -> Alarm:
    """The words for a divergence (the session stops on it and yields `Diverged`)."""
    cell = "; for a recurrent net, switch the cell to LSTM or GRU" if recurrent else ""
    return Alarm(rec.step, "diverged", f"Training diverged at step {rec.step}: {rec.reason}. Try: {rec.hint}{cell}.")
