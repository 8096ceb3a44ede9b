"""The teaching scenarios' panels (issue 12) as widgets: fed hand-made records and a fake session
that exposes only what the panels read, mounted in a bare Textual app at the 80x24 panel size;
then each mounted in the real dashboard (a small digits run) to check that a scenario naming it
opens and that the wrong data gives a "this panel needs ..." line, not an error."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from textual.app import App

from descent.engine.data.toy2d import make_toy2d
from descent.engine.records import Evaluation, Step
from descent.engine.scenario import load, with_values
from descent.tui.app.lesson_panels import (ActivationsPanel, ExplodingPanel, NeuronPanel, WeatherPanel,
                                           collapsed_map, is_linear_stack, neuron_weights)
from descent.tui.app.panels import make_panel

DIGITS = Path(__file__).parent / "data" / "tui_digits.toml"


def sync(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return run


class FakeTrainer:
    def __init__(self, state, outputs=None, clip_norm=1.0):
        self.state = state
        self.outputs = outputs
        self.config = SimpleNamespace(clip_norm=clip_norm)

    def state_dict(self):
        return {k: np.array(v, copy=True) for k, v in self.state.items()}

    def predict(self, x, mask=None):
        return self.outputs(x)


def fake_session(x_train, y_train, x_test=None, y_test=None, state=None, proba=None, layers=(),
                 clip_norm=0.0, options=None, lr=0.5):
    x_test = x_train if x_test is None else x_test
    ds = SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test,
                         y_test=y_train if y_test is None else y_test,
                         in_shape=tuple(np.shape(x_train)[1:]), task="regression", extra_test={})
    scenario = SimpleNamespace(training=SimpleNamespace(clip_norm=clip_norm),
                               data=SimpleNamespace(options=options or {}),
                               model=SimpleNamespace(layers=list(layers)),
                               evaluation=SimpleNamespace(every=10))
    return SimpleNamespace(dataset=ds, trainer=FakeTrainer(state or {}, clip_norm=clip_norm),
                           scenario=scenario, layers=list(layers), records=[], step=0, state="paused",
                           lr_now=lambda: lr, predict_proba=proba, _lock=threading.Lock())


class Host(App):
    def __init__(self, panel):
        super().__init__()
        self.panel = panel

    def compose(self):
        yield self.panel


async def shown(pilot, panel, condition=lambda text: True, timeout=10.0) -> str:
    """The panel's view as plain text, once `condition` holds of it."""
    end = time.monotonic() + timeout
    while True:
        await pilot.pause(0.05)
        text = str(panel.view.content)
        if condition(text) or time.monotonic() > end:
            return text


def step(i, norm, loss=1.0, **extra):
    record = Step(step=i, epoch=0.0, loss=loss, lr=0.1, grad_norm=norm, param_norm=1.0, grad_norms={},
                  update_ratios={}, time_grad_norms=None, steps_per_s=1.0, elapsed=0.0)
    for k, v in extra.items():          # the clip fields the engine side adds
        object.__setattr__(record, k, v)
    return record


# ---- pure helpers -------------------------------------------------------------------------

def test_neuron_weights_and_the_linear_stack():
    assert neuron_weights({"0.weight": np.array([[0.7]]), "0.bias": np.array([0.1])}) == (0.7, pytest.approx(0.1))
    assert neuron_weights({"0.weight": np.ones((2, 1)), "0.bias": np.ones(2)}) is None
    state = {"0.weight": np.array([[1.0, 2.0], [0.0, 1.0]]), "0.bias": np.array([1.0, 0.0]),
             "1.weight": np.array([[2.0, 0.0]]), "1.bias": np.array([0.5])}
    W, b = collapsed_map(state)
    assert W.tolist() == [[2.0, 4.0]] and b.tolist() == [2.5]
    assert is_linear_stack([{"type": "dense", "units": 8, "activation": "identity"}, {"type": "dense", "units": 2}])
    assert not is_linear_stack([{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dense", "units": 2}])
    assert not is_linear_stack([{"type": "dense", "units": 8}, {"type": "relu"}, {"type": "dense", "units": 2}])


# ---- mounted with fakes at 80x24 ---------------------------------------------------------

@sync
async def test_neuron_panel_draws_the_walk_the_arrow_and_the_threshold():
    x = np.linspace(-1, 1, 64)[:, None]
    state = {"0.weight": np.array([[0.2]]), "0.bias": np.array([0.8])}
    session = fake_session(x, x, state=state, lr=0.5)
    panel = NeuronPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(session)
        await shown(pilot, panel, lambda t: "@" in t)
        for k, (w, b) in enumerate([(0.5, 0.5), (0.75, 0.25), (0.9, 0.1)], start=1):
            session.step, session.trainer.state = k, {"0.weight": np.array([[w]]), "0.bias": np.array([b])}
            panel.show_sample()
            text = await shown(pilot, panel, lambda t, w=w: f"w {w}" in t)
        lines = text.split("\n")
        assert max(len(line) for line in lines) <= 76 and len(lines) <= 12
        assert "w 0.9   b 0.1" in text and "stable below 2/λmax = 1" in text and "lr OK: converges" in text
        assert text.count("o") >= 3 + 2 and "+" in text and "@" in text       # path, minimum, now
        assert any(a in text for a in "→↗↑↖←↙↓↘")
        session.step = 0                                          # a reset: the old walk goes
        panel.show_sample()
        await shown(pilot, panel, lambda t: "w 0.9" in t)
        assert len(panel.path) == 1


@sync
async def test_neuron_panel_says_when_the_walk_leaves_the_map():
    x = np.linspace(0, 99, 64)[:, None]
    session = fake_session(x, x, state={"0.weight": np.array([[0.0]]), "0.bias": np.array([0.0])}, lr=0.01)
    panel = NeuronPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(session)
        await shown(pilot, panel, lambda t: "@" in t)
        session.step, session.trainer.state = 5, {"0.weight": np.array([[3e9]]), "0.bias": np.array([-4e7])}
        panel.show_sample()
        text = await shown(pilot, panel, lambda t: "left the map" in t)
        assert "lr TOO BIG: diverges" in text and "the walk left the map at step 5" in text


@sync
async def test_neuron_panel_explains_a_model_that_is_not_one_neuron():
    x = np.zeros((4, 3))
    panel = NeuronPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(fake_session(x, np.zeros((4, 1))))
        assert "needs one input and one target" in await shown(pilot, panel, lambda t: "needs" in t)


def xor_session(layers, state, proba):
    x, y = make_toy2d("xor", 200)
    return fake_session(x, y, x, y, state=state, proba=proba, layers=layers)


@sync
async def test_activations_panel_draws_the_boundary_and_the_collapsed_map():
    layers = [{"type": "dense", "units": 4, "activation": "identity"}, {"type": "dense", "units": 2}]
    state = {"0.weight": np.ones((4, 2)), "0.bias": np.zeros(4), "1.weight": np.array([[1.0] * 4, [-1.0] * 4]),
             "1.bias": np.array([0.0, 0.5])}
    p1 = lambda p: np.stack([1 - (p[:, 0] > 0), p[:, 0] > 0], 1).astype(float)   # noqa: E731
    panel = ActivationsPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(xor_session(layers, state, p1))
        panel.evaluated(Evaluation(100, 1.0, "test", {"accuracy": 0.52}))
        panel.show_sample()
        text = await shown(pilot, panel, lambda t: "collapses" in t)
        lines = text.split("\n")
        assert max(len(line) for line in lines) <= 76 and len(lines) <= 12
        assert "z = -8·x1 - 8·x2 + 0.5" in text                 # z1 - z0: the boundary is z = 0
        assert "test accuracy 52.0%" in text and "░" in text and "x" in text and "o" in text
        left = "".join(line[3:15] for line in lines)
        assert "░" not in left                                  # predicted 0 on the left half


@sync
async def test_activations_panel_leaves_out_the_map_for_a_nonlinear_stack_and_explains_wrong_data():
    layers = [{"type": "dense", "units": 4, "activation": "tanh"}, {"type": "dense", "units": 2}]
    panel = ActivationsPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(xor_session(layers, {}, lambda p: np.full((len(p), 2), 0.5)))
        text = await shown(pilot, panel, lambda t: "unsure" in t)
        assert "collapses" not in text and "·" in text
        panel.bind(fake_session(np.zeros((4, 3)), np.zeros(4)))
        assert "needs" not in text
        assert "draws points in the plane" in await shown(pilot, panel, lambda t: "plane" in t)


@sync
async def test_exploding_panel_reads_clip_flags_from_the_step_records():
    session = fake_session(np.zeros((2, 1)), np.zeros((2, 1)), clip_norm=1.0)
    panel = ExplodingPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(session)
        assert "Waiting for the first logged step" in await shown(pilot, panel)
        norms = np.concatenate([np.full(50, 0.5), np.logspace(0.1, 6, 50)])
        clipped = np.cumsum(norms > 1.0)
        session.records += [step(i + 1, n, loss=1.0 + i, clip_scale=min(1.0, 1.0 / n), clipped_steps=int(c))
                            for i, (n, c) in enumerate(zip(norms, clipped))]
        session.records.append(Evaluation(100, 1.0, "test", {"loss": 1.0}))
        panel.show_sample()
        text = await shown(pilot, panel, lambda t: "clipped 50%" in t)
        assert "clipped 50% of 100 steps" in text and "EXPLODING" in text and "clip 1" in text
        assert "loss" in text and "derived" not in text
        after = next(line for line in text.split("\n") if line.startswith("after"))
        assert "█" not in after
        session.records.append(step(10, 0.5, clip_scale=1.0))   # an older checkpoint: steps after 10 go
        panel.show_sample()
        await shown(pilot, panel, lambda t: "of 10 steps" in t)
        assert panel.steps == list(range(1, 11))
        session.records.append(step(20, 0.5, clip_scale=1.0, clipped_steps=5))   # logged every 10th step
        panel.show_sample()
        assert "clipped 25% of 20 steps" in await shown(pilot, panel, lambda t: "25%" in t)


@sync
async def test_weather_panel_waits_then_draws_the_forecast():
    session = fake_session(np.zeros((2, 14, 4)), np.zeros((2, 1)), options={"target": "temp_max"})
    panel = WeatherPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(session)
        assert "after the first evaluation (every 10 steps)" in await shown(pilot, panel)
        panel.evaluated(Evaluation(100, 1.0, "test", {"mse": 1.0}))
        panel.show_sample()
        assert "waiting for the forecast" in await shown(pilot, panel, lambda t: "forecast:" in t)
        t = np.sin(np.arange(365) / 58) * 8 + 15
        forecast = {"time": [f"2015-{i:03d}" for i in range(365)], "truth": t.tolist(),
                    "pred": (t + np.where(np.arange(365) % 2, 1.0, -1.0)).tolist(), "persistence": (t + 2).tolist()}
        panel.evaluated(Evaluation(200, 2.0, "test", {"mae": 1.0, "persistence_mae": 2.0}, {"forecast": forecast}))
        panel.show_sample()
        text = await shown(pilot, panel, lambda t: "MAE model" in t)
        lines = text.split("\n")
        assert max(len(line) for line in lines) <= 76 and len(lines) <= 12
        assert "temp_max" in text and "2015-000" in text and "model wins" in text


# ---- in the real dashboard ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["neuron", "activations", "exploding", "weather"])
def test_make_panel_knows_every_lesson_panel(kind):
    assert type(make_panel(kind)).__name__.lower().startswith(kind)


@pytest.mark.parametrize("kind,expect", [("neuron", "needs one input and one target"),
                                         ("activations", "draws points in the plane"),
                                         ("exploding", "clip"),
                                         ("weather", "after the first evaluation")])
@sync
async def test_each_lesson_panel_opens_in_the_dashboard(tmp_path, monkeypatch, kind, expect):
    from descent.tui.app import make_app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    scenario = with_values(load(DIGITS), {"scenario.panel": kind})
    app = make_app(scenario, runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        end = time.monotonic() + 120
        while app.screen.state == "compiling" and time.monotonic() < end:
            await pilot.pause(0.1)
        assert app.screen.state == "ready"
        if kind == "exploding":
            app.screen.start_run(5)
            while app.screen.session.step < 5 and time.monotonic() < end:
                await pilot.pause(0.1)
        app.screen.action_tab(1)
        await pilot.pause(0.3)
        app.screen.panel.show_sample()
        text = await shown(pilot, app.screen.panel, lambda t: expect in t)
        assert expect in text


# ---- regression in the generic panel and the accuracy chart (issue 10) --------------------

def test_scatter_draws_predictions_against_targets_with_the_diagonal():
    from rich.console import Console

    from descent.tui.app.lesson_render import render_scatter

    t = np.linspace(0, 10, 200)
    console = Console(record=True, width=76, no_color=True, color_system=None)
    console.print(render_scatter(t + 0.3, t, 36, 10, ["r2 0.99"]))
    lines = console.export_text().rstrip("\n").split("\n")
    assert len(lines) <= 12 and max(len(line) for line in lines) <= 76
    text = "\n".join(lines)
    assert "target" in text and "r2 0.99" in text and "/ perfect" in text
    assert "@" in text or "O" in text                       # dense cells are marked so
    assert lines[0].rstrip().endswith("prediction (up) vs target")
    assert lines[9][:5].strip() and "·" not in lines[0][:40]  # bottom-left start, no stray points


@sync
async def test_generic_panel_plots_regression_predictions():
    from descent.tui.app.panels import GenericPanel

    x = np.linspace(-1, 1, 50)[:, None]
    session = fake_session(x, 2 * x)
    session.trainer.outputs = lambda xs: 2 * xs + 0.1
    panel = GenericPanel(id="panel")
    async with Host(panel).run_test(size=(76, 12)) as pilot:
        panel.bind(session)
        panel.evaluated(Evaluation(10, 1.0, "test", {"mse": 0.01, "r2": 0.99}))
        panel.show_sample()
        for _ in range(100):
            await pilot.pause(0.05)
            text = str(panel.query_one("#metrics").content)
            if "vs target" in text:
                break
        assert "prediction (up) vs target" in text and "r2 0.9900" in text and "evaluation at step 10" in text


def test_accuracy_chart_plots_r2_for_regression():
    from descent.tui.app.charts import AccuracyChart
    from descent.tui.app.history import History

    h = History()
    h.add(Evaluation(10, 1.0, "test", {"mse": 0.5, "r2": 0.4}))
    h.add(Evaluation(20, 2.0, "test", {"mse": 0.2, "r2": 0.8}))
    assert AccuracyChart().plots_r2(h) and h.curve("val_r2") == ([10, 20], [0.4, 0.8])
    assert h.pin("run").val_acc == ([10, 20], [0.4, 0.8])
    c = History()
    c.add(Evaluation(10, 1.0, "test", {"accuracy": 0.5}))
    assert not AccuracyChart().plots_r2(c) and AccuracyChart(metric="r2").plots_r2(c)
