"""engine/products.py and the pieces on Numba's threads: the blocked CBLAS products against a
float64 reference, their fallbacks, and every bit equal at one, two and three threads (the blocks
are fixed by the shape), for products, the optimizer updates, the per-tensor sums of squares and
whole dense training steps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from descent.engine import products, threads
from descent.engine.arrays import SUMSQ_BLOCK, segment_sumsq
from descent.engine.backend import Trainer
from descent.engine.optim import OptimConfig, Optimizer
from descent.engine.params import ParamSet


def operands(rng, m, n, k, ta, tb, dtype):
    """a (m, k) and b (k, n), each a C-contiguous array or the transpose of one."""
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return (a.T if ta else a), (b.T if tb else b)


def at_threads(fn, counts=(1, 2, 3)):
    out = []
    for n in counts:
        with threads.using(n):
            out.append(fn())
    return out


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 300), n=st.integers(1, 300), k=st.sampled_from([1, 7, 64, 130, 1500]),
       ta=st.booleans(), tb=st.booleans(), f64=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_matmul_matches_float64_and_keeps_its_bits_at_any_thread_count(m, n, k, ta, tb, f64, seed):
    dtype = np.float64 if f64 else np.float32
    a, b = operands(np.random.default_rng(seed), m, n, k, ta, tb, dtype)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    outs = at_threads(lambda: products.matmul(a, b, np.empty((m, n), dtype)))
    scale = np.abs(a).max() * np.abs(b).max() * k
    assert np.abs(outs[0] - ref).max() <= (1e-5 if dtype == np.float32 else 1e-13) * scale
    assert all(np.array_equal(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("m, n, k", [(64, 64, 2000), (256, 128, 784), (40, 300, 200)])
def test_big_products_are_cut_into_blocks_and_accumulate_with_beta(rng, m, n, k):
    assert m * n * k >= products.PIECE_MIN_MACS            # the blocked path, not one call
    a, b = operands(rng, m, n, k, True, True, np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    want = c.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    outs = at_threads(lambda: products.matmul(a, b, c.copy(), beta=1.0))
    assert np.abs(outs[0] - want).max() < 1e-3
    assert all(np.array_equal(o, outs[0]) for o in outs[1:])


def test_views_blas_cannot_take_fall_back_to_numpy(rng):
    a = rng.standard_normal((30, 40))
    b = rng.standard_normal((60, 50))
    strided = b[::2, :]                                      # neither C- nor F-contiguous
    out = products.matmul(a[:, :30], strided[:30], np.empty((30, 50)))
    np.testing.assert_allclose(out, a[:, :30] @ strided[:30], rtol=1e-12)
    mixed = products.matmul(a.astype(np.float32), rng.standard_normal((40, 5)), np.empty((30, 5)))
    assert mixed.shape == (30, 5)
    acc = np.ones((30, 5))
    products.matmul(a, np.zeros((40, 5)), acc, beta=2.0)
    assert np.all(acc == 2.0)
    with pytest.raises(ValueError, match="shapes"):
        products.matmul(a, b, np.empty((30, 50)))


def test_without_numpy_openblas_products_are_numpy_on_one_thread(rng, monkeypatch):
    monkeypatch.setattr(products, "_fns", {})               # NumPy built against another BLAS
    a, b = operands(rng, 64, 64, 2000, False, True, np.float32)
    outs = at_threads(lambda: products.matmul(a, b, np.empty((64, 64), np.float32)))
    assert all(np.array_equal(o, a @ b) for o in outs)


def test_blas_runs_on_one_thread_at_any_setting():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    products.matmul(np.ones((2, 2)), np.ones((2, 2)), np.empty((2, 2)))
    threads.cover_kernel_blas()                              # SciPy's too, which Numba's np.dot calls
    with threads.using(2):
        info = threadpoolctl.threadpool_info()
    assert all(lib["num_threads"] == 1 for lib in info if lib["user_api"] == "blas")


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd", "rmsprop"])
def test_optimizer_updates_keep_their_bits_at_any_thread_count(kind):
    shapes = [("w", (300, 200)), ("b", (200,)), ("v", (5, 7000))]    # 60 k + 35 k: cut into pieces

    def train():
        ps = ParamSet(shapes, np.float32)
        rng = np.random.default_rng(1)
        ps.flat[...] = rng.standard_normal(ps.size)
        opt = Optimizer(ps, OptimConfig(kind=kind, lr=1e-2, momentum=0.9, weight_decay=0.01, clip_norm=1.0))
        for _ in range(3):
            ps.grad[...] = rng.standard_normal(ps.size)
            opt.step()
        return ps.flat.copy(), opt.grad_sq.copy(), opt.upd_sq.copy(), opt.p_sq.copy()

    results = at_threads(train)
    for r in results[1:]:
        assert all(np.array_equal(x, y) for x, y in zip(r, results[0]))


def test_sums_of_squares_in_blocks_match_the_naive_sum_and_keep_their_bits(rel_err):
    rng = np.random.default_rng(3)
    sizes = [0, 1, SUMSQ_BLOCK - 1, SUMSQ_BLOCK, 3 * SUMSQ_BLOCK + 17, 5, 0]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = rng.standard_normal(offsets[-1]).astype(np.float32)

    def sums():
        out = np.empty(len(sizes))
        segment_sumsq(x, offsets, out)
        return out

    outs = at_threads(sums)
    assert rel_err(outs[0], naive.segment_sumsq(x, offsets)) < 1e-12
    assert all(np.array_equal(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_training_keeps_every_bit_at_any_thread_count(dtype):
    """An MLP big enough for blocked products and optimizer pieces: 20 steps of Adam at 1, 2 and
    3 threads end with the same weights and losses, bit for bit."""
    layers = [{"type": "dense", "units": 128, "activation": "relu"}, {"type": "dense", "units": 10}]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 784)).astype(dtype)
    y = rng.integers(0, 10, 256)

    def train():
        tr = Trainer(layers, (784,), "cross_entropy", OptimConfig(kind="adam", lr=1e-3), 0, dtype)
        losses = [tr.step(x, y).loss for _ in range(20)]
        return np.array(losses), tr.net.params.flat.copy()

    results = at_threads(train)
    for losses, flat in results[1:]:
        assert np.array_equal(losses, results[0][0]) and np.array_equal(flat, results[0][1])
