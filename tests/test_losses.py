"""The three losses: values and dL/dlogits against PyTorch (float64), finite differences and the
slow references; label checks; and MSE learning y = x with a single dense node."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from descent.engine.backend import Trainer
from descent.engine.losses import binary_cross_entropy, mean_squared_error, softmax_cross_entropy
from descent.engine.optim import OptimConfig

N, K = 7, 5


def cases(rng):
    """name -> (our function, logits, targets, torch loss name)."""
    return {
        "cross_entropy": (softmax_cross_entropy, rng.normal(size=(N, K)) * 3, rng.integers(0, K, N), "cross_entropy"),
        "bce": (binary_cross_entropy, rng.normal(size=(N, 1)) * 3, rng.integers(0, 2, (N, 1)).astype(float),
                "binary_cross_entropy_with_logits"),
        "bce_flat_soft": (binary_cross_entropy, rng.normal(size=N) * 3, rng.uniform(size=N),
                          "binary_cross_entropy_with_logits"),
        "mse": (mean_squared_error, rng.normal(size=(N, 3)), rng.normal(size=(N, 3)), "mse_loss"),
    }


NAMES = ["cross_entropy", "bce", "bce_flat_soft", "mse"]


@pytest.mark.parametrize("name", NAMES)
def test_loss_matches_torch(torch, rel_err, rng, name):
    fn, z, t, torch_name = cases(rng)[name]
    loss, d = fn(z, t)
    zt = torch.from_numpy(z).requires_grad_()
    tt = torch.from_numpy(t)
    lt = getattr(torch.nn.functional, torch_name)(zt, tt)     # reduction="mean" for all three
    lt.backward()
    assert isinstance(loss, float)
    assert rel_err(loss, lt.item()) < 1e-7
    assert rel_err(d, zt.grad.numpy()) < 1e-7


@pytest.mark.parametrize("name", NAMES)
def test_loss_finite_differences(num_grad, rel_err, rng, name):
    fn, z, t, _ = cases(rng)[name]
    _, d = fn(z, t)
    assert rel_err(d, num_grad(lambda: fn(z, t)[0], z)) < 1e-7


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)], ids=["f64", "f32"])
@pytest.mark.parametrize("name", NAMES)
def test_loss_matches_naive(rel_err, rng, name, dtype, tol):
    fn, z, t, _ = cases(rng)[name]
    z = z.astype(dtype)
    loss, d = fn(z, t)
    assert d.dtype == dtype and d.shape == z.shape
    ref_fn = {"cross_entropy": naive.softmax_cross_entropy, "bce": naive.binary_cross_entropy,
              "bce_flat_soft": naive.binary_cross_entropy, "mse": naive.mean_squared_error}[name]
    ref_loss, ref_d = ref_fn(z, t)
    assert rel_err(loss, ref_loss) < tol
    assert rel_err(d, ref_d) < tol


def test_losses_are_stable_for_extreme_logits(torch, rel_err):
    z = np.array([[800.0, -800.0, 0.0], [-60.0, 60.0, 59.0]])
    loss, d = softmax_cross_entropy(z, np.array([1, 0]))
    zt = torch.from_numpy(z).requires_grad_()
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor([1, 0]))
    lt.backward()
    assert np.isfinite(loss) and rel_err(loss, lt.item()) < 1e-12 and rel_err(d, zt.grad.numpy()) < 1e-12

    zb = np.array([[-100.0], [100.0], [40.0], [-40.0]])
    tb = np.array([[1.0], [0.0], [1.0], [0.0]])
    loss, d = binary_cross_entropy(zb, tb)
    zt = torch.from_numpy(zb).requires_grad_()
    lt = torch.nn.functional.binary_cross_entropy_with_logits(zt, torch.from_numpy(tb))
    lt.backward()
    assert np.isfinite(loss) and rel_err(loss, lt.item()) < 1e-12 and rel_err(d, zt.grad.numpy()) < 1e-12


def test_cross_entropy_rejects_bad_labels():
    z = np.zeros((3, 4))
    for labels in ([0, 1, 4], [0, -1, 2]):
        with pytest.raises(ValueError, match="labels must lie in 0..3"):
            softmax_cross_entropy(z, np.array(labels))
    with pytest.raises(ValueError, match="2 labels for 3 rows"):
        softmax_cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"logits \(N, K\)"):
        softmax_cross_entropy(np.zeros(3), np.array([0, 1, 2]))


def test_targets_are_cast_and_reshaped(rel_err):
    """bce/mse take targets of any shape with the right size, ints included."""
    z = np.array([[0.5], [-1.0], [2.0]])
    a = binary_cross_entropy(z, np.array([1, 0, 1]))
    b = binary_cross_entropy(z, np.array([[1.0], [0.0], [1.0]]))
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    c = mean_squared_error(z, [1, 2, 3])
    assert rel_err(c[0], np.mean((z.ravel() - [1, 2, 3]) ** 2)) < 1e-15


def test_mse_single_dense_node_learns_identity():
    """y = x with one weight and one bias: plain SGD drives the MSE to (almost) zero."""
    rng = np.random.default_rng(0)
    t = Trainer([{"type": "dense", "units": 1}], (1,), "mse", OptimConfig(kind="sgd", lr=0.3), seed=0,
                dtype="float64")
    first = None
    for _ in range(300):
        x = rng.uniform(-1, 1, size=(32, 1))
        stats = t.step(x, x)
        first = stats.loss if first is None else first
    assert first > 1e-2
    assert stats.loss < 1e-12
    w, b = t.net.params.values["0.weight"], t.net.params.values["0.bias"]
    assert abs(w[0, 0] - 1) < 1e-6 and abs(b[0]) < 1e-6


def test_exp_fast_is_within_one_ulp_and_keeps_the_edges():
    """float32 softmaxes exponentiate with exp_fast (engine/exp_fast.py): under 1 ulp from the
    exact e^x over the range a float32 exp is normal in, 0 below it, NaN stays NaN."""
    import numba

    from descent.engine.exp_fast import exp_fast

    @numba.njit
    def apply(x, out):
        for i in range(x.size):
            out[i] = exp_fast(x[i])

    x = np.linspace(-87.3, 88.3, 1_000_001, dtype=np.float32)
    out = np.empty_like(x)
    apply(x, out)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(out - exact) / ulp) < 1.0
    edges = np.array([0.0, -0.0, 1e-30, -1e-30, -87.4, -1000.0, -np.inf, np.nan], np.float32)
    got = np.empty_like(edges)
    apply(edges, got)
    assert got[:4].tolist() == [1.0] * 4 and got[4:7].tolist() == [0.0] * 3 and np.isnan(got[7])


def test_float32_cross_entropy_matches_float64_on_a_long_batch(rel_err, rng):
    """256 x 10 logits and padding rows: the flat exponential pass in float32 lands within float32
    rounding of the float64 result (which uses math.exp), and a NaN logit makes the loss NaN."""
    z = rng.normal(size=(256, 10)) * 4
    labels = rng.integers(0, 10, 256)
    labels[::7] = -100
    loss64, d64 = softmax_cross_entropy(z, labels)
    loss32, d32 = softmax_cross_entropy(z.astype(np.float32), labels)
    assert rel_err(loss32, loss64) < 1e-6 and np.max(np.abs(d32 - d64)) < 1e-8
    assert np.all(d32[::7] == 0.0)
    z32 = z.astype(np.float32)
    z32[3, 4] = np.nan
    assert np.isnan(softmax_cross_entropy(z32, labels)[0])
