"""The answer-aligned gradient ratio and the inside-the-cell curves (gate means, attention weights)
against values recomputed with torch from the same weights, in float64."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from descent.engine.arrays import aligned_mean, aligned_ratio
from descent.engine.inside import inside_the_cell, sample_index
from descent.engine.layer import Context
from descent.engine.model import Net

B, T, E, H = 5, 7, 3, 4
LENGTHS = np.array([7, 1, 3, 7, 5])


def mask_of(lengths, t=T):
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


def params_of(net):
    return {k.split(".", 1)[1]: v for k, v in net.params.state_dict().items()}


def naive_aligned(v, lengths, ratio):
    """The definition, one sample and one distance at a time."""
    out = np.zeros(v.shape[0])
    for d in range(v.shape[0]):
        vals = [v[n - 1 - d, b] / (v[n - 1, b] if ratio else 1.0) for b, n in enumerate(lengths) if n > d]
        out[d] = np.mean(vals) if vals else 0.0
    return out


def test_aligned_kernels_match_their_definition():
    rng = np.random.default_rng(0)
    sq = rng.random((T, B)) + 0.1
    out = np.empty(T)
    aligned_ratio(sq, LENGTHS, out)
    assert np.allclose(out, naive_aligned(np.sqrt(sq), LENGTHS, True))
    assert out[0] == 1.0                                     # the answer itself
    aligned_mean(sq, LENGTHS, out)
    assert np.allclose(out, naive_aligned(sq, LENGTHS, False))
    assert out[T - 1] == pytest.approx(np.mean([sq[0, 0], sq[0, 3]]))   # only the two full rows reach back


def torch_states(kind, params, x, lengths):
    """One-layer cell unrolled with packed-sequence semantics; every state keeps its gradient."""
    import torch

    step = {"rnn": torch.rnn_tanh_cell, "lstm": torch.lstm_cell, "gru": torch.gru_cell}[kind]
    w = [torch.tensor(params[f"{n}_l0"], requires_grad=True) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    X, L = torch.tensor(x), torch.tensor(lengths)
    h = torch.zeros(len(x), H, dtype=torch.float64)
    c = torch.zeros_like(h)
    states, gates = [], []
    for t in range(x.shape[1]):
        real = (t < L)[:, None]
        a = X[:, t] @ w[0].T + w[2] + h @ w[1].T + w[3]      # (B, G*H) pre-activations, r/z/i/f/o exact
        gates.append(torch.sigmoid(a).detach().numpy())
        if kind == "lstm":
            h_new, c_new = step(X[:, t], (h, c), *w)
            c = torch.where(real, c_new, c)
        else:
            h_new = step(X[:, t], h, *w)
        h = torch.where(real, h_new, h)
        h.retain_grad()
        states.append(h)
    return h, states, np.stack(gates)                        # final (B, H), [T x (B, H)], (T, B, G*H)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_time_grad_ratio_matches_torch(kind):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference")
    net = Net([{"type": kind, "hidden": H}], (T, E), np.float64, 3)
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((B, T, E)), rng.standard_normal((B, H))
    ctx = Context(mask=mask_of(LENGTHS))
    net.forward(x, ctx)
    net.layers[0].backward(dout, ctx)
    final, states, _ = torch_states(kind, params_of(net), x, LENGTHS)
    (final * torch.from_numpy(dout)).sum().backward()
    norms = np.stack([s.grad.norm(dim=1).numpy() for s in states])        # (T, B)
    assert np.allclose(ctx.time_grad_ratio["0"], naive_aligned(norms, LENGTHS, True), rtol=1e-9)
    assert ctx.time_grad_norms["0"].shape == (T,)                          # the absolute record stays


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gate_means_match_torch(kind):
    pytest.importorskip("torch", reason="PyTorch is the reference")
    net = Net([{"type": kind, "hidden": H}], (T, E), np.float64, 4)
    x = np.random.default_rng(2).standard_normal((B, T, E))
    found = inside_the_cell(net, x, mask_of(LENGTHS))
    _, _, gates = torch_states(kind, params_of(net), x, LENGTHS)           # (T, B, G*H) sigmoids
    blocks = {"lstm": {"input": 0, "forget": 1, "output": 3}, "gru": {"update": 1}}[kind]
    assert sorted(found["0"]) == sorted(blocks)
    for name, k in blocks.items():
        per_step = gates[:, :, k * H:(k + 1) * H].mean(axis=2)             # (T, B)
        assert np.allclose(found["0"][name], naive_aligned(per_step, LENGTHS, False), rtol=1e-9), name


def test_attention_weights_match_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference")
    spec = [{"type": "attention", "dim": 8, "heads": 2, "max_len": T}]
    net = Net(spec, (T, E), np.float64, 5)
    x = np.random.default_rng(3).standard_normal((B, T, E))
    mask = mask_of(LENGTHS)
    found = inside_the_cell(net, x, mask)
    pick = sample_index(mask, B)
    assert pick == 0 and found["0"]["sample"] == 0
    module = net.layers[0].torch_module().double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params_of(net).items()})
    n = int(LENGTHS[pick])
    xt = module.encode(torch.from_numpy(x[pick:pick + 1, :n]))
    causal = torch.ones(n, n, dtype=torch.bool).triu(1)
    _, weights = module.attn(xt, xt, xt, attn_mask=causal, need_weights=True)   # (1, n, n), mean over heads
    assert np.allclose(found["0"]["attention"], weights[0, n - 1].detach().numpy(), rtol=1e-9)
    assert sum(found["0"]["attention"]) == pytest.approx(1.0)


def test_rnn_has_no_inside_curves():
    net = Net([{"type": "rnn", "hidden": H}], (T, E), np.float64, 0)
    assert inside_the_cell(net, np.zeros((B, T, E)), mask_of(LENGTHS)) == {}


def test_session_records_ratio_and_gates(tmp_path):
    from descent.engine.records import Evaluation, Step
    from descent.engine.scenario import load, resolve_name
    from descent.engine.session import Session

    sc = load(resolve_name("nile"), overrides=["data.gap=12", "data.min_gap=4", "data.train_size=200",
                                                "data.test_size=40", "training.steps=20", "model.layers[1].hidden=8"])
    s = Session(sc, out_dir=tmp_path / "run")
    list(s.prepare())
    records = list(s.run(threading.Event()))
    steps = [r for r in records if isinstance(r, Step)]
    assert steps and all(r.time_grad_ratio and len(r.time_grad_ratio["1"]) == 6 + 12 + 1 for r in steps)
    assert steps[-1].time_grad_ratio["1"][0] == 1.0
    ev = [r for r in records if isinstance(r, Evaluation)][-1]
    inside = ev.details["inside"]
    assert sorted(inside["layers"]["1"]) == ["forget", "input", "output"]
    assert inside["words"][-1] == "?" and len(inside["words"]) == 6 + inside["gap"] + 1
    assert all(0.0 < v < 1.0 for v in inside["layers"]["1"]["forget"])
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(rec["kind"] == "evaluation" and "inside" in rec["details"] for rec in lines)
    assert any(rec["kind"] == "step" and rec["time_grad_ratio"] for rec in lines)
