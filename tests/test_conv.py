"""Conv2d, MaxPool2d, Dropout and Residual: against PyTorch autograd in float64, against finite
differences, against the slow references in tests/naive_conv.py (float32 and float64), whole
models against the torch backend, and spec errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import naive_conv as naive
from descent.engine import conv, pooling
from descent.engine.activation_kernels import CODES, IDENTITY, RELU
from descent.engine.errors import SpecError
from descent.engine.layer import Context
from descent.engine.model import Net, build_layers

# (batch, channels, height, width, filters, kernel, stride, padding, activation, bias)
CONV_CASES = [
    (2, 1, 8, 9, 3, 3, 1, 0, "identity", True),       # odd width, the common kernel: direct paths
    (3, 2, 7, 6, 4, 3, 2, 1, "relu", True),           # stride 2 with padding; direct forward, BLAS backward
    (1, 3, 9, 8, 2, 5, 1, 2, "tanh", False),          # batch 1, 5x5, no bias; BLAS both ways
    (2, 4, 6, 7, 3, 3, 1, 1, "sigmoid", True),        # C*K*K = 36
    (2, 2, 7, 7, 2, 2, 3, 1, "leaky_relu", True),     # even kernel, stride 3
    (2, 8, 5, 5, 4, 3, 1, 1, "relu", True),           # C*K*K = 72, padding
    (2, 1, 6, 7, 2, 3, 1, 0, "softmax", True),        # softmax over the last axis, as torch's dim=-1
    (2, 3, 5, 6, 3, 1, 1, 0, "identity", True),       # 1x1
]
CONV_IDS = ["b{}c{}-{}x{}-f{}k{}s{}p{}-{}-{}".format(*c[:9], "bias" if c[9] else "nobias") for c in CONV_CASES]


def conv_spec(case):
    _, _, _, _, f, k, s, p, act, bias = case
    return {"type": "conv2d", "filters": f, "kernel": k, "stride": s, "padding": p, "activation": act, "bias": bias}


def net_of(specs, in_shape, dtype=np.float64, seed=0):
    """A Net over `specs` whose first layer computes dx too (the model skips it by default)."""
    net = Net(specs, in_shape, dtype, seed)
    net.layers[0].need_dx = True
    return net


def run(net, x, dy, ctx=None):
    """Forward and backward through the layers by hand: copies of y, dx and every gradient."""
    ctx = ctx or Context(rng=np.random.default_rng(0))
    h = x
    for layer in net.layers:
        h = layer.forward(h, ctx)
    y = np.array(h)
    d = dy
    for layer in reversed(net.layers):
        d = layer.backward(d, ctx)
    return y, np.array(d), {k: np.array(v) for k, v in net.params.grads.items()}


def torch_run(torch, net, x, dy, train=True):
    """The same model in torch with our weights: y, dx and the parameter gradients."""
    m = net.torch_module().double()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in net.params.state_dict().items()})
    m.train(train)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    y = m(xt)
    (y * torch.from_numpy(dy)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), {k: p.grad.numpy() for k, p in m.named_parameters()}


def assert_matches_torch(torch, rel_err, specs, in_shape, batch, tol=1e-7, seed=0, x=None):
    net = net_of(specs, in_shape, seed=seed)
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((batch,) + tuple(in_shape)) if x is None else x
    dy = rng.standard_normal((batch,) + net.out_shape)
    y, dx, grads = run(net, x, dy)
    ty, tdx, tgrads = torch_run(torch, net, x, dy)
    assert rel_err(y, ty) < tol
    assert rel_err(dx, tdx) < tol
    assert list(grads) == list(tgrads)
    for name in grads:   # softmax makes the bias gradient exactly 0: both sides are rounding noise
        assert rel_err(grads[name], tgrads[name]) < tol or np.max(np.abs(tgrads[name])) < 1e-12, name
    return net


# ---------------------------------------------------------------------------------------------
# against torch (float64)

@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_matches_torch(torch, rel_err, case):
    b, c, h, w = case[:4]
    net = assert_matches_torch(torch, rel_err, [conv_spec(case)], (c, h, w), b)
    m = net.layers[0].torch_module()
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == net.layers[0].param_shapes()


@pytest.mark.parametrize("size,stride,shape", [(2, 2, (3, 7, 9)), (3, 2, (2, 9, 8)), (2, 1, (2, 5, 6)),
                                               (3, 3, (1, 7, 7)), (1, 1, (2, 3, 4))])
def test_maxpool_matches_torch(torch, rel_err, size, stride, shape):
    assert_matches_torch(torch, rel_err, [{"type": "maxpool2d", "size": size, "stride": stride}], shape, 3, tol=1e-12)


def test_maxpool_ties_go_to_the_first_maximum(torch, rel_err):
    x = np.zeros((2, 2, 6, 6))
    x[0, 0, 2:4, 2:4] = 1.0                              # a window of four equal maxima
    x[1, 1] = np.round(np.random.default_rng(0).standard_normal((6, 6)))   # many ties
    assert_matches_torch(torch, rel_err, [{"type": "maxpool2d"}], (2, 6, 6), 2, tol=1e-12, x=x)
    assert_matches_torch(torch, rel_err, [{"type": "maxpool2d", "size": 3, "stride": 1}], (2, 6, 6), 2,
                         tol=1e-12, x=x)


@pytest.mark.parametrize("conv_kw,pool_kw", [
    (dict(filters=3, kernel=3, activation="relu"), dict(size=2)),
    (dict(filters=2, kernel=3, padding=1, activation="identity"), dict(size=2)),
    (dict(filters=2, kernel=2, stride=2, padding=1, activation="relu"), dict(size=3, stride=2)),
    (dict(filters=2, kernel=3, activation="tanh"), dict(size=2)),           # no winner path: dense
], ids=["relu", "identity-pad", "strided-overlapping", "tanh"])
def test_conv_then_pool_matches_torch(torch, rel_err, conv_kw, pool_kw):
    specs = [{"type": "conv2d", **conv_kw}, {"type": "maxpool2d", **pool_kw}]
    assert_matches_torch(torch, rel_err, specs, (2, 9, 10), 3, tol=1e-7)


def test_small_cnn_matches_torch_as_a_whole(torch, rel_err):
    specs = [{"type": "conv2d", "filters": 4, "kernel": 3, "padding": 1, "activation": "relu"},
             {"type": "maxpool2d", "size": 2},
             {"type": "conv2d", "filters": 5, "kernel": 3, "activation": "relu"},   # C*K*K = 36
             {"type": "maxpool2d", "size": 2},
             {"type": "flatten"}, {"type": "dense", "units": 3}]
    assert_matches_torch(torch, rel_err, specs, (1, 12, 12), 4)


def test_dropout_matches_torch_when_off(torch, rel_err):
    """p = 0 in training and any p in evaluation are the identity, in both engines."""
    specs = [{"type": "conv2d", "filters": 2, "kernel": 3}, {"type": "dropout", "p": 0.0}, {"type": "flatten"},
             {"type": "dense", "units": 3}]
    assert_matches_torch(torch, rel_err, specs, (1, 6, 6), 2)
    net = net_of([{"type": "dense", "units": 4}, {"type": "dropout", "p": 0.7}], (5,))
    x = np.random.default_rng(0).standard_normal((3, 5))
    y = np.array(net.forward(x, Context(train=False, rng=np.random.default_rng(0))))
    m = net.torch_module().double()
    m.load_state_dict({k: torch.from_numpy(v) for k, v in net.params.state_dict().items()})
    m.eval()
    assert rel_err(y, m(torch.from_numpy(x)).detach().numpy()) < 1e-12


# ---------------------------------------------------------------------------------------------
# residual blocks

RESIDUAL_CNN = [
    {"type": "conv2d", "filters": 3, "kernel": 3, "padding": 1, "activation": "relu"},
    {"type": "residual", "layers": [
        {"type": "conv2d", "filters": 3, "kernel": 3, "padding": 1, "activation": "tanh"},
        {"type": "conv2d", "filters": 3, "kernel": 3, "padding": 1},
    ]},
    {"type": "maxpool2d", "size": 2},
    {"type": "flatten"},
    {"type": "residual", "layers": [{"type": "dense", "units": 27, "activation": "tanh"}]},
    {"type": "dense", "units": 4},
]


def test_residual_names_follow_torch():
    net = Net(RESIDUAL_CNN, (2, 6, 6), np.float64)
    assert net.params.names == ["0.weight", "0.bias", "1.block.0.weight", "1.block.0.bias", "1.block.1.weight",
                                "1.block.1.bias", "4.block.0.weight", "4.block.0.bias", "5.weight", "5.bias"]
    res = net.layers[1]
    assert [layer.name for layer in res.sublayers()] == ["1.block.0", "1.block.1"]
    assert all(layer.need_dx for layer in res.sublayers())


def test_residual_matches_torch(torch, rel_err):
    assert_matches_torch(torch, rel_err, RESIDUAL_CNN, (2, 6, 6), 3)


def test_residual_state_dict_loads_into_the_torch_model(torch, rel_err):
    from descent.engine.torch_backend import build_torch_model

    ours = Net(RESIDUAL_CNN, (2, 6, 6), np.float64, seed=1)
    model = build_torch_model(RESIDUAL_CNN, (2, 6, 6), "float64", seed=5)      # other weights first
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.params.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6))
    y = np.array(ours.forward(x, Context(train=False)))
    assert rel_err(y, model(torch.from_numpy(x)).detach().numpy()) < 1e-12


def test_residual_nested_names_and_gradients(torch, rel_err):
    specs = [{"type": "dense", "units": 6},
             {"type": "residual", "layers": [
                 {"type": "residual", "layers": [{"type": "dense", "units": 6, "activation": "sigmoid"}]},
                 {"type": "dropout", "p": 0.0},
                 {"type": "dense", "units": 6}]}]
    net = assert_matches_torch(torch, rel_err, specs, (4,), 5)
    assert "1.block.0.block.0.weight" in net.params.names
    assert net.layers[1].layers[0].layers[0].name == "1.block.0.block.0"


# ---------------------------------------------------------------------------------------------
# finite differences (no torch)

def check_finite_differences(num_grad, specs, in_shape, x, seed=0):
    net = net_of(specs, in_shape, seed=seed)
    r = np.random.default_rng(seed + 7).standard_normal((x.shape[0],) + net.out_shape)
    _, dx, grads = run(net, x, r)

    def loss():
        return float(np.sum(net.forward(x, Context(train=False)) * r))

    for name, value in net.params.values.items():
        numeric = num_grad(loss, value)
        assert np.max(np.abs(numeric - grads[name])) <= 1e-6 * max(1.0, np.max(np.abs(numeric))), name
    numeric = num_grad(loss, x)
    assert np.max(np.abs(numeric - dx)) <= 1e-6 * max(1.0, np.max(np.abs(numeric)))


def test_finite_differences_conv_tanh_pool(num_grad):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 6, 7))
    specs = [{"type": "conv2d", "filters": 2, "kernel": 3, "padding": 1, "activation": "tanh"},
             {"type": "maxpool2d", "size": 2}]
    net = net_of(specs, (2, 6, 7), seed=0)
    y = net.layers[0].forward(x, Context())
    windows = np.sort(y[:, :, :6, :6].reshape(2, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4), 1)
    assert np.min(windows[:, -1] - windows[:, -2]) > 1e-4       # no window near a tie
    check_finite_differences(num_grad, specs, (2, 6, 7), x)


def test_finite_differences_strided_relu(num_grad):
    specs = [{"type": "conv2d", "filters": 3, "kernel": 3, "stride": 2, "padding": 1, "activation": "relu"}]
    x = np.random.default_rng(4).standard_normal((2, 2, 7, 6))
    net = net_of(specs, (2, 7, 6), seed=0)
    z = naive.conv2d(x, net.params.values["0.weight"], net.params.values["0.bias"], 2, 1)
    assert np.min(np.abs(z)) > 1e-4                             # away from the kink
    check_finite_differences(num_grad, specs, (2, 7, 6), x)


def test_finite_differences_residual(num_grad):
    specs = [{"type": "residual", "layers": [
        {"type": "conv2d", "filters": 2, "kernel": 3, "padding": 1, "activation": "sigmoid"},
        {"type": "conv2d", "filters": 2, "kernel": 1, "bias": False}]}]
    x = np.random.default_rng(5).standard_normal((2, 2, 4, 5))
    check_finite_differences(num_grad, specs, (2, 4, 5), x)


# ---------------------------------------------------------------------------------------------
# the fast kernels against the slow NumPy references, float32 and float64

KERNEL_CASES = [(2, 1, 8, 9, 3, 3, 1, 0), (3, 2, 7, 6, 4, 3, 2, 1), (1, 3, 9, 8, 2, 5, 1, 2),
                (2, 4, 6, 7, 3, 3, 1, 1), (2, 2, 7, 7, 2, 2, 3, 1), (1, 1, 5, 5, 2, 1, 1, 0),
                (2, 2, 8, 8, 3, 4, 2, 0), (1, 1, 3, 3, 1, 3, 1, 0)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["direct", "gemm"])
def test_conv_kernels_match_naive(rel_err, dtype, path):
    tol = 1e-12 if dtype == np.float64 else 2e-6
    rng = np.random.default_rng(6)
    for (b, c, h, w, f, k, s, p) in KERNEL_CASES:
        x = rng.standard_normal((b, c, h, w)).astype(dtype)
        wt = rng.standard_normal((f, c, k, k)).astype(dtype)
        bias = rng.standard_normal(f).astype(dtype)
        z = naive.conv2d(x.astype(np.float64), wt.astype(np.float64), bias.astype(np.float64), s, p)
        dz = rng.standard_normal(z.shape)
        ndw, ndb, ndx = naive.conv2d_backward(x.astype(np.float64), wt.astype(np.float64), dz, s, p)
        y, saved = conv.conv2d_forward(x, wt, bias, s, p, IDENTITY, 0.0, path=path)
        dw, db = np.empty_like(wt), np.empty_like(bias)
        dw[...] = db[...] = np.nan                               # must be overwritten
        dx = conv.conv2d_backward(saved, wt, y, dz.astype(dtype), s, p, IDENTITY, 0.0, dw, db, path=path)
        case = (b, c, h, w, f, k, s, p)
        assert y.dtype == dtype and dx.dtype == dtype
        assert rel_err(y, z) < tol, case
        assert rel_err(dw, ndw) < tol, case
        assert rel_err(db, ndb) < tol, case
        assert rel_err(dx, ndx) < tol, case


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_activation_and_no_dx(rel_err, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 7, 8)).astype(dtype)
    wt = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype)
    z = naive.conv2d(x, wt, bias, 1, 1)
    dy = rng.standard_normal(z.shape).astype(dtype)
    for path in ("direct", "gemm"):
        y, saved = conv.conv2d_forward(x, wt, bias, 1, 1, RELU, 0.0, path=path)
        assert rel_err(y, np.maximum(z, 0)) < 1e-6
        dw, db = np.empty_like(wt), np.empty_like(bias)
        assert conv.conv2d_backward(saved, wt, y, dy, 1, 1, RELU, 0.0, dw, db, need_dx=False, path=path) is None
        ndw, ndb, _ = naive.conv2d_backward(x, wt, dy * (z > 0), 1, 1)
        assert rel_err(dw, ndw) < 2e-6 and rel_err(db, ndb) < 2e-6


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maxpool_kernels_match_naive(dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    x[0, 0, :2, :2] = 0.5                                        # a tie
    for size, stride in [(2, 2), (3, 2), (2, 1), (3, 3), (1, 2)]:
        y, arg = pooling.maxpool2d_forward(x, size, stride)
        ny, narg = naive.maxpool2d(x, size, stride)
        assert y.dtype == dtype and np.array_equal(y, ny) and np.array_equal(arg, narg), (size, stride)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = pooling.maxpool2d_backward(dy, arg, x.shape)
        np.testing.assert_allclose(dx, naive.maxpool2d_backward(dy, narg, x.shape), rtol=1e-6)


def test_maxpool_propagates_nan():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 3, 3] = np.nan
    y, _ = pooling.maxpool2d_forward(x, 2, 2)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 1, 1]) and y[0, 0, 0, 1] == 0


@pytest.mark.parametrize("act", ["relu", "identity"])
def test_pool_winners_path_equals_dense_path(monkeypatch, rel_err, act):
    """Conv2d reads a pool's winners instead of its dense dx: same gradients, and it is used."""
    calls = []                                                   # the backward kernel's winners flag
    for name, flag in (("dz_winners", True), ("dz_dense", False)):
        real = getattr(conv, name)
        monkeypatch.setattr(conv, name, lambda *a, real=real, flag=flag: calls.append(flag) or real(*a))
    specs = [{"type": "conv2d", "filters": 3, "kernel": 3, "padding": 1, "activation": act},
             {"type": "maxpool2d", "size": 2}]
    net = net_of(specs, (1, 7, 8))                              # C*K*K = 9: the direct backward
    rng = np.random.default_rng(9)
    x, dy = rng.standard_normal((3, 1, 7, 8)), rng.standard_normal((3, 3, 3, 4))
    ctx = Context()
    convl, pool = net.layers
    pool.forward(convl.forward(x, ctx), ctx)
    dpool = pool.backward(dy, ctx)
    assert isinstance(dpool, pooling.PoolGrad)
    assert pool.winners_only and not dpool.filled                # left empty: the conv reads the winners
    dx_fast = np.array(convl.backward(dpool, ctx))
    g_fast = {k: np.array(v) for k, v in net.params.grads.items()}
    assert calls == [True]
    dense = pooling.maxpool2d_backward(dy, pool.arg, pool.x_shape)
    dx_dense = np.array(convl.backward(dense, ctx))                  # a plain array: the dense path
    assert calls == [True, False]
    assert rel_err(dx_fast, dx_dense) < 1e-12
    for k, v in net.params.grads.items():
        assert rel_err(g_fast[k], v) < 1e-12


def test_pool_fills_its_dense_gradient_when_the_winners_do_not_apply(torch, rel_err):
    """A pool that left dx empty for the conv below (winners_only) gets it filled by that conv
    when the conv's backward reads dy after all (here: its activation made to be tanh)."""
    specs = [{"type": "conv2d", "filters": 3, "kernel": 3, "activation": "relu"}, {"type": "maxpool2d"},
             {"type": "flatten"}, {"type": "dense", "units": 2}]
    net = net_of(specs, (1, 8, 8))
    assert net.layers[1].winners_only
    assert not net_of([dict(specs[0], activation="tanh")] + specs[1:], (1, 8, 8)).layers[1].winners_only
    net.layers[0].act = CODES["tanh"]                                # now the winners don't apply
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((4, 1, 8, 8)), rng.standard_normal((4, 2))
    y, dx, grads = run(net, x, dy)
    ty, tdx, tgrads = torch_run(torch, net, x, dy)
    assert rel_err(dx, tdx) < 1e-10 and all(rel_err(grads[k], tgrads[k]) < 1e-10 for k in grads)


def test_steady_state_reuses_buffers():
    net = Net([{"type": "conv2d", "filters": 4, "kernel": 3, "activation": "relu"}, {"type": "maxpool2d"},
               {"type": "dropout", "p": 0.5}, {"type": "flatten"}, {"type": "dense", "units": 3}], (1, 10, 10),
              np.float32)
    x = np.random.default_rng(0).standard_normal((8, 1, 10, 10)).astype(np.float32)
    dy = np.ones((8, 3), np.float32)
    ctx = Context(rng=np.random.default_rng(0))
    y0 = net.forward(x, ctx)                                    # the first step allocates the buffers
    net.backward(dy, ctx)
    tracemalloc.start()
    for _ in range(2):
        y = net.forward(x, ctx)
        net.backward(dy, ctx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8192, peak          # views and small objects only; one conv output is 8 kB
    assert np.shares_memory(y, y0)


# ---------------------------------------------------------------------------------------------
# dropout

def test_dropout_keep_rate_scale_and_backward():
    p = 0.3
    net = Net([{"type": "dropout", "p": p}], (200, 100), np.float32)
    layer = net.layers[0]
    layer.need_dx = True
    x = np.random.default_rng(0).uniform(1, 2, (4, 200, 100)).astype(np.float32)
    ctx = Context(rng=np.random.default_rng(1))
    y = np.array(layer.forward(x, ctx))
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 0.01
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy, ctx)
    np.testing.assert_allclose(dx, np.where(kept, dy / (1 - p), 0), rtol=1e-6)


def test_dropout_is_deterministic_per_seed_and_off_in_eval():
    net = Net([{"type": "dropout"}], (50,), np.float64)
    layer = net.layers[0]
    layer.need_dx = True
    x = np.arange(1.0, 1001.0).reshape(20, 50)

    def masks(seed):
        ctx = Context(rng=np.random.default_rng(seed))
        return [np.array(layer.forward(x, ctx)) for _ in range(3)]

    a, b, c = masks(5), masks(5), masks(6)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], a[1])
    assert layer.forward(x, Context(train=False, rng=np.random.default_rng(5))) is x
    assert layer.backward(x, Context(train=False)) is x


def test_dropout_training_runs_reproduce():
    from descent.engine.backend import Trainer

    specs = [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dropout", "p": 0.5},
             {"type": "dense", "units": 3}]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 3, 32)
    runs = []
    for seed in (1, 1, 2):
        t = Trainer(specs, (6,), seed=seed)
        runs.append([t.step(x, y).loss for _ in range(3)])
    assert runs[0] == runs[1] and runs[0] != runs[2]


# ---------------------------------------------------------------------------------------------
# whole models, both backends

def test_small_cnn_trains_like_torch():
    pytest.importorskip("torch", reason="the torch backend is the reference")
    from descent.engine.backend import make_trainer
    from descent.engine.optim import OptimConfig

    specs = [{"type": "conv2d", "filters": 4, "kernel": 3, "activation": "relu"},
             {"type": "maxpool2d", "size": 2},
             {"type": "flatten"},
             {"type": "dense", "units": 5}]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 1, 9, 9)), rng.integers(0, 5, 16)
    out = {}
    for backend in ("numba", "torch"):
        t = make_trainer(specs, (1, 9, 9), "cross_entropy", OptimConfig(kind="adam", lr=1e-2), seed=3,
                         dtype="float64", backend=backend)
        out[backend] = [t.step(x, y).loss for _ in range(3)], t.predict(x)
    (ours, pred), (theirs, tpred) = out["numba"], out["torch"]
    assert np.max(np.abs(np.array(ours) - np.array(theirs))) < 1e-9
    assert np.max(np.abs(pred - tpred)) < 1e-9


@pytest.mark.parametrize("specs, in_shape, batch", [
    ([{"type": "conv2d", "filters": 5, "kernel": 3, "activation": "relu"}, {"type": "maxpool2d", "size": 2},
      {"type": "flatten"}, {"type": "dense", "units": 4}], (1, 12, 11), 64),           # winners, 4 pieces
    ([{"type": "conv2d", "filters": 3, "kernel": 3, "padding": 1, "activation": "tanh"},
      {"type": "maxpool2d", "size": 2},
      {"type": "conv2d", "filters": 2, "kernel": 3, "padding": 1, "activation": "relu"},   # 27 taps
      {"type": "maxpool2d", "size": 3, "stride": 2},
      {"type": "conv2d", "filters": 2, "kernel": 2, "stride": 2, "activation": "relu"},    # dx, not 3x3
      {"type": "flatten"}, {"type": "dense", "units": 3}], (1, 13, 12), 27),           # 3 uneven pieces
])
def test_two_threads_give_the_same_bits(specs, in_shape, batch, monkeypatch):
    """The direct kernels and the pools run in batch pieces (on Numba's threads with two): every
    bit of the weights after a few training steps is the same on one thread and on two."""
    from descent.engine import threads
    from descent.engine.backend import Trainer
    from descent.engine.optim import OptimConfig

    calls = []
    drivers = ["conv_forward_pieces3", "conv_forward_pieces", "dz_winners_pieces", "dz_dense_pieces",
               "conv_wgrads_pieces3", "conv_wgrads_pieces", "conv_dx_pieces"]
    for mod, name in [(conv, d) for d in drivers] + [(pooling, "maxpool2x2_forward_pieces"),
                                                     (pooling, "maxpool_forward_pieces")]:
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))

    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch,) + in_shape).astype(np.float32)
    y = rng.integers(0, specs[-1]["units"], batch)
    results = []
    for n in (1, 2):
        with threads.using(n):
            t = Trainer(specs, in_shape, "cross_entropy", OptimConfig(kind="adam", lr=1e-2), seed=5)
            t.net.layers[0].need_dx = True
            losses = [t.step(x, y).loss for _ in range(3)]
            results.append((losses, {k: np.array(v) for k, v in t.state_dict().items()}, t.predict(x)))
    with threads.using(2):
        two = threads.pieces_threads(2) == 2                   # Numba has a thread-safe threading layer here
    pools = {"maxpool2x2_forward_pieces"} | ({"maxpool_forward_pieces"} if len(specs) > 4 else set())   # the second set's 3x3 pool
    # the first set: a 3x3 ReLU conv under a pool (its dz from the winners); the second: a 3x3 tanh
    # conv (dense dz), a 27-tap one (backward by BLAS) and a 2x2 stride-2 one with dx
    convs = ({"conv_forward_pieces3", "conv_wgrads_pieces3"} |
             ({"conv_forward_pieces", "dz_dense_pieces", "conv_wgrads_pieces", "conv_dx_pieces"} if len(specs) > 4
              else {"dz_winners_pieces"}))
    assert not two or convs | pools <= set(calls), (convs | pools) - set(calls)
    (losses, state, pred), (losses2, state2, pred2) = results
    assert losses == losses2 and np.array_equal(pred, pred2)
    assert list(state) == list(state2) and all(np.array_equal(state[k], state2[k]) for k in state)


def test_batch_pieces_depend_on_the_batch_only():
    assert [conv.batch_pieces(n) for n in (1, 7, 8, 16, 24, 31, 32, 64, 1000)] == [1, 1, 1, 2, 3, 3, 4, 4, 4]


# ---------------------------------------------------------------------------------------------
# bad specs

@pytest.mark.parametrize("spec,in_shape,key,words", [
    ({"type": "conv2d", "filters": 4}, (784,), "[0].filters", "conv2d expects images (C, H, W), got (784,)"),
    ({"type": "conv2d"}, (1, 8, 8), "[0].filters", "required"),
    ({"type": "conv2d", "filters": 0}, (1, 8, 8), "[0].filters", "at least 1"),
    ({"type": "conv2d", "filters": 2, "kernel": 9}, (1, 8, 8), "[0].kernel", "empty"),
    ({"type": "conv2d", "filters": 2, "kernel": 5, "padding": 1}, (1, 8, 2), "[0].kernel", "empty"),
    ({"type": "conv2d", "filters": 2, "stride": 0}, (1, 8, 8), "[0].stride", "at least 1"),
    ({"type": "conv2d", "filters": 2, "padding": -1}, (1, 8, 8), "[0].padding", "at least 0"),
    ({"type": "conv2d", "filters": 2, "activation": "gelu"}, (1, 8, 8), "[0].activation", "one of"),
    ({"type": "conv2d", "filters": 2, "bias": "yes"}, (1, 8, 8), "[0].bias", "true or false"),
    ({"type": "conv2d", "filters": 2, "units": 3}, (1, 8, 8), "[0].units", "unknown key"),
    ({"type": "maxpool2d"}, (64,), "[0].size", "maxpool2d expects images (C, H, W)"),
    ({"type": "maxpool2d", "size": 5}, (1, 4, 8), "[0].size", "does not fit"),
    ({"type": "maxpool2d", "stride": 0}, (1, 4, 4), "[0].stride", "at least 1"),
    ({"type": "dropout", "p": 1.0}, (4,), "[0].p", "below 1"),
    ({"type": "dropout", "p": -0.1}, (4,), "[0].p", "at least 0"),
    ({"type": "dropout", "rate": 0.1}, (4,), "[0].rate", "unknown key"),
    ({"type": "residual"}, (4,), "[0].layers", "required"),
    ({"type": "residual", "layers": []}, (4,), "[0].layers", "non-empty list"),
    ({"type": "residual", "layers": [{"type": "dense", "units": 3}]}, (4,), "[0].layers", "(4,)"),
    ({"type": "residual", "layers": [{"type": "dense"}]}, (4,), "[0].layers[0].units", "required"),
    ({"type": "residual", "layers": [{"type": "conv2d", "filters": 2}]}, (2, 5, 5), "[0].layers",
     "input (2, 5, 5), block output (2, 3, 3)"),
])
def test_bad_specs_name_the_key(spec, in_shape, key, words):
    with pytest.raises(SpecError) as e:
        build_layers([spec], in_shape)
    assert e.value.key == key
    assert words in e.value.message


def test_spec_defaults():
    c, p, d = build_layers([{"type": "conv2d", "filters": 2}, {"type": "maxpool2d"}, {"type": "dropout"}],
                           (3, 9, 9))
    assert (c.kernel, c.stride, c.padding, c.act, c.has_bias) == (3, 1, 0, CODES["identity"], True)
    assert c.out_shape == (2, 7, 7) and (p.size, p.stride) == (2, 2) and p.out_shape == (2, 3, 3)
    assert d.p_drop == 0.5 and d.out_shape == (2, 3, 3)
