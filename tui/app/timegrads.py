"""The time-gradient views: how far back from the answer the gradient reaches, and inside the cell.

`TimeGradients` is a heatmap of ||dL/dh_t|| / ||dL/dh_answer|| (engine: time_grad_ratio) with
columns = words back from each sentence's answer, the answer at the right edge, so that a dying
gradient reads as colour fading from right to left; rows are the latest logged steps. Colours
follow a perceptual ramp (viridis) over a fixed log scale, 1 down to FLOOR, so two runs compare
by eye; 16-colour terminals and NO_COLOR get shades instead. `RatioChart` draws the latest curve
against the same axis on a log scale, with pinned runs (RNN, LSTM, GRU) overlaid. `GateChart`
shows the evaluation's gate means per step (LSTM forget/input/output, GRU update) or attention's
weights from the answer back over a sample sentence (engine/inside.py).

On Nile, the marks name where the fact sits: for a sentence with gap g the answer "?" is 0 words
back, fillers 1..g, and the fact's six words g+1..g+6. Sentences of different gaps share one
axis, so the marks show the fact of the longest and of the shortest sentences.
"""

from __future__ import annotations

import math
import os
import time

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget

from descent.tui.app.charts import COLORS, MARKERS, Chart, budget
from descent.tui.app.history import HEATMAP_ROWS, History, Pinned

STATE_GRAD = "‖dL/dh‖"               # what our engine records per time step: the state's gradient
INPUT_GRAD = "‖dL/dx‖"               # torch's fused layers hide it: the gradient at the layer's input
FLOOR_DECADES = 12                   # the ramp spans 1 .. 1e-12; smaller ratios get the darkest colour
LEGEND_STEP = 3                      # a legend label every 3 decades
SHADES = " ░▒▓█"                     # no-colour fallback, light = small ratio
MARKER_GLYPHS = {"braille": "⣿", "dot": "•"}   # how plotext draws a marker name, for the legend line
OPENING = 6                          # words of a Nile fact (engine.data.nile.OPENING_LEN)
# viridis at 9 evenly spaced stops (matplotlib's table): dark purple (vanished) -> yellow (intact)
VIRIDIS = ((68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
           (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37))


def ramp(x: float) -> str:
    """The colour for x in [0, 1] (0 = vanished, 1 = as strong as at the answer), '#rrggbb'."""
    x = min(1.0, max(0.0, x)) * (len(VIRIDIS) - 1)
    i = min(int(x), len(VIRIDIS) - 2)
    f = x - i
    rgb = [round(a + (b - a) * f) for a, b in zip(VIRIDIS[i], VIRIDIS[i + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def level(ratio: float) -> float:
    """A ratio on the ramp: 1 (or more) -> 1.0, 10**-FLOOR_DECADES (or less, or 0) -> 0.0."""
    if not (ratio > 0) or not math.isfinite(ratio):
        return 0.0
    return min(1.0, max(0.0, 1.0 + math.log10(ratio) / FLOOR_DECADES))


def shade(x: float) -> str:
    """A ramp position [0, 1] as one of the SHADES, a quarter of the ramp (3 decades) each:
    █ down to 1e-3, ▓ to 1e-6, ▒ to 1e-9, ░ to 1e-12, blank below."""
    return SHADES[0] if x <= 0 else SHADES[1 + min(3, int(x * 4))]


def use_colour(widget: Widget | None = None) -> bool:
    """Colour when the terminal has 256 colours or truecolor (Rich's detection, as the app's
    console sees it) and NO_COLOR is unset; 16 colours cannot draw a perceptual ramp."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        system = widget.app.console.color_system if widget is not None else "truecolor"
    except Exception:                 # not mounted (tests call render helpers directly)
        system = "truecolor"
    return system in ("256", "truecolor")


def squeeze(values: list[float], width: int) -> list[float]:
    """`values` resampled to `width` columns: geometric mean of buckets (shrink) or repeats (grow)."""
    n = len(values)
    if n == 0 or width <= 0:
        return []
    out = []
    for c in range(width):
        lo = c * n // width
        hi = max(lo + 1, (c + 1) * n // width)
        chunk = [v for v in values[lo:hi] if v > 0 and math.isfinite(v)]
        out.append(math.exp(sum(math.log(v) for v in chunk) / len(chunk)) if chunk else 0.0)
    return out


def columns_for(t: int, width: int) -> int:
    """Heatmap columns for t distances in `width` cells: whole repeats when t is small."""
    return max(1, min(width, t * max(1, width // max(1, t))))


def heat_row(ratios: list[float], cols: int) -> list[float]:
    """Ramp positions for one row, answer (distance 0) in the rightmost column."""
    return [level(v) for v in reversed(squeeze(ratios, cols))]


def legend(colour: bool) -> Text:
    """Orders of magnitude along the ramp: '1 ███ 1e-3 ███ ... 1e-12', one block per decade
    (shades without colour)."""
    out = Text("")
    if not colour:
        for k in range(4, 0, -1):
            out.append(f"{SHADES[k]} ≥1e-{3 * (4 - k) + 3} ", style="")
        out.append("blank: less", style="dim")
        return out
    for e in range(0, FLOOR_DECADES + 1, LEGEND_STEP):
        out.append("1 " if e == 0 else f" 1e-{e} " if e < FLOOR_DECADES else f" 1e-{e}", style="dim")
        if e < FLOOR_DECADES:
            for k in range(LEGEND_STEP):
                out.append("█", style=ramp(1.0 - (e + k + 0.5) / FLOOR_DECADES))
    return out


def marks_line(t: int, cols: int, layout: tuple[int, int] | None) -> str:
    """Under the heatmap: 'F' where the fact of the longest (and shortest) sentences sits, '-'
    over the filler gap every sentence has, '?' at the answer; same column mapping as heat_row."""
    if not layout:
        return ""
    min_gap, gap = layout
    kinds = [" "] * t
    for d in range(t):
        if d == 0:
            kinds[d] = "?"
        elif gap + 1 <= d <= gap + OPENING or min_gap + 1 <= d <= min_gap + OPENING:
            kinds[d] = "F"
        elif d <= min_gap:
            kinds[d] = "-"
        elif d <= gap:
            kinds[d] = "·"
    out = []
    for c in range(cols):                                  # the same buckets as squeeze, reversed
        lo = c * t // cols
        hi = max(lo + 1, (c + 1) * t // cols)
        chunk = kinds[lo:hi]
        out.append(next((k for k in "?F-·" if k in chunk), " "))
    return "".join(reversed(out))


class TimeGradients(Widget):
    """The answer-aligned heatmap. `draw` takes the rows; `render` lays them out for the size."""

    DEFAULT_CSS = """
    TimeGradients { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows: list[tuple[int, dict[str, list[float]]]] = []
        self.layout_marks: tuple[int, int] | None = None
        self.grad = STATE_GRAD

    def draw(self, history: History, layout: tuple[int, int] | None = None, grad: str = STATE_GRAD) -> None:
        self.rows = history.ratio_rows(HEATMAP_ROWS)
        self.layout_marks, self.grad = layout, grad
        self.refresh()

    def render(self) -> Text:
        started = time.thread_time()
        try:
            return self.render_rows(self.size.width, self.size.height, use_colour(self))
        finally:
            budget.spend(time.thread_time() - started)

    def render_rows(self, width: int, height: int, colour: bool) -> Text:
        width = max(12, width)
        if not self.rows:
            return Text("How far back the gradient reaches appears here for sequence models, after the "
                        "first logged step.", style="dim")
        extra = 4 if self.layout_marks else 3
        rows = self.rows[-max(1, height - extra):]
        layer = next(iter(rows[-1][1]))
        picked = [(step, r.get(layer, [])) for step, r in rows]
        t = max(len(v) for _, v in picked)
        label_w = max(len(str(step)) for step, _ in picked) + 1
        cols = columns_for(t, width - label_w)
        pad = " " * (width - label_w - cols)
        head = Text(f"← words back · {self.grad} ÷ answer's · answer →", style="bold")
        if len(head) + len(layer) + 9 <= width:
            head.append(f" (layer {layer})", style="dim")
        head.truncate(width)
        lines = [head]
        for step, ratios in picked:
            # the blanks before a short label a run of their own: an SVG text run that starts
            # with a blank is drawn a column left where the renderer drops it (rsvg-convert)
            line = Text(" " * (label_w - 1 - len(str(step))))
            line.append(f"{step} " + pad, style="dim")
            for x in heat_row(ratios, cols):
                if colour:
                    line.append("█", style=ramp(x))
                else:
                    line.append(shade(x))
            lines.append(line)
        marks = marks_line(t, cols, self.layout_marks)
        if marks:
            lines.append(Text(" " * (label_w + len(pad))).append(marks, style="bold"))
            min_gap, gap = self.layout_marks
            lines.append(Text(f"F fact at gap {min_gap} and {gap} · fillers"[:width], style="dim"))
        lines.append(legend(colour))
        return Text("\n").join(lines)


def recent_curve(history: History, n: int = 5) -> tuple[str, list[float]] | None:
    """The geometric mean of the last `n` ratio rows of the first sequence layer (less noise)."""
    rows = history.ratio_rows(n)
    if not rows:
        return None
    layer = next(iter(rows[-1][1]))
    curves = [r[layer] for _, r in rows if layer in r]
    t = len(curves[-1])
    out = []
    for d in range(t):
        vals = [c[d] for c in curves if d < len(c) and c[d] > 0 and math.isfinite(c[d])]
        out.append(math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else 0.0)
    return layer, out


def fit(text: str, width: int) -> str:
    """text cut to `width` characters, with an ellipsis."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def floored(ratios) -> list[float]:
    """Ratios clipped at the heatmap's floor: below 1e-12 the gradient is gone, however far."""
    return [max(v, 10.0 ** -FLOOR_DECADES) if math.isfinite(v) else v for v in ratios]


RATIO_YLIM = (-FLOOR_DECADES - 0.3, 2.0)


def decade_ticks(rows: int, lim: tuple[float, float] = RATIO_YLIM) -> tuple[list[float], list[str]]:
    """Ticks every 3, 4, 6 or 12 decades from 1 down to the floor: the densest whose ticks land
    on distinct rows of a `rows`-row plot (two on one row draw one label over the other)."""
    def row(t: float) -> int:                              # plotext's mapping of a value to a row
        return math.floor(round(0.5 + (max(1, rows) - 1) * (t - lim[0]) / (lim[1] - lim[0]), 8))

    for k in (3, 4, 6, 12):
        ticks = [float(-e) for e in range(FLOOR_DECADES, -1, -k)]
        if len({row(t) for t in ticks}) == len(ticks):
            break
    return ticks, ["1e0" if t == 0 else f"1e-{int(-t)}" for t in ticks]


class RatioChart(Chart):
    """||dL/dh_t|| / ||dL/dh_answer|| against words back (answer at the right), log y; pinned runs."""

    def draw(self, history: History, pinned: list[Pinned], layout: tuple[int, int] | None = None,
             grad: str = STATE_GRAD) -> None:
        self.start(f"{grad} ÷ answer's, log" + (" · g gates" if one_chart(self) else ""), log=True)
        current = recent_curve(history)
        drawn, names = False, []
        for i, pin in enumerate(pinned[-(len(MARKERS) - 1):]):
            if pin.time_ratio:
                k = 1 + i % (len(COLORS) - 1)
                marker = MARKERS[k % len(MARKERS)]
                drawn |= bool(self.line([-d for d in range(len(pin.time_ratio))], floored(pin.time_ratio),
                                        marker=marker, color=COLORS[k]))
                names.append(f"{MARKER_GLYPHS.get(marker, marker)} {pin.label}")
        if current:
            drawn |= bool(self.line([-d for d in range(len(current[1]))], floored(current[1]),
                                    marker="braille", color=COLORS[0]))
            names.insert(0, f"{MARKER_GLYPHS['braille']} this run")
        if not drawn:
            self.placeholder("after the first logged step")
            self.finish()
            return
        self.y_seen += [2.0, -FLOOR_DECADES]                             # a fixed scale, headroom for the legend
        self.plt.ylim(*RATIO_YLIM)
        if layout:
            self.plt.vline(-(layout[1] + 1), "red")                    # the fact's last word, longest gap
        # the legend goes under the plot: inside it would cover the curves, which fill the top
        # (plotext drops a label wider than the plot, so it is cut to fit)
        self.finish(fit("  ".join(names) + ("  | fact" if layout else ""), self.size.width - 8))
        self.plt.yticks(*decade_ticks(self.size.height - 5))            # rows between title and x axis
        lo, hi = min(self.x_seen), max(self.x_seen)
        ticks = [x for x in range(int(lo), int(hi) + 1) if x % max(1, round((hi - lo) / 5 / 10) * 10 or 1) == 0]
        self.plt.xticks(ticks, [str(-x) for x in ticks])


class GateChart(Chart):
    """Inside the cell at the last evaluation: gate means per step back from the answer (LSTM,
    GRU), or attention weights over the sample sentence."""

    def draw(self, inside: dict | None, step: int | None = None, cell: str = "", torch_run: bool = False) -> None:
        self.start("inside the cell" + (f", step {step}" if step is not None else "")
                   + (" · g back" if one_chart(self) else ""))
        layers = (inside or {}).get("layers") or {}
        if not layers:
            self.placeholder("a plain RNN has no gates" if cell == "rnn" else
                             "torch backend: no gates" if torch_run else "gates: after an evaluation")
            self.finish()
            return
        name, curves = next(iter(layers.items()))
        words, gap = inside.get("words") or [], inside.get("gap")
        if "attention" in curves:
            weights = curves["attention"]
            xs = [-(len(weights) - 1 - i) for i in range(len(weights))]
            self.line(xs, weights, marker="braille", color=COLORS[0])
            xlabel = fit("attention: " + " ".join(words[:OPENING]) + (f" … {gap} fillers … ?" if gap else ""),
                         self.size.width - 8)
        else:
            names, short = [], []
            for i, (gate, values) in enumerate(curves.items()):
                marker = MARKERS[i % len(MARKERS)]
                self.line([-d for d in range(len(values))], values, marker=marker, color=COLORS[i % len(COLORS)])
                # the mean over the fillers in the legend: lines within a row of each other
                # (an LSTM's input and output gates) still read apart, colour or not
                span = [v for v in values[1:gap + 1 if gap else None] if math.isfinite(v)] or values
                glyph, mean = MARKER_GLYPHS.get(marker, marker), f"{sum(span) / len(span):.2f}"
                names.append(f"{glyph} {gate} {mean}")
                short.append(f"{glyph} {gate[0]} {mean.lstrip('0')}")           # 80x24: f .84
            lo, hi = gate_range([v for values in curves.values() for v in values])
            self.plt.ylim(lo, hi)
            self.plt.yticks([lo, (lo + hi) / 2, hi], [f"{lo:.2f}", f"{(lo + hi) / 2:.3g}", f"{hi:.2f}"])
            fact, room = ("  | fact" if gap is not None else ""), self.size.width - 8
            xlabel = "  ".join(names) + fact
            if len(xlabel) > room:
                xlabel = fit(" ".join(short) + fact.replace("  ", " "), room)
        if gap is not None:
            self.plt.vline(-(gap + 1), "red")                          # the sample's fact, last word
        self.finish(xlabel)
        lo, hi = min(self.x_seen), max(self.x_seen)
        step_ = max(1, round((hi - lo) / 5 / 10) * 10 or 1)
        ticks = [x for x in range(int(lo), int(hi) + 1) if x % step_ == 0]
        self.plt.xticks(ticks, [str(-x) for x in ticks])


def gate_range(values: list[float], pad: float = 0.02, least: float = 0.1) -> tuple[float, float]:
    """The gate axis zoomed to the data, in steps of 0.05 within [0, 1], at least `least` wide:
    an LSTM's gates sit at 0.75-0.9, and on a 0-1 axis their lines share the same few rows."""
    finite_ = [v for v in values if math.isfinite(v)]
    if not finite_:
        return 0.0, 1.0
    lo = max(0.0, math.floor((min(finite_) - pad) * 20) / 20)
    hi = min(1.0, math.ceil((max(finite_) + pad) * 20) / 20)
    if hi - lo < least:
        lo, hi = (max(0.0, hi - least), hi) if hi - least >= 0 else (0.0, least)
    return lo, hi


def one_chart(chart: Widget) -> bool:
    """Whether the time tab's chart column shows one chart at a time (see TimeCharts)."""
    parent = chart.parent
    return (isinstance(parent, TimeCharts) and not parent.has_class("-no-gates")
            and (parent.has_class("-one") or parent.has_class("-gates")))


class TimeCharts(Vertical):
    """The ratio chart above the gate chart; where the two do not fit (80x24), one at a time,
    the ratio chart first, and `g` swaps them (at any size, `g` gives the gates the column)."""

    DEFAULT_CSS = """
    TimeCharts.-one > GateChart { display: none; }
    TimeCharts.-gates > GateChart { display: block; }
    TimeCharts.-gates > RatioChart { display: none; }
    TimeCharts.-no-gates > GateChart { display: none; }
    TimeCharts.-no-gates > RatioChart { display: block; }
    """
    BOTH_ROWS = 2 * 8              # each chart needs about 8 rows to show its curves apart

    def on_resize(self, event) -> None:
        one = event.size.height < self.BOTH_ROWS
        if one != self.has_class("-one"):
            self.set_class(one, "-one")
            redraw = getattr(self.screen, "redraw", None)           # the titles name the g key
            if redraw is not None:
                self.call_after_refresh(redraw, True)

    def swap(self) -> None:
        self.toggle_class("-gates")


def toggle_gates(screen) -> bool:
    """The `g` key: the gate chart in place of the ratio chart, or back. False without a time tab
    or its gate chart (a run that records no gates)."""
    charts = screen.query(TimeCharts)
    if not charts or charts.first().has_class("-no-gates"):
        return False
    charts.first().swap()
    return True


def has_time_view(layers) -> bool:
    """Whether a model's layer specs hold a sequence layer whose gradients reach back in time."""
    return any(layer.get("type") in ("rnn", "lstm", "gru", "attention") for layer in layers)


def nile_layout(scenario) -> tuple[int, int] | None:
    """(min_gap, gap) of a Nile scenario, for the marks; None for other data."""
    if scenario.data.source != "nile":
        return None
    opts = scenario.data.options
    return int(opts.get("min_gap", 0)), int(opts.get("gap", 100))


def time_widgets():
    """The time-gradient tab: the heatmap at the left, the ratio and gate charts at the right."""
    from textual.containers import Horizontal

    return Horizontal(TimeGradients(id="heatmap"), TimeCharts(RatioChart(id="ratio-curve"), GateChart(id="gates"),
                                                              id="time-charts"), id="time-view")


def grad_name(screen) -> str:
    """The per-time-step gradient a run records: the state's (our engine), or the input's where
    torch trained: the session's backend (`--backend` included), else the watched run's
    scenario.toml, or a Monitor run (a stand-in with no gates)."""
    session, scenario = getattr(screen, "session", None), screen.scenario
    backend = session.backend if session is not None else getattr(getattr(scenario, "training", None), "backend", "")
    return INPUT_GRAD if backend == "torch" or not getattr(scenario, "gates", True) else STATE_GRAD


def time_draws(screen, history: History, pins: tuple) -> list:
    """(widget, stamp, draw) for the dashboard's redraw: each redraws only when its data changed."""
    h, layout, grad = history, nile_layout(screen.scenario), grad_name(screen)
    cell = next((layer.get("type") for layer in screen.scenario.model.layers if has_time_view([layer])), "")
    return [(screen.query_one(TimeGradients), (id(h), h.step_version), lambda c: c.draw(h, layout, grad)),
            (screen.query_one(RatioChart), (id(h), h.step_version, pins),
             lambda c: c.draw(h, screen.pinned, layout, grad)),
            (screen.query_one(GateChart), (id(h), h.eval_version),
             lambda c: c.draw(h.inside, h.inside_step, cell, grad == INPUT_GRAD))]
