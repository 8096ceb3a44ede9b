"""Optimizers, clipping, the per-tensor diagnostics, schedules and ParamSet.

Steps are compared with torch.optim from identical weights and gradients (one step, several
steps, and hyperparameters changed between steps the way the dashboard does it), and each update
kernel with the element-by-element reference in tests/naive.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import naive
from descent.engine.arrays import LANES, segment_sumsq
from descent.engine.optim import OptimConfig, Optimizer, adam_kernel, rmsprop_kernel, sgd_kernel
from descent.engine.params import ParamSet
from descent.engine.schedules import lr_at

SHAPES = [("0.weight", (6, 5)), ("0.bias", (6,)), ("1.weight", (70,)), ("1.bias", (3, 1))]

CONFIGS = {
    "sgd": dict(kind="sgd", lr=0.1),
    "sgd_momentum": dict(kind="sgd", lr=0.1, momentum=0.9),
    "sgd_nesterov": dict(kind="sgd", lr=0.1, momentum=0.9, nesterov=True),
    "sgd_l2": dict(kind="sgd", lr=0.1, momentum=0.5, weight_decay=0.05),
    "rmsprop": dict(kind="rmsprop", lr=0.01),
    "rmsprop_momentum": dict(kind="rmsprop", lr=0.01, momentum=0.9, alpha=0.9),
    "rmsprop_l2": dict(kind="rmsprop", lr=0.01, weight_decay=0.05),
    "adam": dict(kind="adam", lr=0.01),
    "adam_l2": dict(kind="adam", lr=0.01, weight_decay=0.05, beta1=0.8, beta2=0.99, eps=1e-6),
    "adamw": dict(kind="adamw", lr=0.01, weight_decay=0.05),
}


def make(config: dict, dtype=np.float64, seed=0):
    ps = ParamSet(SHAPES, dtype)
    ps.flat[:] = np.random.default_rng(seed).normal(size=ps.size)
    return ps, Optimizer(ps, OptimConfig(**config))


def torch_twin(torch, ps: ParamSet, config: dict):
    """Leaf tensors with the same values, and the torch.optim optimizer for `config`."""
    from descent.engine.optim import torch_optimizer

    tensors = [torch.tensor(ps.values[n].copy(), requires_grad=True) for n in ps.names]
    return tensors, torch_optimizer(OptimConfig(**config), tensors)


def grads_for(ps: ParamSet, rng, scale=1.0):
    return (rng.normal(size=ps.size) * scale).astype(ps.dtype)


def step_both(torch, ps, opt, tensors, topt, g):
    ps.grad[:] = g
    for name, t in zip(ps.names, tensors):
        t.grad = torch.from_numpy(ps.grads[name].copy())
    opt.step()
    topt.step()


def flat_of(torch_tensors):
    return np.concatenate([t.detach().numpy().ravel() for t in torch_tensors])


@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_steps_match_torch_float64(torch, rel_err, name, steps):
    ps, opt = make(CONFIGS[name])
    tensors, topt = torch_twin(torch, ps, CONFIGS[name])
    rng = np.random.default_rng(1)
    for _ in range(steps):
        step_both(torch, ps, opt, tensors, topt, grads_for(ps, rng))
        assert rel_err(ps.flat, flat_of(tensors)) < 1e-10


@pytest.mark.parametrize("name", list(CONFIGS))
def test_steps_match_torch_float32(torch, rel_err, name):
    ps, opt = make(CONFIGS[name], np.float32)
    tensors, topt = torch_twin(torch, ps, CONFIGS[name])
    assert tensors[0].dtype == torch.float32
    rng = np.random.default_rng(1)
    for _ in range(5):
        step_both(torch, ps, opt, tensors, topt, grads_for(ps, rng))
    assert ps.flat.dtype == np.float32
    assert rel_err(ps.flat, flat_of(tensors)) < 1e-6


CHANGES = {   # what the dashboard may turn between two steps, as our setting and torch's group keys
    "sgd_momentum": ({"lr": 0.03, "momentum": 0.5}, {"lr": 0.03, "momentum": 0.5}),
    "sgd_l2": ({"lr": 0.2, "weight_decay": 0.0}, {"lr": 0.2, "weight_decay": 0.0}),
    "rmsprop_momentum": ({"lr": 0.001, "momentum": 0.5}, {"lr": 0.001, "momentum": 0.5}),
    "adam": ({"lr": 0.002, "beta1": 0.5}, {"lr": 0.002, "betas": (0.5, 0.999)}),
    "adamw": ({"lr": 0.02, "weight_decay": 0.1}, {"lr": 0.02, "weight_decay": 0.1}),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_changing_hyperparameters_keeps_state_and_matches_torch(torch, rel_err, name):
    ps, opt = make(CONFIGS[name])
    tensors, topt = torch_twin(torch, ps, CONFIGS[name])
    rng = np.random.default_rng(2)
    for _ in range(3):
        step_both(torch, ps, opt, tensors, topt, grads_for(ps, rng))
    slots = {k: v.copy() for k, v in opt.state.items()}
    ours, theirs = CHANGES[name]
    opt.set(**ours)
    for group in topt.param_groups:
        group.update(theirs)
    assert all(np.array_equal(slots[k], opt.state[k]) for k in slots)   # set() keeps the slots
    assert opt.t == 3
    for _ in range(3):
        step_both(torch, ps, opt, tensors, topt, grads_for(ps, rng))
        assert rel_err(ps.flat, flat_of(tensors)) < 1e-10


@pytest.mark.parametrize("clip,scale", [(0.5, 10.0), (1e6, 1.0)], ids=["clipped", "unclipped"])
def test_global_norm_clipping_matches_torch(torch, rel_err, clip, scale):
    config = dict(CONFIGS["sgd_momentum"], clip_norm=clip)
    ps, opt = make(config)
    tensors, topt = torch_twin(torch, ps, config)
    rng = np.random.default_rng(3)
    for _ in range(3):
        g = grads_for(ps, rng, scale)
        ps.grad[:] = g
        for n, t in zip(ps.names, tensors):
            t.grad = torch.from_numpy(ps.grads[n].copy())
        norm = opt.step()
        tnorm = torch.nn.utils.clip_grad_norm_(tensors, clip).item()
        topt.step()
        assert rel_err(norm, tnorm) < 1e-12
        assert rel_err(norm, np.linalg.norm(g)) < 1e-12           # reported before clipping
        assert rel_err(ps.flat, flat_of(tensors)) < 1e-10
    assert np.array_equal(ps.grad, g)                              # clipping never rescales .grad


def test_clip_scale_matches_naive(rel_err):
    config = dict(kind="sgd", lr=1.0, clip_norm=2.0)
    ps, opt = make(config)
    before = ps.flat.copy()
    g = grads_for(ps, np.random.default_rng(4), 5.0)
    ps.grad[:] = g
    norm = opt.step()
    scale, ref_norm = naive.clip_scale([g], 2.0)
    assert scale < 1 and rel_err(norm, ref_norm) < 1e-12
    assert rel_err(before - ps.flat, scale * g) < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_diagnostics_equal_direct_values(rel_err, name, dtype):
    """grad_sq, upd_sq and p_sq per tensor against norms computed directly from the arrays."""
    ps, opt = make(CONFIGS[name], dtype)
    rng = np.random.default_rng(5)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    for _ in range(3):
        before = {n: ps.values[n].astype(np.float64) for n in ps.names}
        ps.grad[:] = grads_for(ps, rng)
        norm = opt.step()
        grad = [float(np.sum(ps.grads[n].astype(np.float64) ** 2)) for n in ps.names]
        upd = [float(np.sum((ps.values[n] - before[n]) ** 2)) for n in ps.names]
        par = [float(np.sum(ps.values[n].astype(np.float64) ** 2)) for n in ps.names]
        assert rel_err(opt.grad_sq, grad) < tol
        assert rel_err(opt.upd_sq, upd) < tol
        assert rel_err(opt.p_sq, par) < tol
        assert rel_err(norm, math.sqrt(sum(grad))) < tol


# ---- kernels against the element-by-element references ----------------------------------------

def kernel_inputs(dtype, n=203, seed=6):
    rng = np.random.default_rng(seed)
    p, g = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    s1, s2 = rng.normal(size=n).astype(dtype), rng.uniform(0.1, 1.0, n).astype(dtype)
    return p, g, s1, s2


TOL = {np.float64: 1e-12, np.float32: 1e-6}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("momentum,nesterov,first", [(0.0, False, False), (0.9, False, True), (0.9, False, False),
                                                     (0.9, True, False)])
def test_sgd_kernel_matches_naive(rel_err, dtype, momentum, nesterov, first):
    p, g, buf, _ = kernel_inputs(dtype)
    ref_p, ref_buf = naive.sgd(p, g, buf, 0.1, momentum, nesterov, 0.01, first)
    delta = np.empty_like(p)
    old = p.copy()
    sgd_kernel(p, g, buf, delta, 0.1, momentum, nesterov, 0.01, 1.0, first)
    assert rel_err(p, ref_p) < TOL[dtype]
    if momentum:
        assert rel_err(buf, ref_buf) < TOL[dtype]
    assert np.array_equal(delta, p - old)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_kernel_matches_naive(rel_err, dtype, momentum):
    p, g, buf, sq = kernel_inputs(dtype)
    ref_p, ref_sq, ref_buf = naive.rmsprop(p, g, sq, buf, 0.01, 0.95, 1e-8, momentum, 0.01)
    delta = np.empty_like(p)
    rmsprop_kernel(p, g, sq, buf, delta, 0.01, 0.95, 1e-8, momentum, 0.01, 1.0)
    assert rel_err(p, ref_p) < TOL[dtype] and rel_err(sq, ref_sq) < TOL[dtype]
    if momentum:
        assert rel_err(buf, ref_buf) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("decoupled", [False, True], ids=["l2", "adamw"])
def test_adam_kernel_matches_naive(rel_err, dtype, decoupled):
    p, g, m, v = kernel_inputs(dtype)
    ref_p, ref_m, ref_v = naive.adam(p, g, m, v, 3, 0.01, 0.9, 0.999, 1e-8, 0.1, decoupled)
    delta = np.empty_like(p)
    adam_kernel(p, g, m, v, delta, 0.01, 0.9, 0.999, 1e-8, 0.1, decoupled, 3, 1.0)
    for ours, ref in ((p, ref_p), (m, ref_m), (v, ref_v)):
        assert rel_err(ours, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_segment_sumsq_matches_naive(rel_err, dtype):
    sizes = [0, 1, LANES - 1, LANES, LANES + 1, 3 * LANES + 5, 0, 2]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = np.random.default_rng(7).normal(size=int(offsets[-1])).astype(dtype)
    out = np.full(len(sizes), np.nan)
    segment_sumsq(x, offsets, out)
    assert out[0] == 0 and out[6] == 0
    assert rel_err(out, naive.segment_sumsq(x, offsets)) < 1e-14


# ---- the optimizer object ----------------------------------------------------------------------

def test_optimizer_errors():
    ps = ParamSet(SHAPES)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Optimizer(ps, OptimConfig(kind="adagrad"))
    opt = Optimizer(ps, OptimConfig())
    for bad in ({"kind": "sgd"}, {"learning_rate": 0.1}):
        with pytest.raises(ValueError, match="cannot change optimizer setting"):
            opt.set(**bad)


@pytest.mark.parametrize("kind", ["sgd", "rmsprop", "adam", "adamw"])
def test_optimizer_state_round_trip(kind):
    ps, opt = make({"kind": kind, "momentum": 0.9} if kind in ("sgd", "rmsprop") else {"kind": kind})
    rng = np.random.default_rng(8)
    for _ in range(2):
        ps.grad[:] = grads_for(ps, rng)
        opt.step()
    arrays = opt.state_arrays()
    assert arrays["optim.t"] == 2 and all(k.startswith("optim.") for k in arrays)
    ps2, opt2 = make({"kind": kind, "momentum": 0.9} if kind in ("sgd", "rmsprop") else {"kind": kind})
    opt2.load_state_arrays(arrays)
    assert opt2.t == 2 and all(np.array_equal(opt.state[k], opt2.state[k]) for k in opt.state)
    bad = dict(arrays)
    first = next(k for k in bad if k != "optim.t")
    bad[first] = bad[first][:-1]
    with pytest.raises(ValueError, match="does not match"):
        opt2.load_state_arrays(bad)


def test_optim_config_from_training():
    from descent.engine.scenario import TrainingConfig

    c = OptimConfig.from_training(TrainingConfig(optimizer="sgd", lr=0.5, momentum=0.9, clip_norm=2.0))
    assert (c.kind, c.lr, c.momentum, c.clip_norm, c.beta1) == ("sgd", 0.5, 0.9, 2.0, 0.9)
    # a bare OptimConfig takes the schema's defaults, the one place they are written
    assert OptimConfig.from_training(TrainingConfig()) == OptimConfig()


# ---- schedules -----------------------------------------------------------------------------------

def test_constant_schedule():
    assert [lr_at(s, 0.1) for s in (0, 1, 10_000)] == [0.1, 0.1, 0.1]


def test_warmup_is_linear_then_base():
    got = [lr_at(s, 0.1, "constant", warmup_steps=4) for s in range(6)]
    assert got == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rel=1e-15)


def test_step_schedule():
    lr = [lr_at(s, 0.1, "step", step_size=10, gamma=0.5) for s in (0, 9, 10, 19, 20, 35)]
    assert lr == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.0125], rel=1e-15)
    # the step count starts after warm-up
    assert lr_at(5, 0.1, "step", warmup_steps=5, step_size=10) == 0.1
    assert lr_at(15, 0.1, "step", warmup_steps=5, step_size=10, gamma=0.1) == pytest.approx(0.01, rel=1e-15)


def test_cosine_schedule():
    kw = dict(schedule="cosine", total_steps=100, min_lr=0.01)
    assert lr_at(0, 0.1, **kw) == pytest.approx(0.1, rel=1e-15)
    assert lr_at(50, 0.1, **kw) == pytest.approx(0.055, rel=1e-15)
    assert lr_at(25, 0.1, **kw) == pytest.approx(0.01 + 0.045 * (1 + math.cos(math.pi / 4)), rel=1e-15)
    assert lr_at(100, 0.1, **kw) == pytest.approx(0.01, rel=1e-15)
    assert lr_at(500, 0.1, **kw) == pytest.approx(0.01, rel=1e-15)
    # after warm-up the cosine starts from the base rate and spans the remaining steps
    assert lr_at(10, 0.1, warmup_steps=10, **kw) == pytest.approx(0.1, rel=1e-15)
    assert lr_at(55, 0.1, warmup_steps=10, **kw) == pytest.approx(0.055, rel=1e-15)
    assert lr_at(9, 0.1, warmup_steps=10, **kw) == pytest.approx(0.1, rel=1e-15)


def test_schedules_are_pure_functions():
    calls = [(s, 0.3, name) for s in (7, 0, 7, 3, 7) for name in ("constant", "step", "cosine")]
    first = [lr_at(s, b, n, total_steps=20, warmup_steps=2, step_size=3) for s, b, n in calls]
    again = [lr_at(s, b, n, total_steps=20, warmup_steps=2, step_size=3) for s, b, n in reversed(calls)]
    assert first == again[::-1]
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(0, 0.1, "exponential")


# ---- ParamSet ------------------------------------------------------------------------------------

def test_paramset_views_share_the_flat_buffers():
    ps = ParamSet(SHAPES)
    assert ps.dtype == np.float32 and ps.flat.dtype == np.float32        # float32 by default
    assert ps.names == [n for n, _ in SHAPES] and ps.size == 30 + 6 + 70 + 3
    assert list(ps.offsets) == [0, 30, 36, 106, 109]
    for name, shape in SHAPES:
        v, g = ps.values[name], ps.grads[name]
        assert v.shape == shape and g.shape == shape
        assert np.shares_memory(v, ps.flat) and np.shares_memory(g, ps.grad)
        assert not np.shares_memory(v, ps.grad)
    ps.values["0.bias"][2] = 7.0
    assert ps.flat[32] == 7.0
    ps.grad[106] = -3.0
    assert ps.grads["1.bias"][0, 0] == -3.0


def test_paramset_state_dict_round_trip():
    ps = ParamSet(SHAPES, np.float64)
    ps.flat[:] = np.arange(ps.size)
    state = ps.state_dict()
    assert list(state) == ps.names
    state["0.weight"][0, 0] = 99.0               # copies, not views
    assert ps.values["0.weight"][0, 0] == 0.0
    other = ParamSet(SHAPES, np.float64)
    other.load_state_dict(ps.state_dict())
    assert np.array_equal(other.flat, ps.flat)


def test_paramset_errors():
    with pytest.raises(ValueError, match="duplicate"):
        ParamSet([("a", (2,)), ("a", (3,))])
    ps = ParamSet(SHAPES)
    good = ps.state_dict()
    with pytest.raises(ValueError, match=r"missing \['0.bias'\]"):
        ps.load_state_dict({k: v for k, v in good.items() if k != "0.bias"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        ps.load_state_dict(good | {"extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"0.weight: shape \(5, 6\)"):
        ps.load_state_dict(good | {"0.weight": np.zeros((5, 6))})


def test_paramset_transposed_views_keep_the_declared_shape_and_values():
    ps = ParamSet(SHAPES, np.float64, transposed=["0.weight"])
    w = ps.values["0.weight"]
    assert w.shape == (6, 5) and w.flags.f_contiguous and not w.flags.c_contiguous
    assert ps.grads["0.weight"].flags.f_contiguous and np.shares_memory(w, ps.flat[:30])
    w[...] = np.arange(30.0).reshape(6, 5)
    assert np.array_equal(ps.flat[:30], np.arange(30.0).reshape(6, 5).T.ravel())   # (in, out) rows
    state = ps.state_dict()
    assert state["0.weight"].flags.c_contiguous and np.array_equal(state["0.weight"], np.arange(30.0).reshape(6, 5))
    plain = ParamSet(SHAPES, np.float64)
    plain.load_state_dict(state)                      # the same checkpoint in either layout
    assert np.array_equal(ps.logical(ps.flat), plain.flat)
    assert np.array_equal(ps.physical(plain.flat), ps.flat)
    with pytest.raises(ValueError, match="not 2-D"):
        ParamSet(SHAPES, transposed=["1.weight"])
    with pytest.raises(ValueError, match="not 2-D"):
        ParamSet(SHAPES, transposed=["nope"])


@pytest.mark.parametrize("kind", ["sgd_momentum", "rmsprop_momentum", "adam"])
def test_optimizer_slots_are_saved_in_declared_order_whatever_the_layout(kind):
    """A model that stores a tensor transposed trains to the same bits, and writes the same
    optimizer slots to its checkpoint, as one that does not; each loads the other's slots."""
    rng = np.random.default_rng(3)
    sets = [ParamSet(SHAPES, np.float64, transposed=t) for t in ((), ["0.weight", "1.bias"])]
    opts = [Optimizer(ps, OptimConfig(**CONFIGS[kind])) for ps in sets]
    start = {n: rng.normal(size=s) for n, s in SHAPES}
    for ps in sets:
        ps.load_state_dict(start)
    for _ in range(3):
        grads = {n: rng.normal(size=s) for n, s in SHAPES}
        for ps, opt in zip(sets, opts):
            for n in ps.names:
                ps.grads[n][...] = grads[n]
            opt.step()
    a, b = (opt.state_arrays() for opt in opts)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert all(np.array_equal(x, y) for x, y in zip(sets[0].state_dict().values(), sets[1].state_dict().values()))
    fresh = Optimizer(sets[1], OptimConfig(**CONFIGS[kind]))
    fresh.load_state_arrays(a)                        # the plain layout's checkpoint, loaded transposed
    assert all(np.array_equal(fresh.state[k], opts[1].state[k]) for k in fresh.state)
