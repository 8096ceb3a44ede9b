"""What the charts show about one run, kept as plain data (no widgets).

The training worker adds records here from its thread (`History.add` takes a lock); the charts
read decimated copies on the UI thread at their redraw tick. The `*_version` counters tell a
chart whether its data changed since it last drew.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

from descent.engine.records import Diverged, Evaluation, KnobChanged, Step

MAX_POINTS = 300        # a chart never gets more points than this (it redraws all of them)
SERIES_CAP = 4096       # a curve keeps at most this many points (metrics.jsonl has them all)
HEATMAP_ROWS = 200      # per-time-step gradient rows kept for the heatmap


@dataclass
class Series:
    """One curve: x (training step) and y values, appended in step order. Past SERIES_CAP
    points the older half is merged pairwise, so a long run costs the same to draw as a short
    one: old stretches get coarser, the newest points stay exact."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)

    def add(self, x: float, y: float) -> None:
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) > SERIES_CAP:
            half = SERIES_CAP // 2 & ~1
            old_x, old_y = self.xs[:half], self.ys[:half]
            self.xs[:half] = old_x[1::2]
            self.ys[:half] = [(a + b) / 2 for a, b in zip(old_y[0::2], old_y[1::2])]

    def __len__(self) -> int:
        return len(self.xs)


def decimate(xs: list[float], ys: list[float], max_points: int = MAX_POINTS) -> tuple[list, list]:
    """At most `max_points` points: the mean of each run of consecutive points, at the run's last x."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    k = math.ceil(n / max_points)
    out_x, out_y = [], []
    for lo in range(0, n, k):
        chunk = [y for y in ys[lo:lo + k] if math.isfinite(y)]
        if chunk:
            out_x.append(xs[min(lo + k, n) - 1])
            out_y.append(sum(chunk) / len(chunk))
    return out_x, out_y


def smooth(ys: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with the start-up bias removed (as TensorBoard draws it)."""
    out, avg, norm = [], 0.0, 0.0
    for y in ys:
        avg = weight * avg + (1 - weight) * y
        norm = weight * norm + (1 - weight)
        out.append(avg / norm)
    return out


@dataclass(frozen=True)
class Pinned:
    """A finished or paused run kept on the loss and accuracy charts for comparison."""

    label: str
    loss: tuple[list, list]
    val_loss: tuple[list, list]
    val_acc: tuple[list, list]
    # ||dL/dh|| / ||dL/dh_answer|| by words back, first sequence layer, latest logged step (or ())
    time_ratio: tuple = ()
    by_length: dict | None = None   # seq2seq: the last evaluation's exact accuracy by input length


class History:
    """Every curve of the current run. Thread-safe: `add` from the worker, reads from the UI."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.step_version = 0           # Step records (loss, gradient curves, heatmap)
        self.eval_version = 0           # Evaluation records (validation curves)
        self.marker_version = 0         # knob markers
        self.loss = Series()
        self.val_loss = Series()
        self.val_acc = Series()
        self.val_r2 = Series()          # regression: the accuracy chart plots this instead
        self.grad_norm = Series()
        self.grad_norms: dict[str, Series] = {}
        self.update_ratios: dict[str, Series] = {}
        self.time_rows: deque[tuple[int, dict[str, list[float]]]] = deque(maxlen=HEATMAP_ROWS)
        self.ratio_rows_: deque[tuple[int, dict[str, list[float]]]] = deque(maxlen=HEATMAP_ROWS)
        self.inside: dict | None = None                # the last evaluation's details["inside"]
        self.inside_step: int | None = None
        self.by_length: dict | None = None             # seq2seq: the last evaluation's, for pinning
        self.markers: list[tuple[int, str]] = []       # (step, "lr=0.01")
        self.diverged_at: int | None = None

    def add(self, record) -> None:
        with self._lock:
            if isinstance(record, Step):
                self.loss.add(record.step, record.loss)
                self.grad_norm.add(record.step, record.grad_norm)
                for name, v in record.grad_norms.items():
                    self.grad_norms.setdefault(name, Series()).add(record.step, v)
                for name, v in record.update_ratios.items():
                    self.update_ratios.setdefault(name, Series()).add(record.step, v)
                if record.time_grad_norms:
                    self.time_rows.append((record.step, dict(record.time_grad_norms)))
                if record.time_grad_ratio:
                    self.ratio_rows_.append((record.step, dict(record.time_grad_ratio)))
                self.step_version += 1
            elif isinstance(record, Evaluation):
                if "loss" in record.metrics:
                    self.val_loss.add(record.step, record.metrics["loss"])
                if "accuracy" in record.metrics:
                    self.val_acc.add(record.step, record.metrics["accuracy"])
                if "r2" in record.metrics:
                    self.val_r2.add(record.step, record.metrics["r2"])
                if record.details.get("by_length"):
                    self.by_length = record.details["by_length"]
                if record.details.get("inside"):
                    self.inside, self.inside_step = record.details["inside"], record.step
                self.eval_version += 1
            elif isinstance(record, KnobChanged):
                self.markers.append((record.step, f"{short_key(record.key)}={format_value(record.value)}"))
                self.marker_version += 1
            elif isinstance(record, Diverged):
                self.diverged_at = record.step

    def truncate(self, step: int) -> None:
        """Forget everything after `step` (a checkpoint from that step was opened)."""
        with self._lock:
            for series in [self.loss, self.val_loss, self.val_acc, self.val_r2, self.grad_norm,
                           *self.grad_norms.values(), *self.update_ratios.values()]:
                keep = sum(1 for x in series.xs if x <= step)
                del series.xs[keep:], series.ys[keep:]
            self.time_rows = deque((row for row in self.time_rows if row[0] <= step), maxlen=HEATMAP_ROWS)
            self.ratio_rows_ = deque((row for row in self.ratio_rows_ if row[0] <= step), maxlen=HEATMAP_ROWS)
            self.markers = [m for m in self.markers if m[0] <= step]
            self.step_version += 1
            self.eval_version += 1
            self.marker_version += 1

    # ---- reads (UI thread) ----------------------------------------------------------------------
    def curve(self, name: str, max_points: int = MAX_POINTS) -> tuple[list, list]:
        with self._lock:
            s: Series = getattr(self, name)
            return decimate(s.xs, s.ys, max_points)

    def per_tensor(self, which: str, max_points: int = MAX_POINTS) -> dict[str, tuple[list, list]]:
        """Decimated curves per parameter tensor: which = "grad_norms" or "update_ratios"."""
        with self._lock:
            return {name: decimate(s.xs, s.ys, max_points) for name, s in getattr(self, which).items()}

    def heat_rows(self, n: int) -> list[tuple[int, dict[str, list[float]]]]:
        with self._lock:
            rows = list(self.time_rows)
        return rows[-n:] if n > 0 else []

    def ratio_rows(self, n: int) -> list[tuple[int, dict[str, list[float]]]]:
        with self._lock:
            rows = list(self.ratio_rows_)
        return rows[-n:] if n > 0 else []

    def marker_list(self) -> list[tuple[int, str]]:
        with self._lock:
            return list(self.markers)

    def pin(self, label: str) -> Pinned:
        # a regression run pins its R² where a classifier pins accuracy (the chart shows one)
        scores = "val_acc" if len(self.val_acc) or not len(self.val_r2) else "val_r2"
        rows = self.ratio_rows(1)
        ratio = tuple(next(iter(rows[-1][1].values()))) if rows and rows[-1][1] else ()
        return Pinned(label, self.curve("loss"), self.curve("val_loss"), self.curve(scores), ratio, self.by_length)


def short_key(key: str) -> str:
    """'training.lr' -> 'lr'; 'model.layers[1].type' -> 'layers[1].type'."""
    for prefix in ("training.", "model.", "data.", "evaluation."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def format_value(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
