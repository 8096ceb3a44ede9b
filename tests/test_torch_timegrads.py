"""The torch backend's per-time-step gradient norms (engine/torch_timegrads.py): ||dL/dx_t|| at
each recurrent layer's input, reduced as the numba engine reduces ||dL/dh_t||, under its keys,
on logged steps only. The 2-process figures are in tests/test_distributed_timegrads.py."""

from __future__ import annotations

import numpy as np
import pytest

import naive

from descent.engine.backend import Trainer
from descent.engine.losses import loss_targets, torch_loss
from descent.engine.torch_backend import TorchTrainer, build_torch_model

T, V = 9, 11
LENGTHS = np.array([9, 4, 7, 1, 9, 6])
EMBED = {"type": "embedding", "dim": 5, "vocab": V}
HEAD = {"type": "dense", "units": 3}


def batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (len(LENGTHS), T))
    mask = np.arange(T)[None, :] < LENGTHS[:, None]
    return np.where(mask, x, 0), rng.integers(0, 3, len(LENGTHS)), mask


def reference(torch, layers, x, y, mask):
    """dL/d(embedding output) by autograd on a fresh copy of the model, float64, per sample and step."""
    model = build_torch_model(layers, (T,), "float64", seed=3)
    kept = []

    def keep(_module, _inputs, out):
        out.retain_grad()
        kept.append(out)

    model[0].register_forward_hook(keep)
    out = model(torch.from_numpy(x), torch.from_numpy(mask))
    torch_loss("cross_entropy")(out, torch.from_numpy(loss_targets("cross_entropy", y, np.float64))).backward()
    return np.linalg.norm(kept[0].grad.numpy(), axis=-1)                       # (B, T)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_time_grads_equal_autograd_at_the_layer_input(torch, cell):
    layers = [EMBED, {"type": cell, "hidden": 6, "output": "last"}, HEAD]
    x, y, mask = batch()
    norms = reference(torch, layers, x, y, mask)
    assert np.all(norms[~mask] == 0)                        # packing: no gradient reaches the padding
    mean, ratio = naive.time_stats(norms, LENGTHS)
    stats = TorchTrainer(layers, (T,), seed=3, dtype="float64").step(x, y, mask, time_grads=True)
    assert set(stats.time_grad_norms) == set(stats.time_grad_ratio) == {"1"}
    np.testing.assert_allclose(stats.time_grad_norms["1"], mean, rtol=1e-10)
    np.testing.assert_allclose(stats.time_grad_ratio["1"], ratio, rtol=1e-10)
    assert stats.time_grad_ratio["1"][0] == 1.0 and stats.time_grad_norms["1"][-1] > 0


def test_only_logged_steps_measure(torch):
    trainer = TorchTrainer([EMBED, {"type": "gru", "hidden": 4}, HEAD], (T,), seed=3)
    x, y, mask = batch()
    quiet = trainer.step(x, y, mask, time_grads=False)
    assert quiet.time_grad_norms is None and quiet.time_grad_ratio is None
    assert trainer.time_grads.taps._found == {}             # nothing was tapped on that step
    logged = trainer.step(x, y, mask, time_grads=True)
    assert len(logged.time_grad_norms["1"]) == T and len(logged.time_grad_ratio["1"]) == T
    trainer.predict(x, mask)                                # evaluation is never tapped
    assert trainer.step(x, y, mask, time_grads=False).time_grad_norms is None


def test_a_model_without_recurrent_layers_has_no_time_grads(torch):
    layers = [{"type": "dense", "units": 4}, {"type": "dense", "units": 3}]
    stats = TorchTrainer(layers, (6,), seed=0).step(np.ones((5, 6)), np.arange(5) % 3, time_grads=True)
    assert stats.time_grad_norms is None and stats.time_grad_ratio is None


@pytest.mark.parametrize("layers, expected", [
    ([EMBED, {"type": "lstm", "hidden": 4, "layers": 2}, HEAD], {"1.l0"}),
    ([EMBED, {"type": "gru", "hidden": 3, "bidirectional": True, "output": "all"},
      {"type": "rnn", "hidden": 4}, HEAD], {"1", "2"}),
    ([EMBED, {"type": "residual", "layers": [{"type": "rnn", "hidden": 5, "output": "all"}]},
      {"type": "lstm", "hidden": 4}, HEAD], {"1.block.0", "2"}),
])
def test_keys_are_the_numba_engines(torch, layers, expected):
    x, y, mask = batch(1)
    ours = Trainer(layers, (T,), seed=3).step(x, y, mask, time_grads=True)
    theirs = TorchTrainer(layers, (T,), seed=3).step(x, y, mask, time_grads=True)
    assert set(theirs.time_grad_norms) == set(theirs.time_grad_ratio) == expected
    assert expected <= set(ours.time_grad_norms)            # a stacked layer: its first layer's only
    for key in expected:
        assert len(theirs.time_grad_norms[key]) == len(ours.time_grad_norms[key]) == T


@pytest.mark.parametrize("output", ["last", "all"])
def test_attention_without_projection_equals_the_numba_engine(torch, output):
    # no projection (dim = the embedding's width): the layer's input gradient is the block
    # input's, which the numba engine measures, so the two engines agree to rounding
    layers = [EMBED, {"type": "attention", "heads": 1, "output": output, "ff": 4},
              *([{"type": "rnn", "hidden": 3}] if output == "all" else []), HEAD]
    x, y, mask = batch(2)
    ours = Trainer(layers, (T,), seed=3, dtype="float64").step(x, y, mask, time_grads=True)
    theirs = TorchTrainer(layers, (T,), seed=3, dtype="float64").step(x, y, mask, time_grads=True)
    assert set(theirs.time_grad_norms) == set(ours.time_grad_norms) == {"1"} | ({"2"} if output == "all" else set())
    np.testing.assert_allclose(theirs.time_grad_norms["1"], ours.time_grad_norms["1"], rtol=1e-9)
    np.testing.assert_allclose(theirs.time_grad_ratio["1"], ours.time_grad_ratio["1"], rtol=1e-9)


class OneOfSeveral:
    """A World for one of `size` processes run one after another in this process: `mean_arrays`
    keeps each rank's sums and, at the last rank, answers their mean (what all_reduce / size
    gives). No DDP: the time grads are taken in backward, before any weight differs."""

    def __init__(self, rank, size, kept):
        from descent.engine.distributed import World

        self.real, self.kept = World(rank, size, rank), kept
        self.rank, self.size, self.share = rank, size, self.real.share

    def mean(self, value):
        return float(value)

    def mean_arrays(self, values):
        self.kept.append({k: np.array(v) for k, v in values.items()})
        return {k: sum(s[k] for s in self.kept) / self.size for k in values}


@pytest.mark.parametrize("size, rows", [(2, 6), (4, 6), (4, 3)])      # (4, 3): one process has no row
def test_the_processes_sums_give_the_whole_batchs_figures(torch, size, rows):
    layers = [EMBED, {"type": "lstm", "hidden": 4, "output": "last"}, HEAD]
    x, y, mask = (a[:rows] for a in batch(4))
    whole = TorchTrainer(layers, (T,), seed=3, dtype="float64").step(x, y, mask)
    kept, found = [], None
    for rank in reversed(range(size)):                       # rank 0 last: it sees every rank's sums
        trainer = TorchTrainer(layers, (T,), seed=3, dtype="float64")
        trainer.world = OneOfSeveral(rank, size, kept)
        found = trainer.step(x, y, mask)
    for key in ("time_grad_norms", "time_grad_ratio"):
        np.testing.assert_allclose(getattr(found, key)["1"], getattr(whole, key)["1"], rtol=1e-10, err_msg=key)
