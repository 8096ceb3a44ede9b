"""The training step as a whole: determinism, dtypes, the per-step statistics, agreement with the
torch backend, divergence handling, and import hygiene (the engine never loads the UI)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from descent.engine.backend import Trainer, make_trainer
from descent.engine.optim import OptimConfig

ROOT = Path(__file__).resolve().parents[1]
SPEC = [{"type": "dense", "units": 12, "activation": "tanh"}, {"type": "dense", "units": 10, "activation": "relu"},
        {"type": "dense", "units": 4}]
IN_SHAPE = (6,)


def batches(n, seed=0, batch=8, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch,) + IN_SHAPE).astype(dtype), rng.integers(0, 4, batch)) for _ in range(n)]


def curve(trainer, data):
    out = []
    for x, y in data:
        s = trainer.step(x, y)
        out.append((s.loss, s.grad_norm, s.param_norm, tuple(s.grad_norms.values()), tuple(s.update_ratios.values())))
    return out


@pytest.mark.parametrize("kind", ["adam", "sgd", "rmsprop"])
def test_same_seed_same_curve(kind):
    data = batches(40)
    a = Trainer(SPEC, IN_SHAPE, "cross_entropy", OptimConfig(kind=kind, momentum=0.9), seed=3)
    b = Trainer(SPEC, IN_SHAPE, "cross_entropy", OptimConfig(kind=kind, momentum=0.9), seed=3)
    first, second = curve(a, data), curve(b, data)
    assert first == second                      # bit for bit, statistics included
    assert np.array_equal(a.net.params.flat, b.net.params.flat)
    c = Trainer(SPEC, IN_SHAPE, "cross_entropy", OptimConfig(kind=kind, momentum=0.9), seed=4)
    assert not np.array_equal(c.net.params.flat, Trainer(SPEC, IN_SHAPE, seed=3).net.params.flat)


def test_same_seed_same_curve_with_dropout():
    spec = SPEC[:1] + [{"type": "dropout", "p": 0.4}] + SPEC[1:]
    data = batches(40)
    a, b, c = (Trainer(spec, IN_SHAPE, "cross_entropy", seed=s) for s in (3, 3, 4))
    first, second = curve(a, data), curve(b, data)
    assert first == second
    # same init, other dropout stream: a different curve (the seed drives the masks)
    c.load_state_dict(Trainer(spec, IN_SHAPE, seed=3).state_dict())
    assert curve(c, data)[0][0] != first[0][0]


def test_float32_by_default_float64_on_request():
    t = Trainer(SPEC, IN_SHAPE)
    assert t.net.params.flat.dtype == np.float32 and t.optimizer.state["exp_avg"].dtype == np.float32
    x, y = batches(1, dtype=np.float64)[0]          # float64 input is cast to the model's dtype
    assert isinstance(t.step(x, y).loss, float)
    assert t.predict(x).dtype == np.float32
    t64 = make_trainer(SPEC, IN_SHAPE, dtype="float64")
    assert t64.net.params.flat.dtype == np.float64 and t64.net.params.grad.dtype == np.float64
    t64.step(x, y)
    assert t64.predict(x).dtype == np.float64
    assert t64.predict(x[:0]).shape == (0, 4)


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_step_stats_equal_directly_computed_values(rel_err, kind):
    t = Trainer(SPEC, IN_SHAPE, "cross_entropy", OptimConfig(kind=kind, lr=0.05, weight_decay=0.01), seed=1,
                dtype="float64")
    ps = t.net.params
    for x, y in batches(3, dtype=np.float64):
        before = {n: ps.values[n].copy() for n in ps.names}
        s = t.step(x, y)
        assert list(s.grad_norms) == ps.names and list(s.update_ratios) == ps.names
        for n in ps.names:
            assert rel_err(s.grad_norms[n], np.linalg.norm(ps.grads[n])) < 1e-12
            ratio = np.linalg.norm(ps.values[n] - before[n]) / np.linalg.norm(ps.values[n])
            assert rel_err(s.update_ratios[n], ratio) < 1e-12
        assert rel_err(s.grad_norm, np.linalg.norm(ps.grad)) < 1e-12
        assert rel_err(s.param_norm, np.linalg.norm(ps.flat)) < 1e-12
        assert s.time_grad_norms is None             # no sequence layer here


def test_trainer_matches_torch_trainer(torch, rel_err):
    """Whole steps, statistics included, against the torch backend; hyperparameters changed midway."""
    data = batches(6, dtype=np.float64)
    config = dict(kind="adam", lr=0.01, clip_norm=0.5)
    ours = make_trainer(SPEC, IN_SHAPE, optim=OptimConfig(**config), seed=2, dtype="float64")
    theirs = make_trainer(SPEC, IN_SHAPE, optim=OptimConfig(**config), seed=2, dtype="float64", backend="torch")
    assert ours.names == theirs.names
    for i, (x, y) in enumerate(data):
        if i == 3:
            ours.set_hparams(lr=0.003, beta1=0.8)
            theirs.set_hparams(lr=0.003, beta1=0.8)
        a, b = ours.step(x, y), theirs.step(x, y)
        assert rel_err(a.loss, b.loss) < 1e-7 and rel_err(a.grad_norm, b.grad_norm) < 1e-7
        assert rel_err(a.param_norm, b.param_norm) < 1e-7
        assert rel_err(list(a.grad_norms.values()), list(b.grad_norms.values())) < 1e-7
        assert rel_err(list(a.update_ratios.values()), list(b.update_ratios.values())) < 1e-7
    assert ours.config.lr == 0.003
    for name, value in theirs.state_dict().items():
        assert rel_err(ours.state_dict()[name], value) < 1e-7, name


@pytest.mark.parametrize("bad_value,finite_loss", [(np.nan, False), (np.inf, True)], ids=["nan-loss", "nan-grad"])
def test_nonfinite_step_leaves_the_weights_alone(bad_value, finite_loss):
    """A NaN loss, or a finite loss with a NaN gradient (inf through a saturated tanh): no update,
    and the statistics say so (the session turns that into a divergence record)."""
    t = Trainer(SPEC, IN_SHAPE, seed=0)
    x, y = batches(1)[0]
    t.step(x, y)
    before = t.net.params.flat.copy()
    slots = {k: v.copy() for k, v in t.optimizer.state.items()}
    bad = x.copy()
    bad[0, 0] = bad_value
    with np.errstate(invalid="ignore"):
        s = t.step(bad, y)
    assert math.isfinite(s.loss) == finite_loss and math.isnan(s.grad_norm)
    assert np.array_equal(t.net.params.flat, before) and t.optimizer.t == 1
    assert all(np.array_equal(slots[k], t.optimizer.state[k]) for k in slots)
    assert math.isfinite(t.step(x, y).loss)


def test_make_trainer_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        make_trainer(SPEC, IN_SHAPE, backend="jax")


def test_engine_never_imports_the_ui_or_torch():
    """Import every module of the engine package in a fresh interpreter: textual, tui and torch
    stay out of sys.modules (torch is imported lazily, inside the functions that need it)."""
    code = """
import importlib, json, pkgutil, sys
import descent.engine
names = ["descent.engine.backend", "descent.engine.model", "descent.engine.checkpoint", "descent.engine.torch_backend"]
names += [m.name for m in pkgutil.walk_packages(descent.engine.__path__, "descent.engine.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names,
                  "bad": sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "torch") or m.startswith("descent.tui"))}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "descent.engine.backend" in result["imported"]
    if (ROOT / "engine" / "session.py").exists():
        assert "descent.engine.session" in result["imported"]
    assert result["bad"] == []


def test_evaluation_slices_are_equal_and_fit_the_budget():
    """Predict cuts a big test set into equal slices (one set of layer buffers, not two) whose
    outputs fit EVAL_BYTES: digits_cnn's 10,000 images, whose 1,024-row slices held 300 MB."""
    from descent.engine.backend import EVAL_BYTES, Trainer, eval_rows
    from descent.engine.scenario import load, resolve_name

    layers = load(resolve_name("digits_cnn")).model.layers
    t = Trainer(layers, (1, 28, 28), "cross_entropy", None, 0, "float32")
    rows = eval_rows(t.net.layers, 10_000, 1024, 4)
    per_row = 2 * 4 * sum(int(np.prod(layer.out_shape)) for layer in t.net.layers)
    assert rows * per_row <= EVAL_BYTES + per_row and rows < 1024
    slices = -(-10_000 // rows)
    assert 10_000 - (slices - 1) * rows > rows - slices        # the last slice short by < 1 row a slice
    assert eval_rows(t.net.layers, 2500, 1024, 4) <= rows and eval_rows(t.net.layers, 10, 1024, 4) == 10
    small = Trainer([{"type": "dense", "units": 3}], (4,), "cross_entropy", None, 0, "float32")
    assert eval_rows(small.net.layers, 10_000, 1024, 4) == 1000     # ten equal slices under the 1,024 cap
    x = np.random.default_rng(0).standard_normal((2050, 4)).astype(np.float32)
    assert small.predict(x).shape == (2050, 3)
