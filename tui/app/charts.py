"""The dashboard's charts. Each is data plus `replot()`: clear, plot, refresh.

`replot` only sets plotext's data; the figure is built when Textual renders the widget, so a
chart in a hidden tab costs nothing. The dashboard calls `replot` from its redraw tick, and only
for charts whose data changed.
"""

from __future__ import annotations

import math
import time

import plotext._utility
from rich.text import Text
from textual_plotext import PlotextPlot

from descent.tui.app.history import History, Pinned, smooth
from descent.tui.app.throttle import Throttle


def _brush(*lists):
    """plotext's `brush` (drop repeated (tick, label) pairs) keeping the first-seen order."""
    n = min(map(len, lists))
    pairs = list(dict.fromkeys(zip(*(values[:n] for values in lists))))
    return [[pair[i] for pair in pairs] for i in range(len(lists))]


# plotext drops repeated ticks through a set of (tick, label) tuples, whose order follows the
# strings' hashes, which change with every process (PYTHONHASHSEED); where two ticks share a
# row, which label shows changed from one run to the next, and so did the snapshots' pixels
plotext._utility.brush = _brush

# markers tell curves apart without colour (NO_COLOR, 16-colour terminals); each chart's legend
# names them. The current run's training curve is braille, validation "•", pinned runs the rest.
MARKERS = ("braille", "dot", "x", "+", "o", "*", "#")
VAL_MARKER = "dot"
PIN_MARKERS = ("x", "+", "o", "*", "#")
SYMBOLS = {"braille": "⣿", "dot": "•"}
ERROR_FLOOR = 0.01          # error % drawn for a perfect evaluation on the log axis
COLORS = ("cyan", "orange", "magenta", "green", "yellow", "blue", "red", "white")
MAX_TENSORS = 6


# charts redraw at most twice a second, and drawing takes at most 3% of the UI thread's time
# (plotext redraws every point in Python); shared by every chart of the app
budget = Throttle(every=0.5, share=0.03)


def finite(xs: list, ys: list, positive: bool = False) -> tuple[list, list]:
    """Points with finite (and, for log scales, positive) y."""
    keep = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and (y > 0 or not positive)]
    return [p[0] for p in keep], [p[1] for p in keep]


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick positions (in log10 units) and labels for a log axis from 10**lo to 10**hi."""
    a, b = math.floor(lo), math.ceil(hi)
    if b - a >= 2:
        step = max(1, math.ceil((b - a) / 5))
        ticks = [float(e) for e in range(a, b + 1, step)]
    else:
        ticks = [math.log10(m) + e for e in range(a, b + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
    if len(ticks) < 2:
        ticks = [lo, (lo + hi) / 2, hi]
        return ticks, [f"{10 ** t:.2g}" for t in ticks]
    return ticks, [f"{10 ** t:.0e}".replace("e-0", "e-").replace("e+0", "e") for t in ticks]


def step_ticks(lo: float, hi: float, n: int = 5) -> tuple[list[int], list[str]]:
    """At most about `n` round whole-number ticks from lo to hi, labelled compactly (1.5k, 20k)."""
    span = max(1.0, hi - lo)
    raw = span / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = max(1, int(min((m * mag for m in (1, 2, 5, 10)), key=lambda c: abs(math.log(c / raw)))))
    steps = sorted({max(1, int(m * mag / 10 ** k)) for k in (0, 1) for m in (1, 2, 5, 10)}, reverse=True)
    steps = [s for s in steps if s <= step] or [1]
    for step in steps:                  # at least 3 ticks where the range allows
        first = int(math.ceil(lo / step) * step)
        ticks = list(range(first, int(hi) + 1, step)) or [int(lo)]
        if len(ticks) >= 3:
            break
    return ticks, [compact(t) for t in ticks]


def compact(v: int) -> str:
    if abs(v) >= 10_000_000:
        return f"{v / 1e6:.0f}M"
    if abs(v) >= 1_000_000:
        return f"{v / 1e6:.1f}M".replace(".0M", "M")
    if abs(v) >= 10_000:
        return f"{v / 1e3:.0f}k"
    if abs(v) >= 1000:
        return f"{v / 1e3:.1f}k".replace(".0k", "k")
    return str(v)


class Chart(PlotextPlot):
    """A PlotextPlot with the settings every chart shares. Subclasses implement `draw`.

    Log scales are drawn as log10 of the data on a linear axis with decade labels: plotext's
    own log scale rewrites the data in place on every build, so a second render (a resize, a
    tab switch) would take the log of a log. The legend is part of the title line, above the
    plot, so it never covers a curve; each series names its marker there, so curves are told
    apart without colour (NO_COLOR, 16-colour terminals)."""

    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 6; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.log_scale = False
        self.y_seen: list[float] = []
        self.x_seen: list[float] = []
        self.marker_steps: list[int] = []     # knob markers drawn by the last draw
        self.heading = ""
        self.legend: list[str] = []           # "⣿ train", "• val", ... as drawn by the last draw

    def render(self):
        """The plot; a message instead of a crash if plotext cannot draw at this size."""
        if self.size.width < 12 or self.size.height < 5:
            return Text("(too small)", style="dim")
        started = time.thread_time()
        try:
            return super().render()
        except Exception as e:       # plotext raises odd errors on degenerate sizes or data
            return Text(f"cannot draw this chart: {type(e).__name__}: {e}", style="dim")
        finally:
            budget.spend(time.thread_time() - started)

    def max_points(self) -> int:
        """Enough for the braille resolution of the plot (2 dots per cell), no more."""
        return max(20, min(300, 2 * self.size.width))

    def start(self, title: str, log: bool = False) -> None:
        self.plt.clear_figure()
        self.heading = title
        self.legend = []
        self.log_scale = log
        self.y_seen = []
        self.x_seen: list[float] = []

    def line(self, xs: list, ys: list, label: str = "", **kwargs) -> list:
        """Plot finite (and, on a log scale, positive) points; returns the x values drawn."""
        xs, ys = finite(xs, ys, positive=self.log_scale)
        if label:
            self.legend.append(f"{SYMBOLS.get(kwargs.get('marker', ''), kwargs.get('marker', ''))} {label}")
        if xs:
            if self.log_scale:
                ys = [math.log10(y) for y in ys]
            self.y_seen += [min(ys), max(ys)]
            self.x_seen += [min(xs), max(xs)]
            if len(xs) == 1 and kwargs.get("marker") == "braille":
                kwargs["marker"] = "o"
            self.plt.plot(xs, ys, **kwargs)
        return xs

    def finish(self, xlabel: str = "step") -> None:
        """Ticks, and the legend outside the plot: on the title line as far as it fits, the rest
        after the x axis's title (plotext drops a title wider than its plot, so both are fitted)."""
        room = self.size.width - 12 - len(self.heading) - 3
        top: list[str] = []
        for entry in self.legend:               # the current run's entries come first
            if len("  ".join(top + [entry])) <= room:
                top.append(entry)
        rest = [e for e in self.legend if e not in top]
        if rest and not self.x_seen:            # no x axis to put it under: all of it on top
            top = [fit_legend(self.legend, room)]
            rest = []
        self.plt.title(self.heading + ("   " + "  ".join(top) if top else ""))
        if self.x_seen:
            self.plt.xticks(*step_ticks(min(self.x_seen), max(self.x_seen), max(2, self.size.width // 12)))
            below = fit_legend(rest, self.size.width - 12 - len(xlabel) - 3)
            self.plt.xlabel(xlabel + ("   " + below if below else ""))
        if self.log_scale and self.y_seen:
            lo, hi = min(self.y_seen), max(self.y_seen)
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            self.plt.yticks(*log_ticks(lo, hi))
        self.refresh()

    def markers(self, history: History, xs_seen: list) -> None:
        """A vertical line wherever a live knob took effect, within the plotted range."""
        self.marker_steps = []
        if not xs_seen:
            return
        lo, hi = min(xs_seen), max(xs_seen)
        for step, _ in history.marker_list():
            if lo <= step <= hi:
                self.plt.vline(step, "red")
                self.marker_steps.append(step)
        if self.marker_steps:
            self.legend.append("│ knob")

    def placeholder(self, text: str) -> None:
        self.plt.text(text, 0.5, 0.5, alignment="center")
        self.plt.xlim(0, 1)
        self.plt.ylim(0, 1)
        self.plt.xticks([])
        self.plt.yticks([])


def fit_legend(entries: list[str], width: int) -> str:
    """The legend entries in `width` columns: whole if they fit, else labels cut short, else as
    many as fit and "+k"."""
    text = "  ".join(entries)
    if len(text) <= width:
        return text
    short = [e if len(e) <= 14 else e[:13] + "…" for e in entries]
    for n in range(len(short), 0, -1):
        text = "  ".join(short[:n]) + (f" +{len(short) - n}" if n < len(short) else "")
        if len(text) <= width:
            return text
    return ""


def pin_style(i: int) -> dict:
    """Pinned run i's marker and colour: never the current run's."""
    return {"marker": PIN_MARKERS[i % len(PIN_MARKERS)], "color": COLORS[(2 + i) % len(COLORS)]}


class LossChart(Chart):
    """Training loss (every logged step) and validation loss, pinned runs, knob markers, and the
    step where the run diverged."""

    def draw(self, history: History, pinned: list[Pinned], log: bool = False, smoothed: bool = False) -> None:
        n = self.max_points()
        tx, ty = history.curve("loss", n)
        vx, vy = history.curve("val_loss", n)
        if smoothed:
            ty = smooth(ty)
        self.start("loss" + (" (log)" if log else "") + (" smoothed" if smoothed else ""), log=log)
        seen: list = []
        for i, p in enumerate(pinned):
            seen += self.line(p.loss[0], smooth(p.loss[1]) if smoothed else p.loss[1], label=p.label, **pin_style(i))
        seen += self.line(tx, ty, label="train", marker=MARKERS[0], color=COLORS[0])
        seen += self.line(vx, vy, label="val", marker=VAL_MARKER, color=COLORS[1])
        self.legend = self.legend[len(pinned):] + self.legend[:len(pinned)]     # this run first
        self.markers(history, seen)
        diverged = history.diverged_at
        if diverged is not None:
            self.legend.append(f"✗ diverged at {diverged:,}")
            if seen:
                self.plt.vline(diverged, "red")
                self.plt.text("✗", diverged, max(self.y_seen), color="red")
                self.x_seen.append(diverged)
                self.plt.xlim(min(self.x_seen), max(self.x_seen))
            else:       # it diverged before the first logged step (every training.log_every)
                self.placeholder(f"✗ diverged at step {diverged:,}")
                self.plt.text("before the first logged step", 0.5, 0.3, alignment="center")
        elif not seen:
            self.placeholder("waiting for the first step")
        self.finish()


class AccuracyChart(Chart):
    """Validation accuracy in percent, zoomed to the data; or, toggled (`error_log`), the error
    rate 100 - accuracy on a log axis, where 99% and 99.9% are as far apart as 90% and 99%. A
    regression run's R² instead (`metric`: "accuracy", "r2", or None to follow whichever the
    evaluations carry)."""

    def __init__(self, metric: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.metric = metric
        self.error_log = False

    def plots_r2(self, history: History) -> bool:
        return self.metric == "r2" or self.metric is None and not len(history.val_acc) and bool(len(history.val_r2))

    def draw(self, history: History, pinned: list[Pinned]) -> None:
        r2 = self.plots_r2(history)
        err = self.error_log and not r2

        def scaled(ys: list) -> list:
            if r2:
                return list(ys)
            return [max(ERROR_FLOOR, 100 * (1 - y)) if err else 100 * y for y in ys]

        title = "validation R² (1 = perfect)" if r2 else "validation error % (log)" if err else "validation accuracy %"
        self.start(title, log=err)
        seen: list = []
        for i, p in enumerate(pinned):
            xs, ys = p.val_acc
            seen += self.line(xs, scaled(ys), label=p.label, **pin_style(i))
        ax, ay = history.curve("val_r2" if r2 else "val_acc", self.max_points())
        seen += self.line(ax, scaled(ay), label="val", marker=MARKERS[0], color=COLORS[1])
        self.legend = self.legend[len(pinned):] + self.legend[:len(pinned)]     # this run first
        if not seen:
            self.placeholder("after the first evaluation")
        elif r2:
            low = min((y for y in ay if math.isfinite(y)), default=0.0)
            self.plt.ylim(max(-1.0, min(0.0, low)), 1.0)        # R² falls without bound early on
        elif not err:
            self.plt.ylim(*zoom(self.y_seen))
        self.markers(history, seen)
        self.finish()
        if err and self.y_seen:            # "2%", "0.5%": the decade labels of finish() read as exponents
            lo, hi = min(self.y_seen), max(self.y_seen)
            ticks, _ = log_ticks(lo, hi) if hi - lo > 1e-9 else log_ticks(lo - 0.5, hi + 0.5)
            self.plt.yticks(ticks, [f"{10 ** t:.2g}%" for t in ticks])


def zoom(ys: list[float], lo_limit: float = 0.0, hi_limit: float = 100.0) -> tuple[float, float]:
    """A y range around the data with a margin, within the limits: above 95% the curve still moves."""
    lo, hi = min(ys), max(ys)
    pad = max(1.0, 0.1 * (hi - lo))
    return max(lo_limit, lo - pad), min(hi_limit, hi + pad)


def pick_tensors(names: list[str], limit: int = MAX_TENSORS) -> list[str]:
    """At most `limit` tensor names, weights before biases, in model order."""
    weights = [n for n in names if not n.endswith("bias") and "bias_" not in n]
    rest = [n for n in names if n not in weights]
    return (weights + rest)[:limit]


SPARKS = "▁▂▃▄▅▆▇█"


def spark_rows(curves: dict[str, tuple[list, list]], width: int, rows: int) -> list[str]:
    """One line per tensor, "name ▁▂▄▆█ 3.2e-02": the curve on a log scale shared by every
    row (so a vanishing tensor sits low), then its newest value. With more tensors than `rows`,
    the largest by newest value and a "+k more" line."""
    latest = {n: ys[-1] for n, (_, ys) in curves.items() if ys and math.isfinite(ys[-1])}
    names = [n for n in curves if curves[n][1]]
    if len(names) > rows:
        top = set(sorted(names, key=lambda n: -latest.get(n, 0.0))[:max(1, rows - 1)])
        hidden = len(names) - len(top)
        names = [n for n in names if n in top]
    else:
        hidden = 0
    logs = [math.log10(y) for n in names for y in curves[n][1] if y > 0 and math.isfinite(y)]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 1.0)
    name_w = min(16, max((len(n) for n in names), default=4))
    spark_w = max(4, width - name_w - 10)
    out = []
    for n in names:
        ys = curves[n][1][-spark_w:]
        cells = "".join(" " if not (y > 0 and math.isfinite(y)) else
                        SPARKS[min(7, int((math.log10(y) - lo) / max(hi - lo, 1e-9) * 7.999))] for y in ys)
        last = latest.get(n)
        out.append(f"{n[:name_w]:<{name_w}} {cells:<{spark_w}} " + (f"{last:.1e}" if last is not None else "-"))
    if hidden:
        out.append(f"+{hidden} more (a taller terminal draws them all)")
    return out


class TensorChart(Chart):
    """One curve per parameter tensor on a log scale: gradient norms or update-to-weight ratios.
    Where the plot has room for fewer than 4 tensors' curves (80x24), a table of sparkline rows."""

    def __init__(self, which: str, title: str, **kwargs):
        super().__init__(**kwargs)
        self.which, self.chart_title = which, title
        self.curves: dict[str, tuple[list, list]] = {}

    def capacity(self) -> int:
        return max(1, (self.size.height - 5) // 2)

    def compact(self) -> bool:
        return bool(self.curves) and self.capacity() < min(len(self.curves), 4)

    def draw(self, history: History) -> None:
        self.curves = history.per_tensor(self.which, self.max_points())
        names = pick_tensors(list(self.curves), max(2, min(MAX_TENSORS, self.capacity())))
        more = len(self.curves) - len(names)
        self.start(self.chart_title + (f" (+{more} more)" if more > 0 else "") + " (log)", log=True)
        seen: list = []
        for i, name in enumerate(names):
            seen += self.line(*self.curves[name], label=name, marker=MARKERS[i % len(MARKERS)],
                              color=COLORS[i % len(COLORS)])
        if not seen:
            self.placeholder("waiting for the first step")
        self.markers(history, seen)
        self.finish()

    def render(self):
        if not self.compact():
            return super().render()
        width, rows = self.size.width, self.size.height - 1
        head = Text(f"{self.chart_title} (log)"[:width], style="bold")
        return Text("\n").join([head, *(Text(line) for line in spark_rows(self.curves, width, rows))])


class GapChart(Chart):
    """Nile: validation accuracy per gap length, with chance level (named in the title)."""

    def draw(self, by_gap: dict | None, chance: float | None) -> None:
        self.start("accuracy by gap %" + (f"  ─ chance {100 * chance:.0f}%" if chance else ""))
        if not by_gap or not by_gap.get("gap"):
            self.placeholder("after the first evaluation")
        else:
            # one line per run of gaps with sentences: none is drawn across gaps the data leaves out
            run: list[tuple[float, float]] = []
            for g, acc in [*zip(by_gap["gap"], by_gap["accuracy"]), (None, math.nan)]:
                if math.isfinite(acc):
                    run.append((g, 100 * acc))
                elif run:
                    self.line([x for x, _ in run], [y for _, y in run], marker="braille", color=COLORS[0])
                    run = []
            if chance:
                self.plt.hline(100 * chance, "red")
            self.plt.ylim(0, 100)
        self.finish("gap (filler words)")
