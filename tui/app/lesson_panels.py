"""The teaching scenarios' panels (issue 12): neuron, activations, exploding, weather.

Each is a `ScenarioPanel` with one view; the drawing is `lesson_render`'s, the arithmetic
`engine.lessons`'. What they read, so the engine side can match:

- neuron: `session.dataset.x_train/y_train` (one input, one target), `trainer.state_dict()` (one
  (1, 1) weight and one (1,) bias), `session.lr_now()`, `session.step`, `session.state`. The
  path is the weights sampled while training runs (SAMPLE_SECONDS), not a replay.
- activations: `dataset.x_test/y_test` (2-D points), `session.predict_proba`, `session.layers`
  and `trainer.state_dict()` (torch layout "<i>.weight" (out, in)) for the collapsed map,
  `evaluation.metrics["accuracy"]`.
- exploding: the Step records in `session.records`: `grad_norm` (before clipping), `loss` and,
  where the engine adds them, `clip_scale` (the factor applied) or `clipped` (bool), and
  `clipped_steps` (every step clipped so far, logged or not: the share is clipped_steps / step).
  `trainer.config.clip_norm` for the current threshold.
- weather: `evaluation.details["forecast"]` = {time, truth, pred[, persistence, unit]} in raw
  units; the unit defaults to the target column's name (`scenario.data.options["target"]`).

A missing field gives a "waiting for ..." line, never an error. Model reads run in the
panel's thread worker (`ScenarioPanel.predict`), which takes the session lock.
"""

from __future__ import annotations

import re
import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from descent.engine import lessons
from descent.tui.app.lesson_render import (HEIGHT, WIDTH, fmt, render_boundary, render_clipping,
                                           render_forecast, render_loss_surface, resample, sparkline)
from descent.tui.app.panels import ScenarioPanel, locked

SAMPLE_SECONDS = 0.25       # the neuron's path: how often its weights are read while training
MAX_PATH = 400              # path points kept (the oldest are thinned out first)
MAX_POINTS = 400            # test points drawn on the boundary map
OFF_MAP = 20.0              # the surface window widens to follow the path up to this many half-widths
LINEAR_TYPES = {"dense", "mlp", "identity", "flatten"}
LINEAR_ACTS = {None, "identity", "linear", "none"}


def panel_size(widget) -> tuple[int, int]:
    """The widget's content size in cells, or the 80x24 panel area before it has been laid out."""
    w, h = widget.content_size.width, widget.content_size.height
    return (w if w >= 20 else WIDTH), (h if h >= 6 else HEIGHT)


def waiting(text: str) -> Text:
    return Text(text, style="italic")


class LessonPanel(ScenarioPanel):
    """One Static view that a renderer fills."""

    hint = "The panel appears once the data is loaded."

    def compose(self) -> ComposeResult:
        yield Static(waiting(self.hint), id="lesson-view")

    @property
    def view(self) -> Static:
        return self.query_one("#lesson-view", Static)

    def show(self, renderable) -> None:
        if self.is_mounted:
            self.view.update(renderable)


# ---- one neuron -------------------------------------------------------------------------

def neuron_weights(state: dict) -> tuple[float, float] | None:
    """(w, b) of a model that is one dense unit with one input, else None."""
    weights = [v for k, v in state.items() if k.endswith("weight")]
    biases = [v for k, v in state.items() if k.endswith("bias")]
    if len(weights) != 1 or np.size(weights[0]) != 1 or len(biases) > 1 or (biases and np.size(biases[0]) != 1):
        return None
    return float(np.ravel(weights[0])[0]), float(np.ravel(biases[0])[0]) if biases else 0.0


class NeuronPanel(LessonPanel):
    title = "Loss surface"
    hint = "The loss surface MSE(w, b) appears once the data is loaded."

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.path: list[tuple[int, float, float]] = []     # (step, w, b)

    def on_mount(self) -> None:
        self.set_interval(SAMPLE_SECONDS, self._tick)

    def bind(self, session) -> None:
        self.path = []
        super().bind(session)

    def _tick(self) -> None:
        if self.session is not None and getattr(self.session, "state", "") == "running":
            self.show_sample()

    def show_sample(self) -> None:
        s = self.session
        if s is None or s.dataset is None or s.trainer is None:
            return
        ds = s.dataset
        if np.size(ds.x_train[:1]) != 1 or np.size(ds.y_train[:1]) != 1:
            self.show(waiting(f"This panel needs one input and one target (the neuron scenario); "
                              f"this data has inputs {tuple(ds.in_shape)}."))
            return

        def compute():
            with locked(s):
                return s.step, s.trainer.state_dict()

        self.predict(compute, self._draw)

    def _draw(self, result) -> None:
        if result is None:
            return
        step, state = result
        wb = neuron_weights(state)
        if wb is None:
            self.show(waiting("This panel needs a model of one dense unit with one input "
                              f"(the neuron scenario); this one has {len(state)} tensors."))
            return
        if self.path and step < self.path[-1][0]:
            self.path = []                 # a reset or an older checkpoint
        if not self.path or step != self.path[-1][0]:
            self.path.append((step, *wb))
            if len(self.path) > MAX_PATH:
                del self.path[1:MAX_PATH // 2:2]
        if self.region.width or not self.path[:-1]:     # a hidden tab keeps its walk, draws once shown
            self.show(self.render_surface())

    def render_surface(self) -> Text:
        s, ds = self.session, self.session.dataset
        x = np.asarray(ds.x_train, np.float64).reshape(-1)
        y = np.asarray(ds.y_train, np.float64).reshape(-1)
        w_star, b_star = lessons.least_squares(x, y)
        pts = np.array([(w, b) for _, w, b in self.path])
        near = pts[np.all(np.abs(pts - (w_star, b_star)) <= OFF_MAP * 1.5, axis=1)] if len(pts) else pts
        w_lim, b_lim = lessons.surface_window(w_star, b_star, near)
        width, height = panel_size(self)
        cols, rows = min(90, max(16, width - 38)), min(30, max(5, height - 2))
        loss, _, _ = lessons.mse_grid(x, y, w_lim, b_lim, cols, rows)
        w, b = pts[-1]
        with np.errstate(all="ignore"):
            _, gw, gb = lessons.mse_and_grad(x, y, w, b)
        lr = float(s.lr_now())
        lr_max = lessons.stability(x, lr).lr_max
        out = render_loss_surface(loss, w_lim, b_lim, pts, (gw, gb), lr, lr_max,
                                  minimum=(w_star, b_star), width=width)
        if len(near) < len(pts):
            out.append(f"\nthe walk left the map at step {self.path[len(near)][0]}: now w {fmt(w)}, b {fmt(b)}",
                       "bold red")
        return out


# ---- activations --------------------------------------------------------------------------

def is_linear_stack(layers) -> bool:
    """Whether the model is dense layers with no non-linearity anywhere (one affine map)."""
    layers = list(layers or [])
    return bool(layers) and all(dict(spec).get("type") in LINEAR_TYPES
                                and dict(spec).get("activation") in LINEAR_ACTS for spec in layers)


def _order(name: str) -> tuple:
    return tuple(int(n) if n.isdigit() else n for n in re.split(r"(\d+)", name))


def collapsed_map(state: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The product of the dense weights (torch layout, in model order) and the carried bias."""
    names = sorted((k for k, v in state.items() if k.endswith("weight") and np.ndim(v) == 2), key=_order)
    layers = [(state[k], state.get(k[:-len("weight")] + "bias")) for k in names]
    try:
        return lessons.collapse_linear(layers) if layers else None
    except ValueError:
        return None


def decision_map(collapsed):
    """Two class logits z0, z1 decide by their difference: one map z = z1 - z0, boundary z = 0."""
    if collapsed is None or collapsed[0].shape[0] != 2:
        return collapsed
    W, b = collapsed
    return W[1:] - W[:1], b[1:] - b[:1]


def plane_limits(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """At least toy2d's [-1, 1] square, widened to hold every point."""
    lo = np.minimum(points.min(axis=0), -1.0) if len(points) else np.array([-1.0, -1.0])
    hi = np.maximum(points.max(axis=0), 1.0) if len(points) else np.array([1.0, 1.0])
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


class ActivationsPanel(LessonPanel):
    title = "Decision boundary"
    hint = "The decision boundary over the plane appears once the data is loaded."

    def show_sample(self) -> None:
        s = self.session
        if s is None or s.dataset is None or s.trainer is None:
            return
        ds = s.dataset
        if tuple(ds.in_shape) != (2,):
            self.show(waiting(f"This panel draws points in the plane (2 inputs, the activations "
                              f"scenario); this data has inputs {tuple(ds.in_shape)}."))
            return
        width, height = panel_size(self)
        cols, rows = min(90, max(16, width - 46)), min(30, max(5, height))
        # about one point in four cells, so the shaded regions between them stay visible
        step = max(1, len(ds.x_test) // max(8, min(MAX_POINTS, cols * rows // 4)))
        points, labels = np.asarray(ds.x_test[::step], np.float64), np.asarray(ds.y_test[::step])
        xlim, ylim = plane_limits(points)
        linear = is_linear_stack(getattr(s, "layers", None) or s.scenario.model.layers)
        accuracy = self.last_eval.metrics.get("accuracy") if self.last_eval else None

        def compute():
            prob = lessons.boundary_grid(s.predict_proba, xlim, ylim, cols, rows)
            if not linear:
                return prob, None
            with locked(s):
                state = s.trainer.state_dict()
            return prob, decision_map(collapsed_map(state))

        def draw(result):
            if result is None:
                return
            prob, collapsed = result
            self.show(render_boundary(prob, xlim, ylim, points, labels, accuracy, collapsed, width=width))

        self.predict(compute, draw)


# ---- exploding gradients ------------------------------------------------------------------

class ExplodingPanel(LessonPanel):
    title = "Clipping"
    hint = "Waiting for the first logged step: each one brings its gradient norm."

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reset_steps()

    def reset_steps(self) -> None:
        self.seen = 0                     # records of session.records already read
        self.steps: list[int] = []
        self.norms: list[float] = []
        self.losses: list[float] = []
        self.scales: list[float | None] = []     # the clip factor applied, where the record says
        self.flags: list[bool | None] = []
        self.clipped_steps: int | None = None    # the newest record's count, where it has one

    def bind(self, session) -> None:
        self.reset_steps()
        super().bind(session)

    def read_steps(self) -> None:
        records = getattr(self.session, "records", None) or []
        new = records[self.seen:]          # one slice: the training thread only appends
        self.seen += len(new)
        for r in new:
            if not hasattr(r, "grad_norm"):
                continue
            if self.steps and r.step <= self.steps[-1]:
                keep = int(np.searchsorted(self.steps, r.step))
                for series in (self.steps, self.norms, self.losses, self.scales, self.flags):
                    del series[keep:]
            self.steps.append(r.step)
            self.norms.append(float(r.grad_norm))
            self.losses.append(float(r.loss))
            self.scales.append(float(r.clip_scale))
            self.flags.append(r.clip_scale < 1.0)
            self.clipped_steps = int(r.clipped_steps)

    def clip_norm(self) -> float:
        config = getattr(getattr(self.session, "trainer", None), "config", None)
        value = getattr(config, "clip_norm", None)
        return float(value if value is not None else self.session.scenario.training.clip_norm)

    def show_sample(self) -> None:
        if self.session is None:
            return
        self.read_steps()
        if not self.norms:
            self.show(waiting(self.hint))
            return
        self.show(self.render_steps(panel_size(self)[0]))

    def render_steps(self, width: int = WIDTH) -> Text:
        norms = np.array(self.norms)
        clip = self.clip_norm()
        _, share, ratio = lessons.clip_summary(norms, clip)
        after = norms * np.array(self.scales, dtype=np.float64)
        total = None
        if self.clipped_steps is not None and self.steps[-1] > 0:
            share, total = self.clipped_steps / self.steps[-1], self.steps[-1]    # unlogged steps count too
        out = render_clipping(norms, after, clip, share, ratio, width, total)
        label_w, tail_w = 8, 12
        cols = max(8, width - label_w - tail_w - 2)
        loss = resample(self.losses, cols, "max")
        finite = loss[np.isfinite(loss)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        out.append(f"\n{'loss':<{label_w}}│")
        out.append(sparkline(loss, lo, hi, log=lo > 0), "magenta")
        out.append(f"│ {fmt(self.losses[-1])}")
        return out


# ---- weather ----------------------------------------------------------------------------

class WeatherPanel(LessonPanel):
    title = "Forecast"
    hint = "The forecast against the truth appears after the first evaluation"

    def show_sample(self) -> None:
        if self.session is None:
            return
        if self.last_eval is None:
            every = getattr(getattr(self.session.scenario, "evaluation", None), "every", None)
            self.show(waiting(self.hint + (f" (every {every} steps)." if every else ".")))
            return
        f = self.last_eval.details.get("forecast")
        need = ("time", "truth", "pred")
        if not isinstance(f, dict) or any(k not in f for k in need):
            self.show(waiting("waiting for the forecast: this evaluation carries no details['forecast'] "
                              "{time, truth, pred, persistence} (the series data source adds it)"))
            return
        truth = np.asarray(f["truth"], np.float64).reshape(-1)
        pred = np.asarray(f["pred"], np.float64).reshape(-1)
        persistence = f.get("persistence")
        persistence = None if persistence is None else np.asarray(persistence, np.float64).reshape(-1)
        unit = f.get("unit") or str(self.session.scenario.data.options.get("target", ""))
        width, height = panel_size(self)
        # the MAEs under the plot come from these points: the evaluation's `mae` and
        # `persistence_mae` exactly while the forecast holds every test sample (up to 400)
        self.show(render_forecast([str(t) for t in f["time"]], truth, pred, persistence, unit, width, height))


LESSON_PANELS = {"neuron": NeuronPanel, "activations": ActivationsPanel, "exploding": ExplodingPanel,
                 "weather": WeatherPanel}
