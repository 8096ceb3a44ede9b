"""The four lesson scenarios of issue 12 teach what they say, in CI-sized engine runs.

Each check has the issue's direction; runs are shortened where the full budget is not needed
(each says so). Full-size figures and their commands are in docs/results.md.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from descent.engine.data import data_dir
from descent.engine.records import Diverged, Evaluation, Finished, Step
from descent.engine.scenario import load, resolve_name
from descent.engine.session import Session


def train(name: str, *overrides: str):
    """Run a bundled scenario to its budget: (session, step records, last evaluation, diverged or None)."""
    session = Session(load(resolve_name(name), overrides=list(overrides)))
    list(session.prepare())
    steps, last, diverged = [], None, None
    for rec in session.run(threading.Event()):
        if isinstance(rec, Step):
            steps.append(rec)
        elif isinstance(rec, Evaluation):
            last = rec
        elif isinstance(rec, Diverged):
            diverged = rec
    return session, steps, last, diverged


# ---- one neuron ---------------------------------------------------------------------------

def test_neuron_default_run_stores_w_1_and_b_0_in_raw_units():
    session, _, ev, diverged = train("neuron")
    assert diverged is None
    state = session.trainer.state_dict()
    w, b = float(state["0.weight"].ravel()[0]), float(state["0.bias"].ravel()[0])
    assert abs(w - 1) < 1e-3 and abs(b) < 1e-3, (w, b)
    assert ev.details["w"] == pytest.approx(w) and ev.details["b"] == pytest.approx(b)
    assert ev.details["lambda_max"] == pytest.approx(2.0) and ev.details["lr_max"] == pytest.approx(1.0)
    assert np.abs(session.x_train).max() == pytest.approx(1.0)      # x itself, not standardized


@pytest.mark.parametrize("lr, converges", [(0.97, True), (1.03, False)])
def test_neuron_converges_just_below_two_over_lambda_max_and_diverges_just_above(lr, converges):
    """2 / lambda_max = 1 on -1..1; 600 steps (not 200) so a factor 0.94 or 1.06 per step shows."""
    _, steps, ev, diverged = train("neuron", f"training.lr={lr}", "training.steps=600")
    if converges:
        assert diverged is None and ev.metrics["mse"] < 1e-8 * steps[0].loss, ev.metrics
    else:
        assert diverged is not None, steps[-1]


def test_neuron_seeds_numbers_range_0_to_99_with_lr_001_diverge():
    _, _, _, diverged = train("neuron", "data.x_range=0..99", "training.lr=0.01")
    assert diverged is not None


# ---- activations --------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 2, 4])
def test_an_identity_stack_of_any_depth_stays_linear_on_xor(depth):
    _, _, ev, _ = train("activations", "model.layers[0].activation=identity", f"model.layers[0].depth={depth}")
    assert ev.metrics["accuracy"] <= 0.70, ev.metrics


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_tanh_or_relu_solves_xor(activation):
    _, _, ev, _ = train("activations", f"model.layers[0].activation={activation}")
    assert ev.metrics["accuracy"] >= 0.97, ev.metrics


# ---- exploding gradients --------------------------------------------------------------------

def test_without_clipping_the_gradient_norm_explodes_or_the_run_diverges():
    _, steps, _, diverged = train("exploding", "training.clip_norm=0", "training.steps=200")
    norms = np.array([s.grad_norm for s in steps[:200]])
    finite = norms[np.isfinite(norms)]
    ratio = finite.max() / np.median(finite)
    assert diverged is not None or ratio >= 1e3, ratio
    assert all(s.clip_scale == 1.0 and s.clipped_steps == 0 for s in steps)


def test_with_clipping_the_same_run_trains_and_clip_events_are_counted():
    """300 steps instead of 1000: the loss must end below where it started."""
    session, steps, _, diverged = train("exploding", "training.steps=300")
    assert diverged is None
    assert np.mean([s.loss for s in steps[-20:]]) < steps[0].loss
    clipped = [s for s in steps if s.clip_scale < 1.0]
    assert clipped and all(s.grad_norm * s.clip_scale == pytest.approx(1.0, rel=1e-4) for s in clipped)
    assert steps[-1].clipped_steps == len(clipped) == session.clipped_steps    # log_every = 1
    finished = [r for r in session.records if isinstance(r, Finished)]
    assert finished[0].summary["clipped_steps"] == len(clipped)


# ---- weather --------------------------------------------------------------------------------

def test_weather_gru_beats_persistence_on_2015():
    if not (data_dir() / "weather" / "seattle-weather.csv").is_file():
        pytest.skip(f"weather not found in {data_dir()} (`descent data fetch weather`)")
    _, _, ev, _ = train("weather")
    m = ev.metrics
    print(f"model MAE {m['mae']:.3f} °C, persistence {m['persistence_mae']:.3f} °C")
    assert m["persistence_mae"] == pytest.approx(2.24, abs=0.005)
    assert m["mae"] < m["persistence_mae"], m
    fc = ev.details["forecast"]
    assert len(fc["time"]) == 365 and fc["time"][0] == "2015/01/01"
    assert set(fc) == {"time", "truth", "pred", "persistence"}
