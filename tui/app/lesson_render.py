"""What the teaching scenarios' panels draw, as pure functions returning Rich `Text`.

Each fits the panel area of an 80x24 terminal (about 76 columns by 12 rows) and reads without
colour: regions are shades, points and paths are letters, the gradient is an arrow (STYLE 15b).
The arithmetic lives in `descent.engine.lessons`; these only lay characters out, so the
snapshot of a panel is a string a test can read.
"""

from __future__ import annotations

import math

import numpy as np
from rich.text import Text

WIDTH, HEIGHT = 76, 12
MAP_COLS, MAP_ROWS = 40, 10        # the grid size the two map panels leave room for text beside
SURFACE_SHADES = " ·░▒▓"                 # low loss -> high loss
ARROWS = "→↗↑↖←↙↓↘"                       # by octant, counter-clockwise from east
BLOCKS = " ▁▂▃▄▅▆▇█"
LEVEL_STYLES = ("grey23", "blue", "cyan", "yellow", "red")


# ---- shared helpers ---------------------------------------------------------------------

def resample(values, width: int, how: str = "mean") -> np.ndarray:
    """`values` in `width` columns: the mean (or max) of each bucket, or repeats when fewer.
    A bucket holding a non-finite value is non-finite (a blow-up must stay visible)."""
    v = np.asarray(values, np.float64)
    if len(v) == 0 or width <= 0:
        return np.zeros(0)
    out = np.empty(width)
    for c in range(width):
        lo = c * len(v) // width
        chunk = v[lo:max(lo + 1, (c + 1) * len(v) // width)]
        out[c] = np.inf if not np.all(np.isfinite(chunk)) else (chunk.max() if how == "max" else chunk.mean())
    return out


def sparkline(values, lo: float, hi: float, log: bool = False) -> str:
    """One character per value on BLOCKS (▁ = lo, █ = hi); '!' for a non-finite value."""
    def level(x):
        if not math.isfinite(x):
            return "!"
        if log:
            x, a, b = math.log10(max(x, 1e-300)), math.log10(max(lo, 1e-300)), math.log10(max(hi, 1e-300))
        else:
            a, b = lo, hi
        f = 0.0 if b <= a else min(1.0, max(0.0, (x - a) / (b - a)))
        return BLOCKS[1 + int(round(f * (len(BLOCKS) - 2)))]
    return "".join(level(float(x)) for x in values)


def fmt(x: float) -> str:
    """A short number: 4 significant digits, scientific outside 1e-3..1e5."""
    if not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    return f"{x:.3g}" if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5) else f"{x:.4g}"


def _cell(value: float, lim: tuple[float, float], n: int, flip: bool = False) -> int | None:
    """The cell index of `value` on an axis of n cells over lim, or None when outside."""
    if not math.isfinite(value) or not lim[0] <= value <= lim[1] or lim[1] <= lim[0]:
        return None
    i = min(n - 1, int((value - lim[0]) / (lim[1] - lim[0]) * n))
    return n - 1 - i if flip else i


def _join(grid: list[list[tuple[str, str]]], side: list[Text], gap: int = 2) -> Text:
    """Grid rows of (char, style) on the left, the `side` lines on the right."""
    out = Text()
    for r in range(max(len(grid), len(side))):
        if r < len(grid):
            for ch, style in grid[r]:
                out.append(ch, style)
        if r < len(side):
            out.append(" " * gap)
            out.append_text(side[r])
        if r < max(len(grid), len(side)) - 1:
            out.append("\n")
    return out


def x_axis(left: str, name: str, right: str, cols: int) -> str:
    """'left   name   right' spread over `cols` characters (at least one space apart)."""
    room = cols - len(left) - len(right) - len(name)
    if room < 2:
        return f"{left} {name} {right}"
    return left + " " * (room // 2) + name + " " * (room - room // 2) + right


def _axis_rows(rows: list[list[tuple[str, str]]], top: str, bottom: str, label_w: int) -> list:
    """Prefix each grid row with a y-axis label column: the top and bottom values, else '│'."""
    out = []
    for r, row in enumerate(rows):
        label = top if r == 0 else bottom if r == len(rows) - 1 else ""
        out.append([(f"{label:>{label_w}}│", "dim")] + row)
    return out


# ---- one neuron: descent on the loss surface --------------------------------------------

def descent_arrow(gw: float, gb: float, w_lim, b_lim, cols: int, rows: int) -> str:
    """The arrow of the descent direction -grad as it looks on screen (w across, b up), in
    cell units, so a steep but narrow axis does not hide the other."""
    dc = -gw * cols / (w_lim[1] - w_lim[0])
    up = -gb * rows / (b_lim[1] - b_lim[0])
    if not (math.isfinite(dc) and math.isfinite(up)) or dc == up == 0:
        return "·"
    return ARROWS[int(round(math.atan2(up, dc) / (math.pi / 4))) % 8]


def render_loss_surface(loss: np.ndarray, w_lim, b_lim, path: np.ndarray, grad: tuple[float, float],
                        lr: float, lr_max: float, minimum: tuple[float, float] | None = None,
                        width: int = WIDTH) -> Text:
    """MSE(w, b) shaded on a log scale (`loss` (rows, cols) from `lessons.mse_grid`, row 0 =
    largest b), the (w, b) path ('o', now '@'), the minimum '+', the descent arrow beside '@',
    and on the right w, b, the gradient and the stable-rate threshold 2/lambda_max."""
    rows, cols = loss.shape
    logl = np.log10(np.maximum(loss, 1e-12))
    lo, hi = float(logl.min()), float(logl.max())
    levels = np.zeros_like(logl, dtype=int) if hi <= lo else \
        np.minimum(len(SURFACE_SHADES) - 1, ((logl - lo) / (hi - lo) * len(SURFACE_SHADES)).astype(int))
    grid = [[(SURFACE_SHADES[k], LEVEL_STYLES[k]) for k in row] for row in levels]

    def put(w, b, ch, style):
        c, r = _cell(w, w_lim, cols), _cell(b, b_lim, rows, flip=True)
        if c is not None and r is not None:
            grid[r][c] = (ch, style)
        return c, r

    path = np.asarray(path, np.float64).reshape(-1, 2)
    for w, b in path[:-1]:
        put(w, b, "o", "white")
    if minimum is not None:
        put(*minimum, "+", "bold green")
    w, b = path[-1] if len(path) else (math.nan, math.nan)
    arrow = descent_arrow(grad[0], grad[1], w_lim, b_lim, cols, rows)
    c, r = put(w, b, "@", "bold magenta")
    if c is not None and r is not None:
        dc = {"→": 1, "↗": 1, "↘": 1, "←": -1, "↖": -1, "↙": -1}.get(arrow, 0)
        dr = {"↑": -1, "↗": -1, "↖": -1, "↓": 1, "↙": 1, "↘": 1}.get(arrow, 0)
        if 0 <= r + dr < rows and 0 <= c + dc < cols and (dr or dc):
            grid[r + dr][c + dc] = (arrow, "bold magenta")

    label_w = max(len(fmt(b_lim[1])), len(fmt(b_lim[0])))
    body = _axis_rows(grid, fmt(b_lim[1]), fmt(b_lim[0]), label_w)
    body.append([(" " * label_w + "└" + "─" * cols, "dim")])
    body.append([(" " * (label_w + 1) + x_axis(fmt(w_lim[0]), "w", fmt(w_lim[1]), cols), "dim")])

    stable = lr < lr_max
    side = [Text(f"w {fmt(w)}   b {fmt(b)}", "bold"),
            Text(f"grad ({fmt(grad[0])}, {fmt(grad[1])})"),
            Text(f"step {arrow}  (along -grad)"),
            Text(""),
            Text(f"lr {fmt(lr)}"),
            Text(f"stable below 2/λmax = {fmt(lr_max)}", "bold"),
            Text("lr OK: converges" if stable else "lr TOO BIG: diverges",
                 "green" if stable else "bold red"),
            Text(""),
            Text("@ now  o path  + minimum"),
            Text(f"loss (log) {SURFACE_SHADES[1]} low {SURFACE_SHADES[-1]} high")]
    return _fit(_join(body, side), width)


# ---- activations: the decision boundary -------------------------------------------------

def linear_map_lines(W: np.ndarray, b: np.ndarray, names=("x1", "x2")) -> list[str]:
    """The collapsed map as equations, one per output: 'z = 1.2·x1 - 0.3·x2 + 0.05'."""
    W, b = np.atleast_2d(W), np.asarray(b).reshape(-1)
    lines = []
    for k in range(W.shape[0]):
        terms = ""
        for j, v in enumerate(W[k]):
            sign = ("-" if v < 0 else "") if j == 0 else (" - " if v < 0 else " + ")
            terms += f"{sign}{fmt(abs(v))}·{names[j] if j < len(names) else f'x{j + 1}'}"
        name = "z" if W.shape[0] == 1 else f"z{k}"
        lines.append(f"{name} = {terms} {'-' if b[k] < 0 else '+'} {fmt(abs(b[k]))}")
    return lines


def render_boundary(prob: np.ndarray, xlim, ylim, points: np.ndarray, labels: np.ndarray,
                    accuracy: float | None = None, collapsed: tuple[np.ndarray, np.ndarray] | None = None,
                    width: int = WIDTH) -> Text:
    """The plane shaded by the prediction (`prob` (rows, cols) of P(class 1) from
    `lessons.boundary_grid`): '░' predicts 1, blank predicts 0, '·' is the unsure band
    (0.4..0.6); points are 'x' (class 1) and 'o' (class 0). `collapsed` = the identity stack's
    single map (W, b), written out on the right."""
    rows, cols = prob.shape
    grid = []
    for row in prob:
        line = []
        for p in row:
            if abs(p - 0.5) < 0.1:
                line.append(("·", "yellow"))
            else:
                line.append(("░", "dark_orange") if p >= 0.5 else (" ", "on grey11"))
        grid.append(line)
    line_mark = None
    if collapsed is not None and np.atleast_2d(collapsed[0]).shape == (1, 2):
        line_mark = _draw_line(grid, np.atleast_2d(collapsed[0])[0], float(np.ravel(collapsed[1])[0]), xlim, ylim)
    for (px, py), lab in zip(np.asarray(points, np.float64), np.asarray(labels)):
        c, r = _cell(px, xlim, cols), _cell(py, ylim, rows, flip=True)
        if c is not None and r is not None:
            grid[r][c] = ("x", "bold dark_orange") if lab == 1 else ("o", "bold blue")
    body = _axis_rows(grid, fmt(ylim[1]), fmt(ylim[0]), max(len(fmt(ylim[1])), len(fmt(ylim[0]))))
    side = [Text("x class 1   o class 0"), Text("░ predicts 1  blank 0"), Text("· unsure (p 0.4-0.6)")]
    if accuracy is not None:
        side += [Text(""), Text(f"test accuracy {accuracy:.1%}", "bold")]
    if collapsed is not None:
        side += [Text(""), Text("linear stack collapses to:", "bold")]
        side += [Text(s) for s in linear_map_lines(*collapsed)]
        side += [Text(f"{line_mark} z = 0: a straight line, any depth" if line_mark else "a straight line, any depth")]
    return _fit(_join(body, side), width)


def _draw_line(grid, w: np.ndarray, b: float, xlim, ylim) -> str | None:
    """Mark the cells that the line w·(x, y) + b = 0 crosses with a character of its slope on
    screen; returns that character (None when the line misses the window)."""
    rows, cols = len(grid), len(grid[0])
    xs = xlim[0] + (np.arange(cols + 1)) * (xlim[1] - xlim[0]) / cols              # cell edges
    ys = ylim[1] - (np.arange(rows + 1)) * (ylim[1] - ylim[0]) / rows
    z = w[0] * xs[None, :] + w[1] * ys[:, None] + b                                # (R+1, C+1) corners
    corners = np.stack([z[:-1, :-1], z[:-1, 1:], z[1:, :-1], z[1:, 1:]])
    crossed = (corners.min(axis=0) <= 0) & (corners.max(axis=0) >= 0)
    if not crossed.any() or not np.any(w):
        return None
    # the slope in cells (x right, y up): dy/dx = -w0/w1 in data units, scaled by cell sizes
    cw, ch = (xlim[1] - xlim[0]) / cols, (ylim[1] - ylim[0]) / rows
    slope = math.inf if w[1] == 0 else -w[0] / w[1] * cw / ch
    mark = "─" if abs(slope) < 0.25 else "│" if abs(slope) > 4 else ("╱" if slope > 0 else "╲")
    for r, c in zip(*np.nonzero(crossed)):
        grid[r][c] = (mark, "bold")
    return mark


# ---- exploding gradients: norms before and after clipping -------------------------------

def render_clipping(norms: np.ndarray, after: np.ndarray, clip_norm: float, share: float,
                    ratio: float, width: int = WIDTH, total: int | None = None) -> Text:
    """Global gradient norms per step before and after clipping as log-scale sparklines on
    one shared scale, the steps that were clipped ('|'), and the clipped share (of `total`
    steps, where not every step was logged)."""
    label_w, tail_w = 8, 12
    cols = max(8, width - label_w - tail_w - 2)
    before_c = resample(norms, cols, "max")
    after_c = resample(after, cols, "max")
    finite = np.concatenate([before_c[np.isfinite(before_c)], after_c[np.isfinite(after_c)]])
    finite = finite[finite > 0]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (1.0, 1.0)
    norms = np.asarray(norms, np.float64)
    clipped = ~(norms <= clip_norm) if clip_norm > 0 else np.zeros(len(norms), bool)
    marks = resample(clipped.astype(float), cols, "max")
    out = Text()
    out.append(f"gradient norm per step, log scale {fmt(lo)} .. {fmt(hi)}\n", "bold")
    out.append(f"{'before':<{label_w}}│"); out.append(sparkline(before_c, lo, hi, log=True), "red")
    out.append(f"│ max {fmt(float(np.max(norms))) if len(norms) else '-'}\n")
    out.append(f"{'after':<{label_w}}│"); out.append(sparkline(after_c, lo, hi, log=True), "green")
    out.append(f"│ {'clip ' + fmt(clip_norm) if clip_norm > 0 else 'clip off'}\n")
    out.append(f"{'clipped':<{label_w}}│")
    out.append("".join("|" if m > 0 else "·" for m in marks), "yellow")
    out.append("│\n\n")
    out.append(f"clipped {share:.0%} of {total or len(norms)} steps", "bold")
    out.append(f"   max/median norm {fmt(ratio)}")
    if ratio >= 1e3:
        out.append("  EXPLODING", "bold red")
    return _fit(out, width)


# ---- weather: forecast against truth ----------------------------------------------------

def render_forecast(times: list[str], truth: np.ndarray, forecast: np.ndarray,
                    persistence: np.ndarray | None = None, unit: str = "", width: int = WIDTH,
                    height: int = HEIGHT) -> Text:
    """Truth '•' and forecast '+' ('*' where they share a cell) over the test period, then the
    absolute error of the model and of persistence per column, and both MAEs."""
    truth, forecast = np.asarray(truth, np.float64), np.asarray(forecast, np.float64)
    label_w = 7
    cols = max(8, width - label_w - 1)
    rows = max(3, height - 5)
    t_c, f_c = resample(truth, cols), resample(forecast, cols)
    both = np.concatenate([t_c, f_c])
    both = both[np.isfinite(both)]
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    lim = (lo, hi if hi > lo else lo + 1)
    grid = [[(" ", "")] * cols for _ in range(rows)]
    for c in range(len(t_c)):
        rt, rf = _cell(t_c[c], lim, rows, flip=True), _cell(f_c[c], lim, rows, flip=True)
        if rt is not None:
            grid[rt][c] = ("•", "cyan")
        if rf is not None:
            grid[rf][c] = ("*", "bold white") if rf == rt else ("+", "magenta")
    out = Text()
    out.append(f"test period: truth • forecast + (both *), {unit or 'raw units'}\n", "bold")
    for r, row in enumerate(grid):
        label = fmt(lim[1]) if r == 0 else fmt(lim[0]) if r == rows - 1 else ""
        out.append(f"{label:>{label_w}}│", "dim")
        for ch, style in row:
            out.append(ch, style)
        out.append("\n")
    first, last = (str(times[0]), str(times[-1])) if len(times) else ("", "")
    out.append(" " * (label_w + 1) + x_axis(first, "time", last, cols) + "\n", "dim")
    err_m = np.abs(forecast - truth)
    errs = [("model", err_m)]
    if persistence is not None:
        errs.append(("persist", np.abs(np.asarray(persistence, np.float64) - truth)))
    top = max(float(np.max(resample(e, cols), initial=0.0)) for _, e in errs)
    top = top if math.isfinite(top) and top > 0 else 1.0
    for name, e in errs:
        out.append(f"{name:>{label_w}}│", "dim")
        out.append(sparkline(resample(e, cols), 0.0, top), "magenta" if name == "model" else "cyan")
        out.append("\n")
    out.append(f"|error| ▁ 0 .. █ {fmt(top)}   MAE model {fmt(float(np.mean(err_m)))}", "bold")
    if persistence is not None:
        mae_p = float(np.mean(errs[1][1]))
        better = float(np.mean(err_m)) < mae_p
        out.append(f"  persistence {fmt(mae_p)}", "bold")
        out.append("  model wins" if better else "  persist wins", "green" if better else "red")
    return _fit(out, width)


def _fit(text: Text, width: int) -> Text:
    """Each line cut to `width` cells, so a narrow panel crops rather than wraps."""
    lines = text.split("\n")
    for line in lines:
        line.truncate(width)
    return Text("\n").join(lines)


# ---- regression: prediction against target ----------------------------------------------

SCATTER_MARKS = "·oO@"          # 1, 2-3, 4-7, 8+ points in a cell


def render_scatter(pred: np.ndarray, target: np.ndarray, cols: int = 40, rows: int = 10,
                   side: list[str] | None = None, width: int = WIDTH) -> Text:
    """Predictions (up) against targets (across) on one shared scale: a cell's mark says how
    many points fall in it, '/' is the line prediction = target that a perfect model sits on;
    `side` lines (metrics) go on the right."""
    pred = np.asarray(pred, np.float64).reshape(-1)
    target = np.asarray(target, np.float64).reshape(-1)
    ok = np.isfinite(pred) & np.isfinite(target)
    both = np.concatenate([pred[ok], target[ok]])
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    lim = (lo, hi if hi > lo else lo + 1)
    counts = np.zeros((rows, cols), np.int64)
    for p, t in zip(pred[ok], target[ok]):
        c, r = _cell(t, lim, cols), _cell(p, lim, rows, flip=True)
        counts[r, c] += 1
    grid = [[(" ", "")] * cols for _ in range(rows)]
    for c in range(cols):                       # the diagonal: the row holding this column's centre
        r = _cell(lim[0] + (c + 0.5) * (lim[1] - lim[0]) / cols, lim, rows, flip=True)
        grid[r][c] = ("/", "dim")
    for r, c in zip(*np.nonzero(counts)):
        k = min(len(SCATTER_MARKS) - 1, int(np.log2(counts[r, c])))
        grid[r][c] = (SCATTER_MARKS[k], "bold cyan")
    label_w = max(len(fmt(lim[0])), len(fmt(lim[1])))
    body = _axis_rows(grid, fmt(lim[1]), fmt(lim[0]), label_w)
    body.append([(" " * label_w + "└" + "─" * cols, "dim")])
    body.append([(" " * (label_w + 1) + x_axis(fmt(lim[0]), "target", fmt(lim[1]), cols), "dim")])
    lines = [Text("prediction (up) vs target", "bold"), Text("/ perfect: prediction = target"),
             Text(f"{SCATTER_MARKS[0]} 1  {SCATTER_MARKS[1]} 2+  {SCATTER_MARKS[2]} 4+  "
                  f"{SCATTER_MARKS[3]} 8+ points"), Text("")]
    lines += [Text(s) for s in side or []]
    return _fit(_join(body, lines), width)
