"""Dense (every fused activation), the standalone activation layers and flatten: against PyTorch
autograd in float64, against finite differences, and against the slow references in tests/naive.py."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from descent.engine.errors import SpecError
from descent.engine.layer import Context
from descent.engine.model import Net, build_layers

ACTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax"]
KINKED = {"relu", "leaky_relu"}       # finite differences are only safe to 1e-5 there
N, IN, OUT, T = 6, 7, 5, 4


def dense_layer(act, dtype=np.float64, bias=True, in_shape=(IN,), seed=0, slope=None):
    spec = {"type": "dense", "units": OUT, "activation": act, "bias": bias}
    if slope is not None:
        spec["slope"] = slope
    net = Net([spec], in_shape, dtype, seed)
    layer = net.layers[0]
    layer.need_dx = True          # the first layer skips dx by default; we want to check it
    return net, layer


def run(layer, x, dy):
    """Forward and backward once; copies of y, dx and the gradient views."""
    ctx = Context()
    y = np.array(layer.forward(x, ctx))
    dx = layer.backward(dy, ctx)
    return y, None if dx is None else np.array(dx), {k: np.array(v) for k, v in layer.g.items()}


def torch_act(torch, name, z, slope=0.01):
    F = torch.nn.functional
    return {"identity": lambda v: v, "relu": F.relu, "leaky_relu": lambda v: F.leaky_relu(v, slope),
            "sigmoid": torch.sigmoid, "tanh": torch.tanh, "softmax": lambda v: torch.softmax(v, -1)}[name](z)


# ---- dense -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("in_shape", [(IN,), (T, IN)], ids=["flat", "sequence"])
@pytest.mark.parametrize("act", ACTS)
def test_dense_matches_torch(torch, rel_err, rng, act, in_shape, bias):
    net, layer = dense_layer(act, bias=bias, in_shape=in_shape, slope=0.2 if act == "leaky_relu" else None)
    x = rng.normal(size=(N,) + in_shape)
    dy = rng.normal(size=(N,) + in_shape[:-1] + (OUT,))
    y, dx, grads = run(layer, x, dy)

    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(layer.p["weight"].copy()).requires_grad_()
    bt = torch.from_numpy(layer.p["bias"].copy()).requires_grad_() if bias else None
    yt = torch_act(torch, act, torch.nn.functional.linear(xt, wt, bt), 0.2)
    (yt * torch.from_numpy(dy)).sum().backward()

    assert rel_err(y, yt.detach().numpy()) < 1e-7
    assert rel_err(dx, xt.grad.numpy()) < 1e-7
    assert rel_err(grads["weight"], wt.grad.numpy()) < 1e-7
    if bias:
        assert rel_err(grads["bias"], bt.grad.numpy()) < 1e-7
    else:
        assert "bias" not in layer.p


@pytest.mark.parametrize("act", ACTS)
def test_dense_finite_differences(num_grad, rel_err, rng, act):
    net, layer = dense_layer(act)
    x = rng.normal(size=(N, IN))
    r = rng.normal(size=(N, OUT))

    def loss():
        return float(np.sum(layer.forward(x, Context()) * r))

    _, dx, grads = run(layer, x, r)
    tol = 1e-5 if act in KINKED else 1e-7
    assert rel_err(grads["weight"], num_grad(loss, layer.p["weight"])) < tol
    assert rel_err(grads["bias"], num_grad(loss, layer.p["bias"])) < tol
    assert rel_err(dx, num_grad(loss, x)) < tol


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("act", ACTS)
def test_dense_matches_naive(rel_err, rng, act, dtype, tol):
    net, layer = dense_layer(act, dtype=dtype)
    x = rng.normal(size=(N, IN)).astype(dtype)
    dy = rng.normal(size=(N, OUT)).astype(dtype)
    y, dx, grads = run(layer, x, dy)
    assert y.dtype == dtype and dx.dtype == dtype and grads["weight"].dtype == dtype
    w, b = layer.p["weight"], layer.p["bias"]
    assert rel_err(y, naive.dense(x, w, b, act)) < tol
    ndx, ndw, ndb = naive.dense_grads(x, w, b, dy, act)
    assert rel_err(dx, ndx) < tol
    assert rel_err(grads["weight"], ndw) < tol
    assert rel_err(grads["bias"], ndb) < tol


def test_dense_backward_overwrites_gradients(rng):
    """backward() sets the gradient views (no accumulation across steps)."""
    net, layer = dense_layer("tanh")
    x, dy = rng.normal(size=(N, IN)), rng.normal(size=(N, OUT))
    _, _, first = run(layer, x, dy)
    _, _, second = run(layer, x, dy)
    assert np.array_equal(first["weight"], second["weight"])
    assert np.array_equal(first["bias"], second["bias"])


def test_first_layer_skips_dx(rng):
    net = Net([{"type": "dense", "units": 3}], (4,), np.float64, 0)
    layer = net.layers[0]
    layer.forward(rng.normal(size=(2, 4)), Context())
    assert layer.backward(rng.normal(size=(2, 3)), Context()) is None


def test_dense_init_is_torch_default_range():
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, like nn.Linear."""
    net = Net([{"type": "dense", "units": 200}], (400,), np.float64, 0)
    w, b = net.params.values["0.weight"], net.params.values["0.bias"]
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.95 * bound and abs(w.mean()) < 0.05 * bound


@pytest.mark.parametrize("spec,in_shape,key", [
    ({"type": "dense", "units": 3}, (2, 3, 4), "[0].units"),
    ({"type": "dense", "units": 0}, (4,), "[0].units"),
    ({"type": "dense", "units": 3, "activation": "swish"}, (4,), "[0].activation"),
    ({"type": "dense", "units": 3, "colour": 1}, (4,), "[0].colour"),
    ({"type": "dense"}, (4,), "[0].units"),
])
def test_dense_spec_errors_name_the_key(spec, in_shape, key):
    with pytest.raises(SpecError) as e:
        build_layers([spec], in_shape)
    assert e.value.key == key


# ---- standalone activation layers ----------------------------------------------------------------

def act_layer(name, dtype=np.float64, in_shape=(OUT,)):
    spec = {"type": name} | ({"slope": 0.2} if name == "leaky_relu" else {})
    net = Net([spec], in_shape, dtype, 0)
    return net.layers[0]


@pytest.mark.parametrize("in_shape", [(OUT,), (T, OUT)], ids=["flat", "sequence"])
@pytest.mark.parametrize("name", ACTS)
def test_activation_layer_matches_torch(torch, rel_err, rng, name, in_shape):
    layer = act_layer(name, in_shape=in_shape)
    x = rng.normal(size=(N,) + in_shape)
    x_before = x.copy()
    dy = rng.normal(size=x.shape)
    y = np.array(layer.forward(x, Context()))
    dx = layer.backward(dy, Context())
    assert np.array_equal(x, x_before)       # the input is not changed in place
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch_act(torch, name, xt, 0.2)
    (yt * torch.from_numpy(dy)).sum().backward()
    assert rel_err(y, yt.detach().numpy()) < 1e-7
    assert rel_err(dx, xt.grad.numpy()) < 1e-7


@pytest.mark.parametrize("name", ACTS)
def test_activation_layer_finite_differences(num_grad, rel_err, rng, name):
    layer = act_layer(name)
    x = rng.normal(size=(N, OUT))
    r = rng.normal(size=x.shape)
    layer.forward(x, Context())
    dx = layer.backward(r, Context())
    fd = num_grad(lambda: float(np.sum(layer.forward(x, Context()) * r)), x)
    assert rel_err(dx, fd) < (1e-5 if name in KINKED else 1e-7)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)], ids=["f64", "f32"])
@pytest.mark.parametrize("name", ACTS)
def test_activation_layer_matches_naive(rel_err, rng, name, dtype, tol):
    layer = act_layer(name, dtype)
    x = rng.normal(size=(N, OUT)).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    y = layer.forward(x, Context())
    dx = layer.backward(dy, Context())
    assert y.dtype == dtype and dx.dtype == dtype
    assert rel_err(y, naive.act(x, name, 0.2)) < tol
    assert rel_err(dx, naive.act_grad(x, dy, name, 0.2)) < tol


def test_softmax_is_stable_for_large_inputs(rel_err):
    layer = act_layer("softmax")
    x = np.array([[1000.0, 1001.0, 999.0, -1000.0, 0.0]])
    y = layer.forward(x, Context())
    assert np.all(np.isfinite(y)) and abs(y.sum() - 1) < 1e-15
    assert rel_err(y, naive.act(x - 1000, "softmax")) < 1e-12


def test_activation_spec_errors():
    with pytest.raises(SpecError) as e:
        build_layers([{"type": "relu", "slope": 0.1}], (3,))
    assert e.value.key == "[0].slope"
    with pytest.raises(SpecError) as e:
        build_layers([{"type": "leaky_relu", "slope": -1}], (3,))
    assert e.value.key == "[0].slope"


# ---- flatten ---------------------------------------------------------------------------------

def test_flatten_shapes_and_backward(rng):
    net = Net([{"type": "flatten"}], (2, 3, 4), np.float64, 0)
    layer = net.layers[0]
    assert layer.out_shape == (24,)
    x = rng.normal(size=(5, 2, 3, 4))
    y = layer.forward(x, Context())
    assert y.shape == (5, 24) and np.array_equal(y, x.reshape(5, 24))
    dy = rng.normal(size=(5, 24))
    dx = layer.backward(dy, Context())
    assert dx.shape == x.shape and np.array_equal(dx, dy.reshape(x.shape))
    nc = np.asfortranarray(x)      # a non-contiguous input still flattens in C order
    assert np.array_equal(layer.forward(nc, Context()), x.reshape(5, 24))


def test_flatten_dense_stack_matches_build_torch_model(torch, rel_err, rng):
    """A whole stack (flatten, every fused activation, standalone activations) against the torch
    model built from the same spec and seed: outputs and every parameter gradient."""
    from descent.engine.torch_backend import build_torch_model

    spec = [{"type": "flatten"}, {"type": "dense", "units": 9, "activation": "tanh"},
            {"type": "dense", "units": 8, "activation": "leaky_relu", "slope": 0.1},
            {"type": "sigmoid"}, {"type": "dense", "units": 7, "activation": "relu"},
            {"type": "dense", "units": 6, "activation": "sigmoid", "bias": False}, {"type": "relu"},
            {"type": "dense", "units": 5, "activation": "softmax"}, {"type": "tanh"},
            {"type": "leaky_relu"}, {"type": "identity"}, {"type": "dense", "units": 4}, {"type": "softmax"}]
    in_shape = (2, 3, 2)
    net = Net(spec, in_shape, np.float64, seed=5)
    model = build_torch_model(spec, in_shape, "float64", seed=5)
    x = rng.normal(size=(N,) + in_shape)
    dy = rng.normal(size=(N, 4))
    y = np.array(net.forward(x, Context()))
    net.backward(dy, Context())
    yt = model(torch.from_numpy(x))
    (yt * torch.from_numpy(dy)).sum().backward()
    assert rel_err(y, yt.detach().numpy()) < 1e-7
    for name, p in model.named_parameters():
        assert rel_err(net.params.grads[name], p.grad.numpy()) < 1e-7, name


# ---- the sparse-input path (bag-of-words batches) --------------------------------------------------

def sparse_input(rng, n, f, density=0.01, dtype=np.float64):
    x = np.zeros((n, f), dtype)
    hit = rng.random((n, f)) < density
    x[hit] = rng.integers(1, 4, hit.sum())
    x[0, f - 1] = 2.5          # a non-zero in the last, partial chunk
    x[1] = 0.0                 # an all-zero row
    return x


@pytest.mark.parametrize("act", ["relu", "softmax"])
def test_sparse_input_matches_torch(torch, rel_err, rng, act):
    from descent.engine.dense import SPARSE_MIN_FAN_IN, SPARSE_MIN_UNITS

    f = SPARSE_MIN_FAN_IN + 7
    net = Net([{"type": "dense", "units": SPARSE_MIN_UNITS + 3, "activation": act}], (f,), np.float64, 0)
    layer = net.layers[0]
    layer.need_dx = True
    x = sparse_input(rng, N, f)
    dy = rng.normal(size=(N, SPARSE_MIN_UNITS + 3))
    y, dx, grads = run(layer, x, dy)
    assert layer.csr is not None                               # it took the sparse path
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(layer.p["weight"].copy()).requires_grad_()
    bt = torch.from_numpy(layer.p["bias"].copy()).requires_grad_()
    yt = torch_act(torch, act, torch.nn.functional.linear(xt, wt, bt))
    (yt * torch.from_numpy(dy)).sum().backward()
    assert rel_err(y, yt.detach().numpy()) < 1e-7
    assert rel_err(grads["weight"], wt.grad.numpy()) < 1e-7
    assert rel_err(grads["bias"], bt.grad.numpy()) < 1e-7
    assert rel_err(dx, xt.grad.numpy()) < 1e-7

    run(layer, rng.normal(size=(N, f)), dy)                     # a dense batch: back to BLAS
    assert layer.csr is None
    x[0] = rng.normal(size=f)                                   # a dense first row is enough
    assert rel_err(run(layer, x, dy)[0], naive.dense(x, layer.p["weight"], layer.p["bias"], act)) < 1e-12
    assert layer.csr is None


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
def test_sparse_input_matches_naive_and_the_dense_path(rel_err, rng, dtype, tol):
    from descent.engine.dense import SPARSE_MIN_FAN_IN, SPARSE_MIN_UNITS

    f = SPARSE_MIN_FAN_IN
    net = Net([{"type": "dense", "units": SPARSE_MIN_UNITS, "activation": "tanh"}], (f,), dtype, 0)
    layer = net.layers[0]
    x = sparse_input(rng, 4, f, dtype=dtype)
    dy = rng.normal(size=(4, SPARSE_MIN_UNITS)).astype(dtype)
    y, _, grads = run(layer, x, dy)
    assert layer.csr is not None
    w, b = layer.p["weight"], layer.p["bias"]
    _, ndw, ndb = naive.dense_grads(x, w, b, dy, "tanh")
    assert rel_err(y, naive.dense(x, w, b, "tanh")) < tol
    assert rel_err(grads["weight"], ndw) < tol and rel_err(grads["bias"], ndb) < tol
    layer.sparse_ok = False                                     # the BLAS path on the same batch
    y2, _, grads2 = run(layer, x, dy)
    assert layer.csr is None
    assert rel_err(y, y2) < tol and rel_err(grads["weight"], grads2["weight"]) < tol


def test_an_mnist_like_batch_takes_the_sparse_path_and_matches_torch(torch, rel_err, rng):
    """About a fifth of the inputs non-zero, as in MNIST's pixels: sparse, and float64-exact."""
    f, units = 300, 40
    net = Net([{"type": "dense", "units": units, "activation": "relu"}], (f,), np.float64, 0)
    layer = net.layers[0]
    layer.need_dx = True
    x = sparse_input(rng, N, f, density=0.2)
    x[0, :] = 0.0
    x[0, : f // 5] = 0.5                                           # a first row at its share
    dy = rng.normal(size=(N, units))
    y, dx, grads = run(layer, x, dy)
    assert layer.csr is not None
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(layer.p["weight"].copy()).requires_grad_()
    bt = torch.from_numpy(layer.p["bias"].copy()).requires_grad_()
    yt = torch.relu(torch.nn.functional.linear(xt, wt, bt))
    (yt * torch.from_numpy(dy)).sum().backward()
    assert rel_err(y, yt.detach().numpy()) < 1e-7
    assert rel_err(grads["weight"], wt.grad.numpy()) < 1e-7
    assert rel_err(dx, xt.grad.numpy()) < 1e-7


def test_the_nonzeros_by_column_are_the_transpose_in_row_order(rng):
    from descent.engine.dense_kernels import gather_nonzeros, transpose_nonzeros

    n, f = 9, 40
    x = sparse_input(rng, n, f, density=0.2)
    row_ptr, cols, vals = np.empty(n + 1, np.int64), np.empty(n * f, np.uint32), np.empty(n * f)
    nnz = gather_nonzeros(x, x.view(np.uint64), row_ptr, cols, vals)
    assert nnz == np.count_nonzero(x)
    col_ptr, rows, tvals = np.empty(f + 1, np.int64), np.empty(n * f, np.uint32), np.empty(n * f)
    transpose_nonzeros(row_ptr, cols, vals, col_ptr, rows, tvals)
    for j in range(f):
        want = np.flatnonzero(x[:, j])                             # rows in order, the slow way
        got = slice(col_ptr[j], col_ptr[j + 1])
        assert list(rows[got]) == list(want)
        assert list(tvals[got]) == list(x[want, j])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_the_sparse_path_gives_the_same_bits_on_one_thread_and_two(rng, dtype):
    """Big enough (MNIST's first layer) that two threads each sum a range of rows."""
    from descent.engine import threads

    net = Net([{"type": "dense", "units": 1024, "activation": "relu"}], (784,), dtype, 0)
    layer = net.layers[0]
    x = sparse_input(rng, 128, 784, density=0.19, dtype=dtype)
    dy = rng.normal(size=(128, 1024)).astype(dtype)
    got = []
    for n in (1, 2):
        with threads.using(n):
            y, _, grads = run(layer, x, dy)
        assert layer.csr is not None
        got.append((y, grads["weight"], grads["bias"]))
    with threads.using(2):
        if threads.pieces_threads(2) > 1:                          # a thread-safe layer: pieces ran
            from descent.engine.dense_kernels import sum_rows_pieces
            assert sum_rows_pieces.signatures
    for a, b in zip(*got):
        assert np.array_equal(a, b)


def test_narrow_layers_and_denser_batches_take_blas(rng):
    from descent.engine.dense import SPARSE_MIN_FAN_IN, SPARSE_MIN_UNITS

    f = SPARSE_MIN_FAN_IN
    narrow = Net([{"type": "dense", "units": SPARSE_MIN_UNITS - 1}], (f,), np.float64, 0).layers[0]
    x = sparse_input(rng, 64, f, density=0.01)
    run(narrow, x, rng.normal(size=(64, SPARSE_MIN_UNITS - 1)))
    assert narrow.csr is None                                       # a product too small to pay for the gather
    wide = Net([{"type": "dense", "units": SPARSE_MIN_UNITS}], (f,), np.float64, 0).layers[0]
    dy = rng.normal(size=(64, SPARSE_MIN_UNITS))
    run(wide, x, dy)
    assert wide.csr is not None
    x = sparse_input(rng, 64, f, density=0.35)                      # a hidden layer after ReLU
    run(wide, x, dy)
    assert wide.csr is None


def test_nothing_upstream_of_the_first_weights_gets_a_gradient(rng):
    """flatten -> dense (MNIST's MLP): the dense layer computes no dx and flatten no backward."""
    net = Net([{"type": "flatten"}, {"type": "dense", "units": 3, "activation": "relu"}, {"type": "dense", "units": 2}],
              (2, 4), np.float64, 0)
    assert [layer.need_dx for layer in net.layers] == [False, False, True]

    def unexpected(dy, ctx):
        raise AssertionError("flatten's backward ran")

    net.layers[0].backward = unexpected
    ctx = Context()
    x = rng.normal(size=(5, 2, 4))
    dy = rng.normal(size=(5, 2))
    net.forward(x, ctx)
    net.backward(dy, ctx)
    x2, (w1, b1), w2 = x.reshape(5, 8), net.layers[1].p.values(), net.layers[2].p["weight"]
    dz1 = (dy @ w2) * (x2 @ w1.T + b1 > 0)                         # the slow way, by hand
    assert np.allclose(net.layers[1].g["weight"], dz1.T @ x2, rtol=1e-12, atol=1e-12)
    assert np.allclose(net.layers[1].g["bias"], dz1.sum(0), rtol=1e-12, atol=1e-12)
