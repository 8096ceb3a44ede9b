"""The attention layers give the same bits on one thread and on two (engine/attention_products.py:
the products' pieces depend on the shape only), and heads_matmul computes what np.matmul does."""

from __future__ import annotations

import numpy as np
import pytest

from descent.engine import attention_products, products, threads
from descent.engine.attention import split_heads
from descent.engine.backend import make_trainer
from descent.engine.optim import OptimConfig


def train_steps(layers, in_shape, x, y, mask, n_threads, steps=2):
    """Losses and the state after `steps` Adam steps in float32 on n_threads threads."""
    with threads.using(n_threads):
        t = make_trainer(layers, in_shape, "cross_entropy", OptimConfig(kind="adam", lr=1e-2), seed=5)
        losses = [t.step(x, y, mask).loss for _ in range(steps)]
        return losses, t.predict(x, mask), t.state_dict()


def same_bits(layers, in_shape, x, y, mask=None):
    runs = [train_steps(layers, in_shape, x, y, mask, n) for n in (1, 2)]
    (l1, p1, s1), (l2, p2, s2) = runs
    assert l1 == l2 and l1[1] != l1[0]
    assert np.array_equal(p1, p2)
    assert sorted(s1) == sorted(s2) and all(np.array_equal(s1[k], s2[k]) for k in s1)


@pytest.fixture(params=["shapes", "always"])
def split(request, monkeypatch):
    """'shapes': the real thresholds (the shapes below are big enough to split); 'always':
    every product in pieces, however small."""
    if request.param == "always":
        monkeypatch.setattr(products, "PIECE_MIN_MACS", 0)
        monkeypatch.setattr(attention_products, "HEADS_MIN_MACS", 0)


@pytest.mark.parametrize("output", ["last", "all"])
def test_attention_steps_give_the_same_bits_on_two_threads(split, output):
    rng = np.random.default_rng(3)
    nb, t, vocab = 40, 36, 30
    lens = rng.integers(1, t + 1, size=nb)
    mask = np.arange(t)[None, :] < lens[:, None]
    x = np.where(mask, rng.integers(1, vocab, size=(nb, t)), 0).astype(np.int64)
    y = rng.integers(0, vocab, size=nb)
    if output == "all":
        y = rng.integers(0, vocab, size=(nb, t))
    layers = [{"type": "embedding", "dim": 24, "vocab": vocab},
              {"type": "attention", "heads": 2, "dim": 48, "ff": 64, "output": output},
              {"type": "dense", "units": vocab}]
    same_bits(layers, (t,), x, y, mask)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_language_model_steps_give_the_same_bits_on_two_threads(split, norm):
    rng = np.random.default_rng(4)
    nb, t, vocab = 12, 40, 33
    ids = rng.integers(0, vocab, size=(nb, t))
    layers = [{"type": "transformer", "vocab": vocab, "layers": 2, "dim": 64, "heads": 4, "norm": norm}]
    same_bits(layers, (t,), ids, np.roll(ids, -1, axis=1))


@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_seq2seq_gradients_are_the_same_bits_on_two_threads(split, attention):
    from descent.engine.layer import Context
    from descent.engine.model import Net

    rng = np.random.default_rng(6)
    nb, s, vocab = 40, 12, 20
    lens = rng.integers(1, s + 1, size=nb)
    x = np.zeros((nb, 2 * s + 1), np.int64)
    mask = np.zeros_like(x, bool)
    for b, n in enumerate(lens):
        x[b, :n], x[b, s], x[b, s + 1:s + 1 + n] = rng.integers(4, vocab, n), 1, rng.integers(4, vocab, n)
        mask[b, :n] = mask[b, s:s + 1 + n] = True
    spec = [{"type": "seq2seq", "cell": "gru", "hidden": 32, "embed": 16, "vocab": vocab, "attention": attention}]
    runs = []
    for n in (1, 2):
        with threads.using(n):
            net = Net(spec, (2 * s + 1,), np.float32, seed=2)
            ctx = Context(mask=mask)
            out = net.forward(x, ctx).copy()
            net.layers[0].backward(np.sin(out), ctx)
            runs.append((out, {k: v.copy() for k, v in net.params.grads.items()}))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert all(np.array_equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nb, h, tq, t, d", [(5, 2, 9, 9, 8), (5, 1, 1, 9, 6), (3, 4, 7, 7, 12), (2, 3, 1, 1, 3)])
def test_heads_matmul_matches_numpy_on_views(dtype, nb, h, tq, t, d, monkeypatch):
    monkeypatch.setattr(attention_products, "HEADS_MIN_MACS", 0)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((nb, tq, d)).astype(dtype)
    kv = rng.standard_normal((nb, t, 2 * d)).astype(dtype)
    q4, k4, v4 = split_heads(q, h), split_heads(kv[:, :, :d], h), split_heads(kv[:, :, d:], h)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for n in (1, 2):
        with threads.using(n):
            att = np.empty((nb, h, tq, t), dtype)
            attention_products.heads_matmul(q4, k4.transpose(0, 1, 3, 2), att)       # (B, H, Tq, T)
            assert np.allclose(att, np.matmul(q4, k4.transpose(0, 1, 3, 2)), rtol=tol, atol=tol)
            dkv = np.full((nb, t, 2 * d), 7.0, dtype)
            dv = split_heads(dkv[:, :, d:], h)
            attention_products.heads_matmul(att.transpose(0, 1, 3, 2), q4, dv)       # (B, H, T, Dh), strided
            assert np.allclose(dv, np.matmul(att.transpose(0, 1, 3, 2), q4), rtol=tol, atol=tol)
            assert (dkv[:, :, :d] == 7.0).all()                                        # the other half untouched


@pytest.mark.parametrize("rows", [8, 31, 32, 100, 3000])
def test_grad_dot_is_the_product_over_the_rows(rows, monkeypatch):
    monkeypatch.setattr(products, "PIECE_MIN_MACS", 0)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((rows, 12)), rng.standard_normal((rows, 5))
    out = np.empty((12, 5))
    for n in (1, 2):
        with threads.using(n):
            attention_products.grad_dot(a, b, out)
            assert np.allclose(out, a.T @ b, rtol=1e-12, atol=1e-12)
