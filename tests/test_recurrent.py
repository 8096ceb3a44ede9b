"""Embedding, RNN, LSTM, GRU against PyTorch (float64, relative error < 1e-7), against slow NumPy
references (tests/naive_recurrent.py) and finite differences, plus spec errors and the
vanishing-gradient picture the dashboard shows."""

from __future__ import annotations

import numpy as np
import pytest

import naive_recurrent as naive
from descent.engine.errors import SpecError
from descent.engine.layer import Context
from descent.engine.model import Net, build_layers
from descent.engine.recurrent_kernels import tanh_fast

CELLS = ("rnn", "lstm", "gru")
B, T, E, H = 5, 6, 3, 4
LENGTHS = np.array([6, 1, 3, 6, 4])           # mixed, including length 1


def rel(a, b) -> float:
    """max |a - b| relative to max |b| (0 when both are 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.abs(b).max() if b.size else 0.0
    err = np.abs(a - b).max() if b.size else 0.0
    return err / scale if scale > 0 else err


def mask_of(lengths, t=T):
    return None if lengths is None else np.arange(t)[None, :] < np.asarray(lengths)[:, None]


def make(kind, dtype=np.float64, seed=0, in_shape=(T, E), **keys):
    """A one-layer Net and its layer, with dx wanted (as if something trainable sat upstream)."""
    net = Net([{"type": kind, "hidden": H, **keys}], in_shape, dtype, seed)
    layer = net.layers[0]
    layer.need_dx = True
    return net, layer


def params_of(net):
    """Parameters by torch module name ("weight_ih_l0", ...)."""
    return {k.split(".", 1)[1]: v for k, v in net.params.state_dict().items()}


def grads_of(net):
    return {k.split(".", 1)[1]: v.copy() for k, v in net.params.grads.items()}


def run_ours(net, x, lengths, dout, want=True):
    ctx = Context(mask=mask_of(lengths, x.shape[1]), want_time_grads=want)
    out = net.forward(x, ctx).copy()
    dx = net.layers[0].backward(dout, ctx)
    return out, grads_of(net), None if dx is None else dx.copy(), ctx.time_grad_norms


def rand_case(kind, seed, **keys):
    net, layer = make(kind, seed=seed, **keys)
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((B, T, E))
    dout = rng.standard_normal((B,) + layer.out_shape)
    return net, layer, x, dout


CONFIGS = [dict(layers=k, bidirectional=bd, output=o) for k in (1, 2) for bd in (False, True) for o in ("last", "all")]


def config_id(c):
    return f"l{c['layers']}-{'bi' if c['bidirectional'] else 'uni'}-{c['output']}"


# --- against torch.nn.RNN / LSTM / GRU with packed sequences --------------------------------------

@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "masked"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("kind", CELLS)
def test_matches_torch_packed(kind, cfg, lengths):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference")
    net, layer, x, dout = rand_case(kind, 1, **cfg)
    out, grads, dx, _ = run_ours(net, x, lengths, dout)

    module = layer.torch_module().double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params_of(net).items()})
    xt = torch.from_numpy(x).requires_grad_()
    mask = mask_of(lengths)
    yt = module(xt, None if mask is None else torch.from_numpy(mask))
    (yt * torch.from_numpy(dout)).sum().backward()

    assert rel(out, yt.detach().numpy()) < 1e-7
    assert rel(dx, xt.grad.numpy()) < 1e-7
    for name, p in module.named_parameters():
        assert rel(grads[name], p.grad.numpy()) < 1e-7, name


# --- per-step gradient norms (and truncation) against torch's own cells, unrolled -----------------

def torch_unrolled(kind, params, x, lengths, layers, bidirectional, output, truncate, dout):
    """torch.{rnn_tanh,lstm,gru}_cell unrolled by hand with the packed-sequence semantics, the state
    detached where truncation cuts, and retain_grad on every state. Returns out, grads, dx, norms."""
    import torch

    step = {"rnn": torch.rnn_tanh_cell, "lstm": torch.lstm_cell, "gru": torch.gru_cell}[kind]
    Bx, Tx, _ = x.shape
    dirs = 2 if bidirectional else 1
    P = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    X = torch.tensor(x, requires_grad=True)
    L = torch.tensor(lengths if lengths is not None else [Tx] * Bx)
    states = {}
    seq = X
    for k in range(layers):
        outs, finals = [], []
        for d in range(dirs):
            sfx = f"l{k}" + ("_reverse" if d else "")
            w = [P[f"{n}_{sfx}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h = torch.zeros(Bx, H, dtype=torch.float64)
            c = torch.zeros(Bx, H, dtype=torch.float64)
            ys = [None] * Tx
            for t in (reversed(range(Tx)) if d else range(Tx)):
                real = (t < L)[:, None]
                h_in, c_in = h, c
                if truncate:
                    if d:                                   # reverse: into step t when (t + 1) % k == 0
                        at_cut = torch.full_like(L, (t + 1) % truncate == 0, dtype=torch.bool)
                    else:                                   # forward: into step t when (length - t) % k == 0
                        at_cut = (L - t) % truncate == 0
                    cut = real & at_cut[:, None]
                    h_in, c_in = torch.where(cut, h.detach(), h), torch.where(cut, c.detach(), c)
                if kind == "lstm":
                    h_new, c_new = step(seq[:, t], (h_in, c_in), *w)
                    c = torch.where(real, c_new, c)
                else:
                    h_new = step(seq[:, t], h_in, *w)
                h = torch.where(real, h_new, h)
                h.retain_grad()
                states[k, d, t] = h
                ys[t] = torch.where(real, h, torch.zeros_like(h))
            outs.append(torch.stack(ys, dim=1))
            finals.append(h)
        seq = torch.cat(outs, dim=2)
    out = seq if output == "all" else torch.cat(finals, dim=1)
    (out * torch.from_numpy(dout)).sum().backward()
    real = (np.arange(Tx)[None, :] < L.numpy()[:, None]).T                    # (T, B)
    norms = {}
    for k in range(layers):
        sq = np.zeros((Tx, Bx))
        for d in range(dirs):
            for t in range(Tx):
                g = states[k, d, t].grad
                if g is not None:
                    sq[t] += (g.numpy() ** 2).sum(axis=1)
        cnt = real.sum(axis=1)
        norms[k] = np.where(cnt > 0, (np.sqrt(sq) * real).sum(axis=1) / np.maximum(cnt, 1), 0.0)
    grads = {k: (v.grad.numpy() if v.grad is not None else np.zeros_like(v.detach().numpy())) for k, v in P.items()}
    return out.detach().numpy(), grads, X.grad.numpy(), norms


UNROLLED = [
    dict(layers=1, bidirectional=False, output="last", truncate=0),
    dict(layers=2, bidirectional=True, output="all", truncate=0),
    dict(layers=2, bidirectional=True, output="last", truncate=2),
    dict(layers=1, bidirectional=True, output="all", truncate=3),
]


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "masked"])
@pytest.mark.parametrize("cfg", UNROLLED, ids=lambda c: "-".join(f"{k[:3]}{v}" for k, v in c.items()))
@pytest.mark.parametrize("kind", CELLS)
def test_time_grad_norms_and_truncation_match_torch_cells(kind, cfg, lengths):
    pytest.importorskip("torch", reason="PyTorch is the reference")
    net, layer, x, dout = rand_case(kind, 2, **cfg)
    net.layers[0].name = "3"
    out, grads, dx, norms = run_ours(net, x, lengths, dout)
    r_out, r_grads, r_dx, r_norms = torch_unrolled(kind, params_of(net), x, lengths, dout=dout, **cfg)
    assert rel(out, r_out) < 1e-7
    assert rel(dx, r_dx) < 1e-7
    for name in r_grads:
        assert rel(grads[name], r_grads[name]) < 1e-7, name
    keys = ["3"] if cfg["layers"] == 1 else [f"3.l{k}" for k in range(cfg["layers"])]
    assert sorted(norms) == keys
    for k, key in enumerate(keys):
        assert norms[key].shape == (T,)
        assert rel(norms[key], r_norms[k]) < 1e-7, key


# --- against the slow NumPy reference (no torch needed) --------------------------------------------

@pytest.mark.parametrize("cfg", [
    dict(layers=2, bidirectional=True, output="last", truncate=2),
    dict(layers=1, bidirectional=False, output="all", truncate=3),
    dict(layers=2, bidirectional=False, output="all", truncate=1),
    dict(layers=1, bidirectional=True, output="last", truncate=0),
], ids=lambda c: "-".join(f"{k[:3]}{v}" for k, v in c.items()))
@pytest.mark.parametrize("kind", CELLS)
def test_matches_naive_reference(kind, cfg):
    net, layer, x, dout = rand_case(kind, 3, **cfg)
    out, grads, dx, norms = run_ours(net, x, LENGTHS, dout)
    r_out, r_grads, r_dx, r_norms = naive.run(kind, params_of(net), x, LENGTHS, dout=dout, **cfg)
    assert rel(out, r_out) < 1e-7
    assert rel(dx, r_dx) < 1e-7
    for name in r_grads:
        assert rel(grads[name], r_grads[name]) < 1e-7, name
    for k in range(cfg["layers"]):
        key = "0" if cfg["layers"] == 1 else f"0.l{k}"
        assert rel(norms[key], r_norms[k]) < 1e-7


def test_truncation_cuts_what_it_says():
    """truncate=k with output="last": steps more than k real steps before the end get no gradient."""
    net, layer, x, dout = rand_case("lstm", 4, truncate=2)
    _, _, dx, norms = run_ours(net, x, LENGTHS, dout)
    for b, n in enumerate(LENGTHS):
        assert np.all(dx[b, :max(n - 2, 0)] == 0) and np.all(dx[b, n:] == 0)
        assert np.abs(dx[b, max(n - 2, 0):n]).min() > 0
    full = rand_case("lstm", 4, truncate=0)
    _, _, dx_full, _ = run_ours(full[0], x, LENGTHS, dout)
    assert np.array_equal(dx[:, -1], dx_full[:, -1])            # the last step is untouched


# --- finite differences (no torch needed) ---------------------------------------------------------

@pytest.mark.parametrize("kind", CELLS)
def test_finite_differences(kind):
    """Directional derivatives of L = sum(out * dout) along random directions in (params, x)."""
    net, layer, x, dout = rand_case(kind, 5, layers=2, bidirectional=True, output="all")
    mask = mask_of(LENGTHS)
    _, grads, dx, _ = run_ours(net, x, LENGTHS, dout)
    rng = np.random.default_rng(0)
    flat0 = net.params.flat.copy()
    g_flat = np.concatenate([grads[k.split(".", 1)[1]].ravel() for k in net.params.names])

    def loss(flat, xx):
        net.params.flat[...] = flat
        return float((net.forward(xx, Context(mask=mask)) * dout).sum())

    for _ in range(3):
        vp, vx = rng.standard_normal(flat0.shape), rng.standard_normal(x.shape)
        eps = 1e-6
        num = (loss(flat0 + eps * vp, x + eps * vx) - loss(flat0 - eps * vp, x - eps * vx)) / (2 * eps)
        ana = g_flat @ vp + (dx * vx).sum()
        assert abs(num - ana) <= 1e-6 * max(1.0, abs(ana)), (num, ana)
    net.params.flat[...] = flat0


# --- float32: the vectorised tanh, and the whole layer against float64 ----------------------------

def test_fast_tanh_is_within_1e6():
    xs = np.concatenate([np.linspace(-12, 12, 400_001), np.geomspace(1e-12, 1, 2001)]).astype(np.float32)
    xs = np.concatenate([xs, -xs])
    approx = np.array([tanh_fast(v) for v in xs[::50]], dtype=np.float64)      # scalar calls, a sample
    assert np.abs(approx - np.tanh(xs[::50].astype(np.float64))).max() < 1e-6
    net, layer = make("rnn", np.float32, in_shape=(xs.size, 1), output="all")     # the vectorised loop
    net.params.flat[...] = 0
    layer.p["weight_ih_l0"][...] = 1.0
    got = net.forward(xs.reshape(1, -1, 1), Context())[0, :, 0]
    assert np.abs(got - np.tanh(xs.astype(np.float64))).max() < 1e-6


@pytest.mark.parametrize("kind", CELLS)
def test_float32_close_to_float64(kind):
    cfg = dict(layers=2, bidirectional=True, output="last")
    net64, _, x, dout = rand_case(kind, 6, **cfg)
    net32, layer32 = make(kind, np.float32, **cfg)
    net32.params.flat[...] = net64.params.flat
    out64, g64, dx64, n64 = run_ours(net64, x, LENGTHS, dout)
    out32, g32, dx32, n32 = run_ours(net32, x.astype(np.float32), LENGTHS, dout.astype(np.float32))
    assert out32.dtype == np.float32 and dx32.dtype == np.float32
    assert rel(out32, out64) < 2e-6
    assert rel(dx32, dx64) < 2e-5
    for name in g64:
        assert rel(g32[name], g64[name]) < 2e-5, name
    for key in n64:
        assert rel(n32[key], n64[key]) < 2e-5


# --- embedding ------------------------------------------------------------------------------------

def test_embedding_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference")
    net = Net([{"type": "embedding", "dim": 3, "vocab": 7}], (5,), np.float64, seed=0)
    layer = net.layers[0]
    assert layer.out_shape == (5, 3)
    ids = np.array([[0, 1, 1, 6, 0], [2, 2, 2, 0, 0]])         # repeats and padding id 0
    ctx = Context()
    out = net.forward(ids, ctx)
    dy = np.random.default_rng(0).standard_normal(out.shape)
    assert layer.backward(dy, ctx) is None
    module = layer.torch_module().double()
    module.load_state_dict({"weight": torch.from_numpy(layer.p["weight"].copy())})
    yt = module(torch.from_numpy(ids))
    (yt * torch.from_numpy(dy)).sum().backward()
    assert rel(out, yt.detach().numpy()) == 0
    assert rel(layer.g["weight"], module.weight.grad.numpy()) < 1e-12
    w = Net([{"type": "embedding", "dim": 64, "vocab": 500}], (5,), np.float64, seed=0).params.flat
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02      # N(0, 1) like torch


def test_embedding_rejects_bad_ids():
    net = Net([{"type": "embedding", "dim": 3, "vocab": 7}], (4,), np.float64)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        net.forward(np.array([[0, 7, 1, 1]]), Context())
    with pytest.raises(ValueError, match="integer token ids"):
        net.layers[0].forward(np.zeros((1, 4)), Context())


# --- a whole model, trained on both backends -------------------------------------------------------

@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_embedding_lstm_dense_trains_like_torch(kind):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference")
    from descent.engine.backend import make_trainer
    from descent.engine.optim import OptimConfig
    from descent.engine.torch_backend import build_torch_model

    spec = [{"type": "embedding", "dim": 6, "vocab": 11}, {"type": kind, "hidden": 8, "output": "last"},
            {"type": "dense", "units": 3}]
    rng = np.random.default_rng(0)
    x = rng.integers(1, 11, size=(7, 9))
    lengths = np.array([9, 1, 4, 9, 6, 2, 8])
    mask = mask_of(lengths, 9)
    x[~mask] = 0
    y = rng.integers(0, 3, size=7)
    trainers = [make_trainer(spec, (9,), optim=OptimConfig(lr=0.05), seed=3, dtype="float64", backend=b)
                for b in ("numba", "torch")]
    losses = [[t.step(x, y, mask).loss for _ in range(3)] for t in trainers]
    assert np.allclose(losses[0], losses[1], rtol=0, atol=1e-9), losses
    assert losses[0][-1] < losses[0][0]
    ours = trainers[0].state_dict()
    for k, v in trainers[1].state_dict().items():
        assert rel(ours[k], v) < 1e-9, k
    model = build_torch_model(spec, (9,), "float64")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})
    with torch.no_grad():
        ref = model(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    assert rel(trainers[0].predict(x, mask), ref) < 1e-9


def test_trainer_reports_time_grad_norms_per_stacked_layer():
    from descent.engine.backend import Trainer

    spec = [{"type": "embedding", "dim": 4, "vocab": 9}, {"type": "gru", "hidden": 5, "layers": 2},
            {"type": "dense", "units": 2}]
    t = Trainer(spec, (6,), dtype="float64")
    rng = np.random.default_rng(0)
    stats = t.step(rng.integers(0, 9, size=(4, 6)), rng.integers(0, 2, size=4), mask_of([6, 2, 3, 1], 6))
    assert sorted(stats.time_grad_norms) == ["1.l0", "1.l1"]
    assert stats.time_grad_norms["1.l1"].shape == (6,)
    assert t.step(rng.integers(0, 9, size=(4, 6)), rng.integers(0, 2, size=4), time_grads=False).time_grad_norms is None


def test_eval_forward_equals_train_forward():
    net, layer, x, _ = rand_case("lstm", 7, layers=2, bidirectional=True, output="all")
    a = net.forward(x, Context(train=True, mask=mask_of(LENGTHS))).copy()
    b = net.forward(x, Context(train=False, mask=mask_of(LENGTHS)))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("batch", [22, 33])
def test_two_threads_give_the_same_bits(kind, batch, monkeypatch):
    """The batch runs as fixed chunks of rows, on Numba's threads with more than one (the engine's
    one thread setting); every bit of the result stays the same, uneven chunks included (33 rows)."""
    from descent.engine import threads

    monkeypatch.setattr(threads, "SPLIT_MIN_MACS", 0)        # split however small the layer

    net, layer = make(kind, np.float32, layers=2, bidirectional=True, output="all")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((batch, T, E)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=batch)
    dout = rng.standard_normal((batch,) + layer.out_shape).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        with threads.using(n):
            results.append(run_ours(net, x, lengths, dout))
    for out, grads, dx, norms in results[1:]:
        assert np.array_equal(out, results[0][0]) and np.array_equal(dx, results[0][2])
        assert all(np.array_equal(grads[k], results[0][1][k]) for k in grads)
        assert all(np.array_equal(norms[k], results[0][3][k]) for k in norms)


@pytest.mark.parametrize("batch", [1, 8, 15, 16, 17, 22, 25, 33, 64, 100])
def test_row_chunks_cover_the_batch_in_slices_of_eight_or_more(batch):
    from descent.engine.recurrent import ROW_PIECES, chunk_edges, row_chunks

    chunks = row_chunks(batch)
    assert [lo for lo, _ in chunks] == [0] + [hi for _, hi in chunks[:-1]] and chunks[-1][1] == batch
    assert len(chunks) <= ROW_PIECES and (len(chunks) == 1 or all(hi - lo >= 8 for lo, hi in chunks))
    assert chunk_edges(batch).tolist() == [0] + [hi for _, hi in chunks]


def test_mask_must_be_right_padded():
    net, layer, x, _ = rand_case("rnn", 8)
    bad = mask_of(LENGTHS).copy()
    bad[0, 2] = False
    with pytest.raises(ValueError, match="right-padded"):
        net.forward(x, Context(mask=bad))


# --- the picture the dashboard shows ---------------------------------------------------------------

def vanishing_ratio(kind, **keys):
    """||dL/dh_0|| / ||dL/dh_{T-1}|| for a loss at the last of 60 steps, float64, first step."""
    from descent.engine.backend import Trainer

    spec = [{"type": "embedding", "dim": 16, "vocab": 20}, {"type": kind, "hidden": 32, **keys},
            {"type": "dense", "units": 4}]
    t = Trainer(spec, (60,), seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    norms = t.step(rng.integers(0, 20, size=(16, 60)), rng.integers(0, 4, size=16)).time_grad_norms["1"]
    return norms[0] / norms[-1]


def test_plain_rnn_gradient_vanishes_lstm_keeps_more():
    rnn = vanishing_ratio("rnn")                                    # about 3e-17
    assert rnn < 1e-3
    # With torch's init (forget-gate bias 0) the forget gates sit near 0.5, so an LSTM fades too,
    # but orders of magnitude more slowly (about 4e-14); a forget bias of 1 (the default here)
    # keeps about 1e-6, and open forget gates (what training on a memory task does) keep the
    # gradient across the whole gap.
    assert vanishing_ratio("lstm", forget_bias=0.0) > 100 * rnn
    assert vanishing_ratio("lstm") > 1e6 * rnn
    assert vanishing_ratio("lstm", forget_bias=5.0) > 1e-2


# --- spec errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,in_shape,key,message", [
    ({"type": "lstm", "hidden": 8}, (1, 28, 28), "[0].hidden", "expects a sequence"),
    ({"type": "gru", "hidden": 8}, (20,), "[0].hidden", "embedding"),
    ({"type": "rnn"}, (5, 3), "[0].hidden", "required"),
    ({"type": "rnn", "hidden": 0}, (5, 3), "[0].hidden", "at least 1"),
    ({"type": "lstm", "hidden": 8, "output": "first"}, (5, 3), "[0].output", "last, all"),
    ({"type": "lstm", "hidden": 8, "truncate": -1}, (5, 3), "[0].truncate", "at least 0"),
    ({"type": "lstm", "hidden": 8, "layers": 0}, (5, 3), "[0].layers", "at least 1"),
    ({"type": "gru", "hidden": 8, "bidirectional": "yes"}, (5, 3), "[0].bidirectional", "true or false"),
    ({"type": "lstm", "hidden": 8, "units": 3}, (5, 3), "[0].units", "unknown key"),
    ({"type": "gru", "hidden": 8, "forget_bias": 1.0}, (5, 3), "[0].forget_bias", "unknown key"),
    ({"type": "embedding", "dim": 8}, (5,), "[0].vocab", "required"),
    ({"type": "embedding", "vocab": 8}, (5,), "[0].dim", "required"),
    ({"type": "embedding", "dim": 8, "vocab": 10}, (5, 3), "[0].dim", "token ids"),
])
def test_bad_specs(spec, in_shape, key, message):
    with pytest.raises(SpecError) as e:
        build_layers([spec], in_shape)
    assert e.value.key == key
    assert message in e.value.message


@pytest.mark.parametrize("kind", CELLS)
def test_evaluation_in_row_slices_gives_the_same_bits(kind, monkeypatch):
    """A large evaluation batch runs in slices of rows (bounded memory); the output is unchanged,
    the short tail folded into the last slice included."""
    import descent.engine.recurrent as rec

    net, layer = make(kind, np.float32, bidirectional=True, output="all")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((45, T, E)).astype(np.float32)
    mask_ctx = Context(mask=mask_of(rng.integers(1, T + 1, size=45), T), train=False)
    whole = net.forward(x, mask_ctx).copy()
    monkeypatch.setattr(rec, "EVAL_ROW_STEPS", 10 * T)             # slices of 10 rows, then 15
    sliced = net.forward(x, mask_ctx).copy()
    assert sliced.shape == whole.shape and np.array_equal(sliced, whole)


@pytest.mark.parametrize("kind", CELLS)
def test_threads_give_the_same_bits_at_bench_sizes(kind, monkeypatch):
    """Long enough for the input projection and the weight-gradient products to be cut into blocks
    (products.matmul) and the row chunks to run on Numba's threads: still every bit."""
    from descent.engine import threads

    monkeypatch.setattr(threads, "SPLIT_MIN_MACS", 0)

    net = Net([{"type": kind, "hidden": 24, "layers": 2, "bidirectional": True, "output": "all"}],
              (30, 7), np.float32, 3)
    net.layers[0].need_dx = True
    rng = np.random.default_rng(4)
    x = rng.standard_normal((33, 30, 7)).astype(np.float32)
    lengths = rng.integers(1, 31, size=33)
    dout = rng.standard_normal((33, 30, 48)).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        with threads.using(n):
            results.append(run_ours(net, x, lengths, dout))
    for out, grads, dx, norms in results[1:]:
        assert np.array_equal(out, results[0][0]) and np.array_equal(dx, results[0][2])
        assert all(np.array_equal(grads[k], results[0][1][k]) for k in grads)
        assert all(np.array_equal(norms[k], results[0][3][k]) for k in norms)


def test_without_numpy_openblas_the_kernels_use_numpy_dot(monkeypatch):
    """NumPy built against another BLAS: the step products go to np.dot (SciPy's BLAS), the row
    chunks stay fixed, so one thread and two still agree bit for bit, and close to the CBLAS path."""
    from descent.engine import products, threads

    monkeypatch.setattr(threads, "SPLIT_MIN_MACS", 0)
    net = Net([{"type": "lstm", "hidden": 12, "bidirectional": True, "output": "all"}], (9, 5), np.float32, 2)
    net.layers[0].need_dx = True
    rng = np.random.default_rng(8)
    x = rng.standard_normal((20, 9, 5)).astype(np.float32)
    lengths = rng.integers(1, 10, size=20)
    dout = rng.standard_normal((20, 9, 24)).astype(np.float32)
    cblas = run_ours(net, x, lengths, dout)
    monkeypatch.setattr(products, "_fns", {})
    results = []
    for n in (1, 2):
        with threads.using(n):
            results.append(run_ours(net, x, lengths, dout))
    (out1, g1, dx1, _), (out2, g2, dx2, _) = results
    assert np.array_equal(out1, out2) and np.array_equal(dx1, dx2) and all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert np.allclose(out1, cblas[0], atol=1e-5) and np.allclose(dx1, cblas[2], atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", CELLS)
def test_embedding_input_projects_the_vocabulary_with_the_same_bits(kind, dtype):
    """After an embedding, the first layer reads x W_ih^T from the vocabulary projected once (11
    words < T * B rows): every bit of the output and of the dense input gradient as when it
    multiplies the embedded sequence itself. Backward sums the gate gradients by token first, for
    W_ih and the embedding (another order of the same sums: close, not equal)."""
    spec = [{"type": "embedding", "dim": 6, "vocab": 11},
            {"type": kind, "hidden": 8, "layers": 2, "bidirectional": True, "output": "all"}]
    net = Net(spec, (9,), dtype, 3)
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 11, size=(13, 9))
    mask = mask_of(rng.integers(1, 10, size=13), 9)
    dout = rng.standard_normal((13, 9, 16)).astype(dtype)
    emb, layer = net.layers
    results = []
    for lookup in (True, False):
        ctx = Context(mask=mask)
        x = emb.forward(ids, ctx)
        if not lookup:
            x = x.copy()                 # not the embedding's output: the plain product
        assert (ctx.tokens[0] is x) == lookup
        out = layer.forward(x, ctx).copy()
        dx = layer.backward(dout, ctx)
        emb.backward(dx, ctx)
        results.append((out, np.asarray(dx).copy(), grads_of(net)))
    (out1, dx1, g1), (out2, dx2, g2) = results
    assert np.array_equal(out1, out2) and np.array_equal(dx1, dx2)
    summed = {"weight", "weight_ih_l0", "weight_ih_l0_reverse"}
    assert all(np.array_equal(g1[k], g2[k]) for k in g1 if k not in summed)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert all(np.allclose(g1[k], g2[k], rtol=tol, atol=tol) for k in summed)


@pytest.mark.parametrize("residual", [False, True])
def test_token_summed_backward_matches_the_dense_one_in_a_model(residual, monkeypatch):
    """Through a model: the embedding takes the token-summed gradient directly, and a residual
    block around the LSTM (which adds its own gradient to the embedding's output) gets the dense
    one; both as with the vocabulary shortcut off."""
    from descent.engine.recurrent import Embedding, Recurrent

    dense_calls = []
    dense_dx = Recurrent._dense_dx
    monkeypatch.setattr(Recurrent, "_dense_dx", lambda self: (dense_calls.append(1), dense_dx(self))[1])
    lstm = {"type": "lstm", "hidden": 6, "output": "all", "bidirectional": residual}
    body = [{"type": "residual", "layers": [lstm, {"type": "dense", "units": 6}]}] if residual else [lstm]
    spec = [{"type": "embedding", "dim": 6, "vocab": 7}] + body + [{"type": "flatten"}, {"type": "dense", "units": 3}]
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 7, size=(10, 8))
    mask = mask_of(rng.integers(1, 9, size=10), 8)
    dout = rng.standard_normal((10, 3))
    grads = []
    for shortcut in (True, False):
        if not shortcut:
            forward = Embedding.forward
            monkeypatch.setattr(Embedding, "forward", lambda self, x, ctx: (forward(self, x, ctx), setattr(
                ctx, "tokens", None))[0])
        net = Net(spec, (8,), np.float64, 1)
        ctx = Context(mask=mask)
        net.forward(ids, ctx)
        net.backward(dout, ctx)
        grads.append(grads_of(net))
        if shortcut:
            assert len(dense_calls) == residual          # the dense gradient only where something else reads it
            assert residual or net.layers[1].fold is not None
    assert grads[0].keys() == grads[1].keys()
    assert all(np.allclose(grads[0][k], grads[1][k], rtol=1e-12, atol=1e-13) for k in grads[0])
    assert np.abs(grads[0]["weight"]).sum() > 0


def test_small_layers_stay_on_one_thread(monkeypatch):
    """The one split rule: a layer pass runs its row chunks on Numba's threads only from
    threads.SPLIT_MIN_MACS multiply-adds (below, one after the other on the calling thread)."""
    from descent.engine import recurrent, threads

    calls = []
    monkeypatch.setattr(recurrent, "lstm_forward_rows", lambda *a: calls.append(a[-1]))
    net, layer = make("lstm", np.float32, in_shape=(30, 32), hidden=64)
    x = np.zeros((32, 30, 32), np.float32)
    with threads.using(2):
        assert layer._split(30, 32) == 2                # 32 x 30 x 256 x (64 + 32) = 23.6 M
        small = make("rnn", np.float32, in_shape=(10, 4), hidden=8)[1]
        assert small._split(10, 16) == 1                # 16 x 10 x 8 x (8 + 4) = 15 k
        monkeypatch.setattr(threads, "SPLIT_MIN_MACS", 10 ** 9)
        net.forward(x, Context())
    assert calls == []
    with threads.using(1):
        assert layer._split(30, 32) == 1


def test_vocabulary_projection_in_evaluation_slices(monkeypatch):
    """Evaluation slices of rows read their own rows' token ids: the plain product's values. Not
    its bits everywhere: OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE=Haswell, which some
    machines set) round a row of a product differently with the number of rows around it."""
    import descent.engine.recurrent as rec

    net = Net([{"type": "embedding", "dim": 6, "vocab": 11}, {"type": "gru", "hidden": 8, "output": "all"}],
              (9,), np.float32, 5)
    emb, layer = net.layers
    rng = np.random.default_rng(6)
    ids = rng.integers(0, 11, size=(40, 9))
    mask = mask_of(rng.integers(1, 10, size=40), 9)
    ctx = Context(mask=mask, train=False)
    plain = layer.forward(emb.forward(ids, ctx).copy(), ctx).copy()
    monkeypatch.setattr(rec, "EVAL_ROW_STEPS", 10 * 9)              # slices of 10, 10 and 20 rows
    sliced = net.forward(ids, Context(mask=mask, train=False))
    assert np.allclose(sliced, plain, rtol=1e-5, atol=1e-6), np.abs(sliced - plain).max()


def test_warm_up_runs_every_driver_the_two_thread_steps_run(tmp_path, monkeypatch):
    """With DESCENT_THREADS=2 a whole batch takes the pieces drivers (row chunks, product blocks)
    where the 2 rows of the old warm-up took the serial kernels, so they compiled during nile's
    first training steps, outside the compiling state (a 3.8 s stall). The session's warm-up steps
    a whole batch: every driver training calls, it called first."""
    import sys

    from numba.core.registry import CPUDispatcher

    from descent.engine import recurrent, threads  # noqa: F401 - loaded, so that its drivers are patched below
    from descent.engine.scenario import load, resolve_name
    from descent.engine.session import Session

    phase, calls = ["prepare"], set()

    def recording(name, fn):
        def call(*args):
            calls.add((phase[0], name))
            return fn(*args)
        return call

    for mod in [m for n, m in sys.modules.items() if n.startswith("descent.engine.")]:
        for name, fn in list(vars(mod).items()):
            if isinstance(fn, CPUDispatcher) and fn.targetoptions.get("parallel"):
                monkeypatch.setattr(mod, name, recording(name, fn))
    scenario = load(resolve_name("nile"), overrides=["data.train_size=256", "data.test_size=64",
                                                     "training.steps=4", "training.log_every=2"])
    monkeypatch.setenv("DESCENT_THREADS", "2")              # the session reads it (threads.configure)
    with threads.using(2):                                   # and this puts the count back afterwards
        if threads.pieces_threads(2) < 2:
            pytest.skip("no thread-safe Numba threading layer (OpenMP or TBB) here: one thread only")
        session = Session(scenario, out_dir=tmp_path / "run")
        list(session.prepare())
        phase[0] = "train"
        list(session.run())
        session.close()
    trained = {name for p, name in calls if p == "train"}
    warmed = {name for p, name in calls if p == "prepare"}
    assert "lstm_forward_rows" in trained and "lstm_backward_rows" in trained
    assert trained <= warmed, trained - warmed
