"""The transformer language model (engine/lm.py) against PyTorch in float64, and its spec."""

from __future__ import annotations

import numpy as np
import pytest

from descent.engine.errors import SpecError
from descent.engine.layer import Context
from descent.engine.model import Net

V, T, B = 11, 7, 3


def need_torch():
    return pytest.importorskip("torch", reason="torch is the reference for these checks")


def spec_of(**extra):
    return [{"type": "transformer", "vocab": V, "layers": 2, "dim": 8, "heads": 2, **extra}]


def run_both(spec, seed=0):
    torch = need_torch()
    net = Net(spec, (T,), np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))
    dy = rng.standard_normal((B, T, V))
    ctx = Context(train=True, want_time_grads=False)
    out = net.forward(ids, ctx).copy()
    net.backward(dy, ctx)
    ours = {k: v.copy() for k, v in net.params.grads.items()}
    model = net.torch_module().double()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in net.params.values.items()})
    ref = model(torch.from_numpy(ids))
    (ref * torch.from_numpy(dy)).sum().backward()
    theirs = {k: p.grad.numpy() for k, p in model.named_parameters()}
    return out, ref.detach().numpy(), ours, theirs


@pytest.mark.parametrize("extra", [{}, {"norm": "post"}, {"activation": "relu"}, {"bias": True},
                                   {"tie": False}, {"norm": "post", "activation": "relu", "bias": True,
                                                    "tie": False, "ff": 12}])
def test_matches_torch(extra):
    out, ref, ours, theirs = run_both(spec_of(**extra))
    assert np.abs(out - ref).max() < 1e-10
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert np.abs(ours[name] - theirs[name]).max() < 1e-7, name


def test_tied_head_is_one_tensor():
    need_torch()
    net = Net(spec_of(), (T,), np.float64)
    names = net.params.names
    assert "0.wte.weight" in names and not any("lm_head" in n for n in names)
    model = net.torch_module()
    assert sorted(model.state_dict()) == sorted(names)
    untied = Net(spec_of(tie=False), (T,), np.float64)
    assert "0.lm_head.weight" in untied.params.names


def test_shorter_window_gives_the_same_prefix():
    """Generation runs windows shorter than the context: position t's logits do not depend on later steps."""
    net = Net(spec_of(), (T,), np.float64, seed=1)
    ids = np.random.default_rng(2).integers(0, V, size=(1, T))
    ctx = Context(train=False, want_time_grads=False)
    full = net.forward(ids, ctx).copy()
    part = net.forward(ids[:, :4], ctx).copy()
    assert np.abs(full[:, :4] - part).max() < 1e-12


@pytest.mark.parametrize("extra, key", [({"heads": 3}, ".heads"), ({"norm": "middle"}, ".norm"),
                                        ({"max_len": 3}, ".max_len"), ({"colour": 1}, ".colour")])
def test_bad_spec_names_the_key(extra, key):
    with pytest.raises(SpecError) as e:
        Net(spec_of(**extra), (T,), np.float64)
    assert e.value.key.endswith(key)


@pytest.mark.parametrize("decay_on", ["all", "matrices"])
def test_adamw_decay_groups_train_like_torch(decay_on):
    """nanoGPT's optimizer: AdamW with weight decay on the 2-D tensors only, clipping, both backends."""
    need_torch()
    from descent.engine.backend import make_trainer
    from descent.engine.optim import OptimConfig

    spec = spec_of(bias=True)
    rng = np.random.default_rng(5)
    batches = [(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))) for _ in range(4)]
    trainers = [make_trainer(spec, (T,), "cross_entropy",
                             OptimConfig(kind="adamw", lr=0.01, beta2=0.99, weight_decay=0.5, decay_on=decay_on,
                                         clip_norm=0.5), seed=2, dtype="float64", backend=b)
                for b in ("numba", "torch")]
    for x, y in batches:
        losses = [t.step(x, y).loss for t in trainers]
        assert abs(losses[0] - losses[1]) < 1e-10
    ours, theirs = (t.state_dict() for t in trainers)
    for name in ours:
        assert np.abs(ours[name] - np.asarray(theirs[name])).max() < 1e-9, name
    if decay_on == "matrices":   # a bias never decays: with zero gradient it would stay exactly where it was
        assert trainers[0].optimizer.runs[0][2] is True and any(not r[2] for r in trainers[0].optimizer.runs)


@pytest.mark.parametrize("extra", [{}, {"norm": "post"}, {"activation": "relu"}, {"norm": "post", "activation": "relu",
                                                                                  "bias": True}])
def test_eval_floats_is_what_a_forward_takes(extra):
    """eval_floats, which sizes evaluation slices (backend.eval_rows), counts exactly the work
    arrays a forward pass takes from the model's buffers: counted by the logits alone, nanoGPT's
    CPU model evaluated 256 windows at a time and held 820 MB in its four blocks."""
    from descent.engine.backend import Trainer

    t = Trainer(spec_of(**extra), (T,), "cross_entropy", None, 0, "float32")
    lm = t.net.layers[0]
    t.predict(np.random.default_rng(0).integers(0, V, size=(B, T)), batch_size=B)
    held = [a for b in lm.blocks for a in b.buf._arrays.values()] + list(lm.buf._arrays.values())
    assert sum(a.nbytes for a in held if a.dtype == np.float32) == B * 4 * lm.eval_floats()


def test_evaluation_slices_of_the_bundled_transformer_fit_the_budget():
    from descent.engine.backend import EVAL_BYTES, Trainer, eval_rows
    from descent.engine.scenario import load, resolve_name

    layer = dict(load(resolve_name("textgen_transformer")).model.layers[0], vocab=65)    # Shakespeare's 65 characters
    t = Trainer([layer], (64,), "cross_entropy", None, 0, "float32")
    rows = eval_rows(t.net.layers, 256, 256, 4)
    assert 1 < rows and rows * 4 * t.net.layers[0].eval_floats() <= EVAL_BYTES
