"""The seq2seq layer against its PyTorch twin (float64: logits, every gradient, greedy decoding),
its names, decoding, the reverse task's layout, and the scenario through a session."""

from __future__ import annotations

import numpy as np
import pytest

from descent.engine.data.reverse import BOS, EOS, IGNORE, VOCAB, load_reverse, make_reverse
from descent.engine.errors import SpecError
from descent.engine.layer import Context
from descent.engine.model import Net

S, V, B = 5, 9, 4
LENGTHS = np.array([5, 1, 3, 4])


def batch(seed=0, lengths=LENGTHS):
    """x = [source | BOS + target], the mask; ids from 4 up (below are the specials)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), 2 * S + 1), np.int64)
    mask = np.zeros_like(x, bool)
    for b, n in enumerate(lengths):
        x[b, :n] = rng.integers(4, V, n)
        mask[b, :n] = True
        x[b, S] = BOS
        x[b, S + 1:S + 1 + n] = rng.integers(4, V, n)
        mask[b, S:S + 1 + n] = True
    return x, mask


def make(cell="gru", attention="dot", seed=1, **keys):
    spec = [{"type": "seq2seq", "cell": cell, "hidden": 6, "embed": 3, "vocab": V, "attention": attention,
             "attention_dim": 4, "combine": 5, **keys}]
    return Net(spec, (2 * S + 1,), np.float64, seed)


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("attention", ["none", "dot", "additive"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_matches_torch(cell, attention):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference")
    net = make(cell, attention)
    x, mask = batch()
    ctx = Context(mask=mask)
    out = net.forward(x, ctx).copy()
    dy = np.random.default_rng(7).standard_normal(out.shape)
    net.layers[0].backward(dy, ctx)

    from descent.engine.torch_backend import build_torch_model

    spec = [{"type": "seq2seq", "cell": cell, "hidden": 6, "embed": 3, "vocab": V, "attention": attention,
             "attention_dim": 4, "combine": 5}]
    model = build_torch_model(spec, (2 * S + 1,), "float64", seed=1)
    assert [n for n, _ in model.named_parameters()] == list(net.params.state_dict())
    model.train()
    t_out = model(torch.from_numpy(x), torch.from_numpy(mask))
    (t_out * torch.from_numpy(dy)).sum().backward()
    assert rel(out, t_out.detach().numpy()) < 1e-12
    for name, p in model.named_parameters():
        assert rel(net.params.grads[name], p.grad.numpy()) < 1e-7, name
    model.eval()
    with torch.no_grad():
        greedy = model(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    assert rel(net.forward(x, Context(train=False, mask=mask)), greedy) < 1e-12


def test_names_are_torch_module_names():
    net = make("lstm", "additive")
    names = list(net.params.state_dict())
    assert names[:3] == ["0.embedding.weight", "0.encoder.weight_ih_l0", "0.encoder.weight_hh_l0"]
    assert "0.decoder.bias_hh_l0" in names and "0.attention.v.weight" in names
    assert names[-4:] == ["0.combine.weight", "0.combine.bias", "0.out.weight", "0.out.bias"]
    assert "0.attention.v.weight" not in make("gru", "dot").params.state_dict()


def test_finite_differences_reach_the_embedding():
    """The embedding's gradient gathers both the source path and the decoder-input path."""
    net = make("gru", "additive")
    x, mask = batch(3)
    dy = np.random.default_rng(4).standard_normal((B, S + 1, V))
    ctx = Context(mask=mask)
    net.forward(x, ctx)
    net.layers[0].backward(dy, ctx)
    w = net.params.values["0.embedding.weight"]
    g = net.params.grads["0.embedding.weight"].copy()
    for i, j in [(4, 0), (x[0, 0], 1), (x[0, S + 1], 2)]:
        old = w[i, j]
        w[i, j] = old + 1e-6
        up = float((net.forward(x, Context(mask=mask)) * dy).sum())
        w[i, j] = old - 1e-6
        down = float((net.forward(x, Context(mask=mask)) * dy).sum())
        w[i, j] = old
        assert abs((up - down) / 2e-6 - g[i, j]) < 1e-6 * max(1.0, abs(g[i, j]))


def test_decoding_greedy_and_seeded_sampling():
    layer = make("gru", "dot").layers[0]
    x, mask = batch(5)
    tokens, logits, weights = layer.decode(x, mask)
    assert np.array_equal(tokens, logits.argmax(axis=-1))
    assert weights.shape == (B, S + 1, S)
    assert np.allclose(weights.sum(axis=-1), 1.0)
    assert np.all(weights[1, :, 1:] == 0)                      # a 1-word source: all weight on it
    a, _, _ = layer.decode(x, mask, temperature=1.5, seed=3)
    b, _, _ = layer.decode(x, mask, temperature=1.5, seed=3)
    c, _, _ = layer.decode(x, mask, temperature=1.5, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    cold, _, _ = layer.decode(x, mask, temperature=1e-4, seed=0)
    assert np.array_equal(cold, tokens)
    # decoding ignores the given target after BOS
    x2 = x.copy()
    x2[:, S + 1:] = 4
    assert np.array_equal(layer.decode(x2, mask)[0], tokens)


def test_spec_errors():
    with pytest.raises(SpecError, match="attention"):
        make(attention="luong")
    with pytest.raises(SpecError, match="cell"):
        make(cell="transformer")
    with pytest.raises(SpecError, match="token ids"):
        Net([{"type": "seq2seq", "vocab": 5}], (4, 3), np.float64)


def test_reverse_layout():
    x, mask, y, lengths = make_reverse(6, 1, 200, np.random.default_rng(0))
    assert x.shape == (200, 13) and y.shape == (200, 7)
    for i in range(200):
        n = lengths[i]
        src = x[i, :n]
        assert len(set(src.tolist())) == n and src.min() >= 4
        assert np.all(x[i, n:6] == 0) and mask[i, :6].sum() == n
        assert np.array_equal(y[i, :n], src[::-1]) and y[i, n] == EOS and np.all(y[i, n + 1:] == IGNORE)
        assert x[i, 6] == BOS and np.array_equal(x[i, 7:7 + n], src[::-1]) and mask[i, 6:].sum() == n + 1
    ds = load_reverse(max_len=6, train_size=50, test_size=20)
    assert ds.vocab == VOCAB and ds.n_classes == len(VOCAB) and ds.in_shape == (13,)
    assert len(ds.extra_test["length"]) == 20
    with pytest.raises(SpecError, match="min_len"):
        load_reverse(max_len=3, min_len=4)


def test_scenario_runs_and_reports(tmp_path):
    from descent.engine.scenario import load
    from descent.engine.scenario.discovery import bundled_dir
    from descent.engine.session import Session

    sc = load(bundled_dir() / "seq2seq.toml", ["data.max_len=6", "data.train_size=200", "data.test_size=60",
                                               "model.layers[0].hidden=8", "model.layers[0].embed=4"])
    session = Session(sc, out_dir=tmp_path / "run")
    for _ in session.prepare():
        pass
    records = list(session.run(steps=3))
    ev = [r for r in records if type(r).__name__ == "Evaluation"][-1]
    assert 0 <= ev.metrics["sequence_accuracy"] <= ev.metrics["token_accuracy"] <= 1
    by = ev.details["by_length"]
    assert by["length"] == sorted(set(by["length"])) and set(by["length"]) <= set(range(1, 7))
    sample = ev.details["samples"][-1]
    assert sample["target"] == sample["source"][::-1] and len(sample["right"]) == sample["length"] + 1
    att = ev.details["attention"]
    assert len(att["weights"]) == min(len(att["output"]) + 1, 7) and len(att["weights"][0]) == len(att["source"])
    assert (tmp_path / "run" / "checkpoint.npz").exists()


def test_attention_beats_the_bottleneck_at_long_lengths():
    """The lesson's direction on a CI budget: after the same short seeded run, attention is far
    ahead of the encoder-decoder without it on the longest sentences (bench/seq2seq.py measures
    the full scenario)."""
    from descent.engine.scenario import load
    from descent.engine.scenario.discovery import bundled_dir
    from descent.engine.session import Session

    longest = {}
    for attention in ("dot", "none"):
        sc = load(bundled_dir() / "seq2seq.toml",
                  [f"model.layers[0].attention={attention}", "data.max_len=10", "data.train_size=4000",
                   "data.test_size=400", "model.layers[0].hidden=32", "model.layers[0].embed=16",
                   "training.lr=0.01", "evaluation.every=100000"])
        session = Session(sc)
        for _ in session.prepare():
            pass
        ev = [r for r in session.run(steps=400) if type(r).__name__ == "Evaluation"][-1]
        by = ev.details["by_length"]
        assert by["length"][-3:] == [8, 9, 10]
        longest[attention] = float(np.mean(by["accuracy"][-3:]))
    assert longest["dot"] >= longest["none"] + 0.3, longest
