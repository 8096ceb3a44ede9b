"""Checkpoints: round trip, atomic writes, the way to and from PyTorch, and an exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from descent.engine import checkpoint
from descent.engine.backend import Trainer
from descent.engine.optim import OptimConfig

SPEC = [{"type": "flatten"}, {"type": "dense", "units": 16, "activation": "tanh"},
        {"type": "dense", "units": 12, "activation": "relu"}, {"type": "dense", "units": 3}]
IN_SHAPE = (2, 5)


def batches(n, seed=0, batch=16):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch,) + IN_SHAPE).astype(np.float32), rng.integers(0, 3, batch)) for _ in range(n)]


def trained(steps=5, seed=0, spec=SPEC, kind="adam"):
    t = Trainer(spec, IN_SHAPE, "cross_entropy", OptimConfig(kind=kind, lr=0.01, momentum=0.9), seed)
    for x, y in batches(steps):
        t.step(x, y)
    return t


def test_round_trip(tmp_path):
    t = trained()
    arrays = t.state_arrays()
    assert {"optim.exp_avg", "optim.exp_avg_sq", "optim.t"} <= set(arrays)
    assert {"1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "3.bias"} <= set(arrays)
    meta = {"step": 5, "trainer_rng": t.rng_state(), "note": "ünïcode"}
    path = tmp_path / "run" / "checkpoint.npz"            # the folder is created
    checkpoint.save(path, arrays, meta)
    loaded, loaded_meta = checkpoint.load(path)
    assert loaded_meta == json.loads(json.dumps(meta)) == meta
    assert set(loaded) == set(arrays)
    for k, v in arrays.items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v), k

    fresh = Trainer(SPEC, IN_SHAPE, "cross_entropy", OptimConfig(kind="adam", lr=0.01), seed=42)
    fresh.load_state_arrays(loaded)
    fresh.set_rng_state(loaded_meta["trainer_rng"])
    assert np.array_equal(fresh.net.params.flat, t.net.params.flat)
    assert fresh.optimizer.t == 5
    assert all(np.array_equal(fresh.optimizer.state[k], t.optimizer.state[k]) for k in t.optimizer.state)
    assert fresh.rng.random() == t.rng.random()


def test_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    good = trained(3).state_arrays()
    checkpoint.save(path, good, {"step": 3})
    newer = trained(6).state_arrays()

    def crashing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", crashing_savez)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, newer, {"step": 6})
    monkeypatch.undo()

    arrays, meta = checkpoint.load(path)
    assert meta == {"step": 3}
    assert all(np.array_equal(arrays[k], good[k]) for k in good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]      # no temp file left


def test_atomic_write_text_replaces_whole_files(tmp_path):
    path = tmp_path / "summary.json"
    checkpoint.atomic_write_text(path, "first")

    def interrupted(f):
        f.write(b"par")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(path, interrupted)
    assert path.read_text() == "first"
    checkpoint.atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_checkpoint_loads_into_the_torch_model(torch, rel_err, tmp_path):
    from descent.engine.torch_backend import build_torch_model

    t = trained(10, seed=3)
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, t.state_arrays(), {"step": 10})
    model = build_torch_model(SPEC, IN_SHAPE, seed=0)       # a different init, overwritten by the load
    model.load_state_dict(checkpoint.torch_state_dict(path))
    x = batches(1, seed=9)[0][0]
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    ours = t.predict(x)
    assert ours.dtype == np.float32
    assert rel_err(ours, theirs) < 1e-6


def test_torch_state_dict_loads_into_our_trainer(torch, rel_err):
    from descent.engine.torch_backend import build_torch_model

    model = build_torch_model(SPEC, IN_SHAPE, "float64", seed=11)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)               # not our init any more
    t = Trainer(SPEC, IN_SHAPE, "cross_entropy", seed=0, dtype="float64")
    t.load_state_dict({k: v.numpy() for k, v in model.state_dict().items()})
    x = np.random.default_rng(2).normal(size=(7,) + IN_SHAPE)
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    assert rel_err(t.predict(x), theirs) < 1e-12


RESUME_SPEC = SPEC[:2] + [{"type": "dropout", "p": 0.3}] + SPEC[2:]


@pytest.mark.parametrize("kind", ["adam", "sgd", "rmsprop"])
def test_resume_is_identical_to_an_uninterrupted_run(tmp_path, kind):
    """300 steps straight, against 150 steps, save, a fresh Trainer loads, 150 more: same losses
    and the same weights bit for bit (dropout included)."""
    data = batches(300, seed=5)
    optim = dict(kind=kind, lr=0.01, momentum=0.9)

    straight = Trainer(RESUME_SPEC, IN_SHAPE, "cross_entropy", OptimConfig(**optim), seed=1)
    expected = [straight.step(x, y).loss for x, y in data]

    first = Trainer(RESUME_SPEC, IN_SHAPE, "cross_entropy", OptimConfig(**optim), seed=1)
    losses = [first.step(x, y).loss for x, y in data[:150]]
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, first.state_arrays(), {"step": 150, "trainer_rng": first.rng_state()})
    del first

    arrays, meta = checkpoint.load(path)
    second = Trainer(RESUME_SPEC, IN_SHAPE, "cross_entropy", OptimConfig(**optim), seed=77)
    second.load_state_arrays(arrays)
    second.set_rng_state(meta["trainer_rng"])
    losses += [second.step(x, y).loss for x, y in data[150:]]

    assert losses == expected
    assert np.array_equal(second.net.params.flat, straight.net.params.flat)
    assert np.array_equal(second.optimizer.state_arrays()["optim.t"], 300)

    # the dropout masks come from the restored rng: without it the run differs
    third = Trainer(RESUME_SPEC, IN_SHAPE, "cross_entropy", OptimConfig(**optim), seed=77)
    third.load_state_arrays(arrays)
    assert [third.step(x, y).loss for x, y in data[150:152]] != expected[150:152]
