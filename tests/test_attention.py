"""SelfAttention and LayerNorm: against torch autograd (float64), a slow NumPy reference,
finite differences, whole-model training against the torch backend, and spec errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import naive_attention as naive
from descent.engine.errors import SpecError
from descent.engine.layer import Context
from descent.engine.model import Net, build_layers

B, T, E = 5, 9, 6
LENS = (9, 4, 1, 7, 2)          # mixed lengths: full, short, a single token
CASES = [
    dict(heads=1, positional="learned", output="last", ff=0),
    dict(heads=2, positional="learned", output="all", ff=12),
    dict(heads=1, dim=8, positional="sinusoidal", output="last", ff=10),
    dict(heads=2, dim=8, positional="none", output="all", ff=0),
    dict(heads=2, dim=4, positional="sinusoidal", output="all", ff=6),
    dict(heads=2, positional="none", output="last", ff=5),
    dict(heads=3, dim=12, positional="learned", output="last", max_len=20, ff=0),
    dict(heads=1, dim=8, positional="learned", output="last"),     # the default feed-forward width, 2 * dim
]
IDS = [f"h{c['heads']}-{c.get('dim', E)}-{c['positional']}-{c['output']}-ff{c.get('ff', 0)}" for c in CASES]


def need_torch():
    return pytest.importorskip("torch", reason="torch is the reference for these checks")


def mask_of(lens, t=T):
    return np.arange(t)[None, :] < np.asarray(lens)[:, None]


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


def layer_of(spec, seed=3, in_shape=(T, E)):
    """One attention layer in float64 over its own ParamSet, with dx wanted."""
    net = Net([{"type": "attention", **spec}], in_shape, np.float64, seed)
    layer = net.layers[0]
    layer.need_dx = True
    return net, layer


def inputs(spec, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, E))
    d = spec.get("dim", E)
    dy = rng.normal(size=(B, d) if spec.get("output", "last") == "last" else (B, T, d))
    return x, dy


def ours(layer, x, dy, mask):
    ctx = Context(mask=mask)
    y = np.array(layer.forward(x, ctx))
    dx = np.array(layer.backward(dy, ctx))
    grads = {k: np.array(v) for k, v in layer.g.items()}
    return y, grads, dx, ctx.time_grad_norms[layer.name]


def torch_run(layer, net, x, dy, mask):
    """The torch module of `layer` with our weights: output, parameter grads, dx, dL/dxe."""
    torch = need_torch()
    m = layer.torch_module().double()
    m.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v) for k, v in net.params.state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_()
    xe = m.encode(xt)
    xe.retain_grad()
    y = m.block(xe, None if mask is None else torch.from_numpy(mask))
    (y * torch.from_numpy(dy)).sum().backward()
    grads = {k: v.grad.numpy() for k, v in m.named_parameters()}
    return y.detach().numpy(), grads, xt.grad.numpy(), xe.grad.numpy()


# ---------------------------------------------------------------------------------------------
# against torch

@pytest.mark.parametrize("spec", CASES, ids=IDS)
def test_matches_torch(spec):
    need_torch()
    net, layer = layer_of(spec)
    x, dy = inputs(spec)
    mask = mask_of(LENS)
    y, grads, dx, norms = ours(layer, x, dy, mask)
    ty, tgrads, tdx, txe_grad = torch_run(layer, net, x, dy, mask)
    assert np.isfinite(ty).all() and np.isfinite(y).all()
    assert rel_err(y, ty) < 1e-7
    assert set(grads) == set(tgrads)
    for name in grads:
        assert rel_err(grads[name], tgrads[name]) < 1e-7, name
    assert rel_err(dx, tdx) < 1e-7
    assert rel_err(norms, naive.position_norms(txe_grad, LENS)) < 1e-7


@pytest.mark.parametrize("spec", [CASES[0], CASES[3]], ids=[IDS[0], IDS[3]])
def test_matches_torch_without_mask(spec):
    need_torch()
    net, layer = layer_of(spec)
    x, dy = inputs(spec, seed=1)
    y, grads, dx, norms = ours(layer, x, dy, None)
    ty, tgrads, tdx, txe_grad = torch_run(layer, net, x, dy, None)
    assert rel_err(y, ty) < 1e-7 and rel_err(dx, tdx) < 1e-7
    assert all(rel_err(grads[k], tgrads[k]) < 1e-7 for k in grads)
    assert rel_err(norms, naive.position_norms(txe_grad, [T] * B)) < 1e-7


def test_torch_names_and_buffers():
    need_torch()
    for spec in CASES:
        _, layer = layer_of(spec)
        m = layer.torch_module()
        assert list(m.state_dict()) == list(layer.param_shapes())
        assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == layer.param_shapes()
        assert m.takes_mask
    _, layer = layer_of({"positional": "sinusoidal"})
    m = layer.torch_module()
    assert "pos" not in m.state_dict() and "pos" in dict(m.named_buffers())


def test_layernorm_matches_torch():
    torch = need_torch()
    rng = np.random.default_rng(5)
    for shape in [(7, 10), (3, 4, 10)]:
        net = Net([{"type": "layernorm"}], shape[1:], np.float64, seed=0)
        layer = net.layers[0]
        layer.need_dx = True
        net.params.values["0.weight"][...] = rng.normal(size=10)
        net.params.values["0.bias"][...] = rng.normal(size=10)
        x, dy = rng.normal(size=shape) * 3 + 1, rng.normal(size=shape)
        ctx = Context()
        y = np.array(layer.forward(x, ctx))
        dx = np.array(layer.backward(dy, ctx))
        m = layer.torch_module().double()
        m.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(v) for k, v in net.params.state_dict().items()})
        xt = torch.from_numpy(x).requires_grad_()
        yt = m(xt)
        (yt * torch.from_numpy(dy)).sum().backward()
        assert rel_err(y, yt.detach().numpy()) < 1e-7
        assert rel_err(dx, xt.grad.numpy()) < 1e-7
        assert rel_err(layer.g["weight"], m.weight.grad.numpy()) < 1e-7
        assert rel_err(layer.g["bias"], m.bias.grad.numpy()) < 1e-7


# ---------------------------------------------------------------------------------------------
# against the slow NumPy reference and finite differences (no torch)

@pytest.mark.parametrize("spec", CASES, ids=IDS)
def test_matches_naive(spec):
    _, layer = layer_of(spec)
    x, dy = inputs(spec, seed=2)
    y, grads, dx, norms = ours(layer, x, dy, mask_of(LENS))
    args = (spec.get("heads", 1), spec["positional"])
    ny, caches = naive.forward(x, layer.p, LENS, *args, layer.table, spec.get("ff", 2 * spec.get("dim", E)), spec["output"])
    ng, ndx, ndxe = naive.backward(dy, caches, layer.p, *args, spec.get("ff", 2 * spec.get("dim", E)), spec["output"])
    assert rel_err(y, ny) < 1e-10
    for name in grads:
        assert rel_err(grads[name], ng[name]) < 1e-10, name
    assert rel_err(dx, ndx) < 1e-10
    assert rel_err(norms, naive.position_norms(ndxe, LENS)) < 1e-10


@pytest.mark.parametrize("spec", [CASES[1], CASES[2], CASES[6]], ids=[IDS[1], IDS[2], IDS[6]])
def test_finite_differences(spec):
    """Analytic gradients against central differences of loss = sum(y * dy), on a sample of entries."""
    net, layer = layer_of(spec)
    x, dy = inputs(spec, seed=4)
    mask = mask_of(LENS)

    def loss():
        return float(np.sum(layer.forward(x, Context(mask=mask, want_time_grads=False)) * dy))

    _, grads, dx, _ = ours(layer, x, dy, mask)
    rng = np.random.default_rng(0)
    h = 1e-6
    checks = [(layer.p[name], grads[name]) for name in grads] + [(x, dx)]
    for value, grad in checks:
        flat, gflat = value.reshape(-1), grad.reshape(-1)
        for i in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + h
            up = loss()
            flat[i] = old - h
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * h)
            assert abs(numeric - gflat[i]) <= 1e-6 * max(1.0, abs(numeric)), (i, numeric, gflat[i])


def test_padding_is_finite_and_ignored():
    """Changing what sits in padded steps changes nothing real; no NaN anywhere, "all" included."""
    for spec in (CASES[0], CASES[1]):
        _, layer = layer_of(spec)
        x, dy = inputs(spec)
        mask = mask_of(LENS)
        y1 = np.array(layer.forward(x, Context(mask=mask)))
        x2 = np.where(mask[:, :, None], x, 1e3)
        y2 = np.array(layer.forward(x2, Context(mask=mask)))
        assert np.isfinite(y2).all()
        real = slice(None) if spec["output"] == "last" else mask
        assert rel_err(y2[real], y1[real]) < 1e-12


def test_empty_mask_row_counts_as_one_token():
    torch = need_torch()
    net, layer = layer_of(CASES[0])
    x, dy = inputs(CASES[0])
    lens = (0, 3, 9, 1, 2)
    mask = mask_of(lens)
    y, *_ = ours(layer, x, dy, mask)
    ty, *_ = torch_run(layer, net, x, dy, mask)
    assert np.isfinite(y).all() and rel_err(y, ty) < 1e-7
    assert rel_err(y[0], ours(layer, x, dy, mask_of((1, 3, 9, 1, 2)))[0][0]) == 0.0


def test_no_allocation_in_steady_state():
    net, layer = layer_of(dict(heads=2, dim=16, ff=8, output="last"))
    x, _ = inputs({})
    dy = np.random.default_rng(0).normal(size=(B, 16))
    mask = mask_of(LENS)
    for _ in range(2):
        ctx = Context(mask=mask, want_time_grads=False)
        layer.forward(x, ctx)
        layer.backward(dy, ctx)
    tracemalloc.start()
    ctx = Context(mask=mask, want_time_grads=False)
    layer.forward(x, ctx)
    layer.backward(dy, ctx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4096, peak      # views and small Python objects only; one (B, T, D) float64 is 5.8 kB


# ---------------------------------------------------------------------------------------------
# whole models, both backends

def train_both(layers, x, y, mask, in_shape):
    pytest.importorskip("torch", reason="the torch backend is the reference")
    from descent.engine.backend import make_trainer
    from descent.engine.optim import OptimConfig

    out = {}
    for backend in ("numba", "torch"):
        t = make_trainer(layers, in_shape, "cross_entropy", OptimConfig(kind="adam", lr=1e-2), seed=7,
                         dtype="float64", backend=backend)
        losses = [t.step(x, y, mask).loss for _ in range(3)]
        out[backend] = losses, t.predict(x, mask), t.state_dict()
    return out


def check_same(out):
    (l1, p1, s1), (l2, p2, s2) = out["numba"], out["torch"]
    assert np.max(np.abs(np.array(l1) - np.array(l2))) < 1e-9, (l1, l2)
    assert l1[2] < l1[0]
    assert rel_err(p1, p2) < 1e-7
    assert all(rel_err(s1[k], s2[k]) < 1e-7 for k in s1)


def test_attention_model_trains_like_torch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, E))
    y = rng.integers(0, 4, size=B)
    layers = [{"type": "attention", "heads": 2, "dim": 8, "ff": 16},
              {"type": "dense", "units": 4}]
    check_same(train_both(layers, x, y, mask_of(LENS), (T, E)))


def test_embedding_model_trains_like_torch():
    rng = np.random.default_rng(2)
    mask = mask_of(LENS)
    x = np.where(mask, rng.integers(1, 20, size=(B, T)), 0).astype(np.int64)
    y = rng.integers(0, 20, size=B)
    layers = [{"type": "embedding", "dim": 8, "vocab": 20},
              {"type": "attention", "heads": 2, "positional": "sinusoidal"},
              {"type": "dense", "units": 20}]
    check_same(train_both(layers, x, y, mask, (T,)))


# ---------------------------------------------------------------------------------------------
# specs

@pytest.mark.parametrize("extra, key", [
    ({"heads": 3, "dim": 8}, "[0].heads"),
    ({"heads": 0}, "[0].heads"),
    ({"heads": True}, "[0].heads"),
    ({"dim": 0}, "[0].dim"),
    ({"positional": "rotary"}, "[0].positional"),
    ({"max_len": T - 1}, "[0].max_len"),
    ({"output": "first"}, "[0].output"),
    ({"ff": -1}, "[0].ff"),
    ({"width": 8}, "[0].width"),
    ({"hidden": 8, "dim": 16}, "[0].hidden"),
])
def test_bad_spec_names_the_key(extra, key):
    with pytest.raises(SpecError) as e:
        build_layers([{"type": "attention", **extra}], (T, E))
    assert e.value.key == key


def test_attention_on_token_ids_is_a_spec_error():
    with pytest.raises(SpecError) as e:
        build_layers([{"type": "attention"}], (T,))
    assert e.value.key == "[0]" and "embedding" in str(e.value)


def test_output_shapes():
    assert build_layers([{"type": "attention", "dim": 16}], (T, E))[0].out_shape == (16,)
    # the nile scenario's cell knob turns { type = "lstm", hidden = 64, output = "last" } into attention
    layer = build_layers([{"type": "attention", "hidden": 64, "output": "last"}], (T, 32))[0]
    assert (layer.dim, layer.has_proj, layer.out_shape) == (64, True, (64,))
    assert build_layers([{"type": "attention", "output": "all"}], (T, E))[0].out_shape == (T, E)
    with pytest.raises(SpecError) as e:
        build_layers([{"type": "layernorm", "eps": 1e-3}], (T, E))
    assert e.value.key == "[0].eps"
