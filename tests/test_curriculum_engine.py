"""Issue 12's engine pieces before wire-in: the toy2d and series sources, orthogonal init, and
the neuron and activations lesson arithmetic."""

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from descent.engine.data import data_dir
from descent.engine.data.series import dataset_persistence_mae, load_series, persistence_mae, to_raw
from descent.engine.data.toy2d import KINDS, load_toy2d, make_toy2d
from descent.engine.errors import DescentError, SpecError
from descent.engine.init import orthogonal, recurrent_weight
from descent.engine.lessons import (boundary_grid, clip_summary, collapse_linear, gd_path,
                                    least_squares, linreg_hessian, mse_and_grad, mse_grid,
                                    stability, surface_window)


# ---- toy2d ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_toy2d_sets_are_balanced_deterministic_and_in_the_window(kind):
    x, y = make_toy2d(kind, n=400, noise=0.1, seed=3)
    assert x.shape == (400, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [200, 200]
    assert np.max(np.abs(x)) < 1.5
    x2, y2 = make_toy2d(kind, n=400, noise=0.1, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, make_toy2d(kind, n=400, noise=0.1, seed=4)[0])


def test_xor_has_a_quarter_per_quadrant_and_its_quadrant_label():
    x, y = make_toy2d("xor", n=400, noise=0.0)
    quadrant = (x[:, 0] > 0).astype(int) * 2 + (x[:, 1] > 0)
    assert np.bincount(quadrant).tolist() == [100, 100, 100, 100]
    assert np.array_equal(y, (x[:, 0] * x[:, 1] > 0).astype(np.int64))
    # the best linear separator of balanced xor quadrants gets about 2/3: check a few lines
    best = 0.0
    for angle in np.linspace(0, np.pi, 73):
        for c in np.linspace(-1, 1, 41):
            side = x @ np.array([np.cos(angle), np.sin(angle)]) > c
            best = max(best, np.mean(side == y), np.mean(side != y))
    assert 0.6 < best < 0.75


def test_load_toy2d_is_a_stratified_dataset():
    ds = load_toy2d("circle", n=200, test_fraction=0.25, seed=1)
    assert (ds.n_train, ds.n_test, ds.in_shape, ds.n_classes) == (150, 50, (2,), 2)
    assert np.bincount(ds.y_test).tolist() == [25, 25]


@pytest.mark.parametrize("kwargs, key", [({"kind": "donut"}, "data.kind"), ({"n": 3}, "data.n"),
                                         ({"noise": -0.1}, "data.noise"), ({"seed": -1}, "data.seed")])
def test_toy2d_bad_options_name_the_key(kwargs, key):
    with pytest.raises(SpecError, match=key.replace(".", r"\.")):
        load_toy2d(**kwargs)


# ---- series -----------------------------------------------------------------------------

def _weather():
    path = data_dir() / "weather" / "seattle-weather.csv"
    if not path.is_file():
        pytest.skip(f"weather not found in {data_dir()} (set $DESCENT_DATA to the shared data folder)")
    return path


def test_persistence_mae_of_temp_max_matches_the_data_readme():
    path = _weather()
    ds = load_series(path, "temp_max", window=1, test_from="2012-01-03")
    series = np.concatenate([[ds.extra_test["persistence"][0]], ds.extra_test["truth"]])
    assert persistence_mae(series) == pytest.approx(2.22, abs=0.01)          # the whole file
    ds = load_series(path, "temp_max", window=7, test_from=dt.date(2015, 1, 1))
    assert ds.n_test == 365 and ds.extra_test["time"][0] == "2015/01/01"
    assert dataset_persistence_mae(ds) == pytest.approx(2.24, abs=0.005)     # 2015 alone


def test_weather_windows_split_and_scaling():
    ds = load_series(_weather(), "temp_max", window=7, horizon=1, test_from="2015-01-01")
    assert ds.x_train.shape == (1089, 7, 4) and ds.y_train.shape == (1089, 1)
    assert ds.x_train.dtype == np.float32 and ds.task == "regression" and ds.in_shape == (7, 4)
    # statistics from the training rows only: the training inputs are about standard
    assert abs(float(ds.x_train[:, -1].mean(0)[1])) < 0.05
    assert np.allclose(to_raw(ds, ds.y_test), ds.extra_test["truth"], atol=1e-4)


def _toy_csv(tmp_path, n=20):
    path = tmp_path / "s.csv"
    rows = [f"2020-01-{d + 1:02d},{d * 1.0},{10 + d * 2.0}" for d in range(n)]
    path.write_text("day,a,y\n" + "\n".join(rows) + "\n")
    return path


def test_series_sample_layout_and_chronological_split(tmp_path):
    ds = load_series(_toy_csv(tmp_path), "y", time="day", window=3, horizon=2, test_fraction=0.25,
                     standardize=False)
    # anchors t = 2..17, target t+2; 16 samples, the last 4 are test
    assert (ds.n_train, ds.n_test) == (12, 4)
    assert ds.x_train[0, :, 0].tolist() == [0.0, 1.0, 2.0] and ds.y_train[0, 0] == 10 + 4 * 2
    assert ds.extra_test["time"].tolist() == ["2020-01-17", "2020-01-18", "2020-01-19", "2020-01-20"]
    assert ds.extra_test["persistence"].tolist() == [10 + 14 * 2.0, 10 + 15 * 2, 10 + 16 * 2, 10 + 17 * 2]
    assert dataset_persistence_mae(ds) == pytest.approx(4.0)
    # every training target comes before every test target
    assert ds.y_train.max() < ds.y_test.min()


def test_series_standardizes_with_the_training_rows_only(tmp_path):
    ds = load_series(_toy_csv(tmp_path), "y", time="day", window=1, horizon=1, test_from="2020-01-16")
    fit = np.arange(15.0)                        # rows 0..14 come before the first test target
    assert ds.x_train[0, 0, 0] == pytest.approx((0 - fit.mean()) / fit.std(), rel=1e-6)
    assert float(ds.extra_test["target_mean"]) == pytest.approx(10 + 2 * fit.mean())


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "nope"}, "data.target"), ({"window": 0}, "data.window"),
    ({"test_from": "soon"}, "data.test_from"), ({"test_from": "2030-01-01"}, "no test samples"),
    ({"features": ["a", "zz"]}, "data.features")])
def test_series_bad_options_give_one_line_errors(tmp_path, kwargs, message):
    with pytest.raises((SpecError, DescentError), match=message.replace(".", r"\.")):
        load_series(_toy_csv(tmp_path), **{"target": "y", "time": "day", **kwargs})


def test_series_rejects_unsorted_time(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("t,y\n1,1\n3,2\n2,3\n4,4\n")
    with pytest.raises(DescentError, match="line 4: column 't' is not increasing"):
        load_series(path, "y", time="t", window=1)


# ---- orthogonal init --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(8, 8), (5, 12), (12, 5), (6, 2, 3)])
def test_orthogonal_singular_values_all_equal_scale(shape):
    w = orthogonal(np.random.default_rng(0), shape, scale=1.7)
    assert w.shape == shape
    s = np.linalg.svd(w.reshape(shape[0], -1), compute_uv=False)
    assert np.allclose(s, 1.7, atol=1e-12)


def test_orthogonal_is_distributed_like_torch(torch):
    from scipy.stats import ks_2samp
    rng = np.random.default_rng(0)
    ours = np.array([orthogonal(rng, (6, 6))[0, 0] for _ in range(2000)])
    theirs = np.array([torch.nn.init.orthogonal_(torch.empty(6, 6, dtype=torch.float64))[0, 0].item()
                       for _ in range(2000)])
    # Haar entries: mean 0, E q^2 = 1/n; and the two samples' distributions agree
    assert abs(ours.mean()) < 0.03 and ours.var() == pytest.approx(1 / 6, rel=0.1)
    assert ks_2samp(ours, theirs).pvalue > 1e-3
    t = torch.nn.init.orthogonal_(torch.empty(4, 4, dtype=torch.float64), gain=2.5).numpy()
    assert np.allclose(np.linalg.svd(t, compute_uv=False), np.linalg.svd(
        orthogonal(rng, (4, 4), 2.5), compute_uv=False))


def test_recurrent_weight_blocks():
    w = recurrent_weight(np.random.default_rng(0), (12, 4), 4, "orthogonal", 0.5)
    for g in range(3):
        assert np.allclose(np.linalg.svd(w[4 * g:4 * g + 4], compute_uv=False), 0.5, atol=1e-6)
    d = recurrent_weight(np.random.default_rng(0), (4, 4), 4, "default", 3.0)
    assert np.max(np.abs(d)) <= 3.0 / 2 and w.dtype == np.float32
    with pytest.raises(ValueError, match="recurrent init"):
        recurrent_weight(np.random.default_rng(0), (4, 4), 4, "xavier")


# ---- the neuron lesson ------------------------------------------------------------------

def test_uniform_inputs_with_a_bias_have_lambda_max_two():
    x = np.linspace(-1, 1, 200001)
    assert np.allclose(linreg_hessian(x), [[2 / 3, 0], [0, 2]], atol=1e-4)
    s = stability(x, 1.0)
    assert s.lambda_max == pytest.approx(2.0) and s.lr_max == pytest.approx(1.0)


def test_gd_converges_just_below_the_threshold_and_diverges_just_above():
    x = np.random.default_rng(0).uniform(-1, 1, 256)
    lr_max = stability(x, 0.1).lr_max
    assert 0.95 < lr_max < 1.05
    path, losses = gd_path(x, x, 0.97 * lr_max, 2000)
    assert abs(path[-1, 0] - 1) < 1e-3 and abs(path[-1, 1]) < 1e-3 and losses[-1] < 1e-8
    _, losses = gd_path(x, x, 1.03 * lr_max, 2000)
    assert not losses[-1] < losses[0]
    assert stability(x, 0.97 * lr_max).factor < 1 < stability(x, 1.03 * lr_max).factor


def test_the_seeds_numbers_x_0_to_99_with_lr_001_diverge_and_why():
    x = np.arange(100.0)
    s = stability(x, 0.01)
    assert s.diverges and s.lambda_max == pytest.approx(6568.7, rel=1e-3)
    assert s.lr_max == pytest.approx(3.045e-4, rel=1e-3) and s.factor > 60
    assert "diverges" in s.explain() and "0.0003045" in s.explain()
    _, losses = gd_path(x, x, 0.01, 50)
    assert not np.isfinite(losses[-1]) or losses[-1] > 1e30


def test_mse_surface_matches_direct_evaluation_and_has_its_minimum_at_least_squares():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 50)
    y = 2 * x - 0.5 + rng.normal(0, 0.1, 50)
    w_star, b_star = least_squares(x, y)
    w_lim, b_lim = surface_window(w_star, b_star, np.array([[0.0, 0.0], [np.inf, 1.0]]))
    assert w_lim[0] <= 0 <= w_lim[1] and b_lim[0] <= 0 <= b_lim[1]
    loss, ws, bs = mse_grid(x, y, w_lim, b_lim, cols=41, rows=21)
    assert loss.shape == (21, 41) and bs[0] > bs[-1]
    assert loss[3, 7] == pytest.approx(mse_and_grad(x, y, ws[7], bs[3])[0])
    r, c = np.unravel_index(np.argmin(loss), loss.shape)
    assert abs(ws[c] - w_star) < 0.1 and abs(bs[r] - b_star) < 0.2
    _, gw, gb = mse_and_grad(x, y, w_star, b_star)
    assert abs(gw) < 1e-9 and abs(gb) < 1e-9


# ---- the activations lesson -------------------------------------------------------------

def test_an_identity_stack_collapses_to_one_affine_map():
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(5, 2)), rng.normal(size=5)), (rng.normal(size=(4, 5)), None),
              (rng.normal(size=(1, 4)), rng.normal(size=1))]
    W, b = collapse_linear(layers)
    pts = rng.normal(size=(10, 2))
    h = pts
    for weight, bias in layers:
        h = h @ weight.T + (0 if bias is None else bias)
    assert W.shape == (1, 2) and np.allclose(pts @ W.T + b, h)
    with pytest.raises(ValueError, match="does not take"):
        collapse_linear([(np.ones((3, 2)), None), (np.ones((1, 4)), None)])


def test_boundary_grid_orientation_and_output_forms():
    grid = boundary_grid(lambda p: (p[:, 1] > 0).astype(float), (-1, 1), (-1, 1), cols=8, rows=4)
    assert grid.shape == (4, 8) and grid[0].tolist() == [1.0] * 8 and grid[-1].tolist() == [0.0] * 8
    two = boundary_grid(lambda p: np.stack([1 - (p[:, 0] > 0), p[:, 0] > 0], 1), (-1, 1), (-1, 1), 4, 2)
    assert two[:, :2].max() == 0 and two[:, 2:].min() == 1
    col = boundary_grid(lambda p: np.full((len(p), 1), 0.3), (0, 1), (0, 1), 3, 3)
    assert np.allclose(col, 0.3)
    with pytest.raises(ValueError, match="returned shape"):
        boundary_grid(lambda p: np.zeros(3), (0, 1), (0, 1), 2, 2)


def test_clip_summary_counts_clipped_steps():
    after, share, ratio = clip_summary(np.array([0.5, 2.0, 1e6, np.inf, 1.0]), 1.0)
    assert after.tolist() == [0.5, 1.0, 1.0, 1.0, 1.0] and share == pytest.approx(0.6)
    assert ratio == pytest.approx(1e6 / 1.5)
    after, share, _ = clip_summary(np.array([0.5, 2.0]), 0.0)
    assert after.tolist() == [0.5, 2.0] and share == 0.0


# ---- the neuron's data ------------------------------------------------------------------

def test_line_data_on_minus_one_one_has_lambda_max_exactly_two():
    from descent.engine.data.line import load_line
    ds = load_line()
    assert ds.x_train.shape == (256, 1) and np.array_equal(ds.x_train, ds.y_train)
    assert stability(ds.x_train, 1.0).lambda_max == pytest.approx(2.0, abs=1e-6)
    assert ds.n_test == 255 and abs(float(ds.x_test.mean())) < 1e-6
    far = load_line("0..99", n=100)
    assert sorted(far.x_train[:, 0].tolist()) == list(range(100))
    assert stability(far.x_train, 0.01).diverges


@pytest.mark.parametrize("x_range", ["1..-1", "wide", "0..1..2"])
def test_line_bad_range_names_the_key(x_range):
    from descent.engine.data.line import load_line
    with pytest.raises(SpecError, match=r"data\.x_range"):
        load_line(x_range)


# ---- the adding problem -----------------------------------------------------------------

def test_adding_problem_marks_one_value_in_each_half():
    from descent.engine.data.adding import BASELINE_MSE, load_adding, make_adding
    x, y = make_adding(length=20, n=2000, seed=1)
    assert x.shape == (2000, 20, 2) and y.shape == (2000, 1)
    marks = x[:, :, 1]
    assert np.all(marks[:, :10].sum(1) == 1) and np.all(marks[:, 10:].sum(1) == 1)
    assert np.allclose((x[:, :, 0] * marks).sum(1), y[:, 0], atol=1e-6)
    assert np.mean((y - 1.0) ** 2) == pytest.approx(BASELINE_MSE, rel=0.1)
    ds = load_adding(length=20, train_size=100, test_size=10)
    assert (ds.n_train, ds.n_test, ds.in_shape, ds.task) == (100, 10, (20, 2), "regression")


# ---- the bundled lesson scenarios ---------------------------------------------------------

LESSONS = Path(__file__).parent.parent / "scenarios"


def _lesson(name):
    import tomllib
    with open(LESSONS / f"{name}.toml", "rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("name", ["neuron", "activations", "exploding", "weather"])
def test_each_lesson_names_only_options_its_new_loader_takes(name):
    import inspect

    from descent.engine.data.adding import load_adding
    from descent.engine.data.line import load_line
    loaders = {"line": load_line, "toy2d": load_toy2d, "adding": load_adding, "series": load_series}
    data = dict(_lesson(name)["data"])
    params = inspect.signature(loaders[data.pop("source")]).parameters
    assert set(data) <= set(params), set(data) - set(params)
    assert len(_lesson(name)["scenario"]["description"]) > 100


def test_the_neuron_lessons_defaults_reach_w_1_b_0_in_plain_gd():
    from descent.engine.data.line import load_line
    spec = _lesson("neuron")
    data = {k: v for k, v in spec["data"].items() if k != "source"}
    ds = load_line(**data)
    assert spec["training"]["batch_size"] == ds.n_train             # full batch: the exact threshold
    path, _ = gd_path(ds.x_train[:, 0], ds.y_train[:, 0], spec["training"]["lr"],
                      spec["training"]["steps"], w0=0.3, b0=-0.4)
    assert abs(path[-1, 0] - 1) < 1e-3 and abs(path[-1, 1]) < 1e-3


def test_the_weather_lesson_loads_and_its_test_year_is_2015():
    spec = dict(_lesson("weather")["data"])
    spec.pop("source")
    spec["path"] = _weather().parent.parent / spec["path"].removeprefix("data:")
    ds = load_series(**spec)
    assert ds.extra_test["time"][0] == "2015/01/01" and ds.n_test == 365
    assert dataset_persistence_mae(ds) == pytest.approx(2.24, abs=0.005)


# ---- the engine side: sources, recurrent init, clipping records, mlp ------------------------

def test_lesson_sources_are_registered_with_their_input_shapes(tmp_path):
    from descent.engine.data import input_shape, load_dataset
    cases = {"toy2d": ({}, (2,)), "line": ({}, (1,)), "adding": ({"length": 7, "train_size": 5, "test_size": 3}, (7, 2))}
    for source, (options, shape) in cases.items():
        assert input_shape(source, options, tmp_path) == shape
        assert load_dataset(source, options, tmp_path, tmp_path).in_shape == shape
    csv = tmp_path / "s.csv"
    csv.write_text("t,a,b\n" + "".join(f"{i},{i % 3},{i * 2}\n" for i in range(20)))
    opts = {"path": "s.csv", "target": "b", "time": "t", "window": 3}
    assert input_shape("series", opts, tmp_path) == (3, 2)
    assert input_shape("series", opts | {"features": ["a"]}, tmp_path) == (3, 1)
    assert load_dataset("series", opts, tmp_path, tmp_path).x_train.shape[1:] == (3, 2)


def test_lesson_scenarios_are_regression_or_classification_as_their_data():
    from descent.engine.scenario import load, resolve_name
    tasks = {name: load(resolve_name(name), check_shapes=False).task
             for name in ("neuron", "activations", "exploding", "weather")}
    assert tasks == {"neuron": "regression", "activations": "classification",
                     "exploding": "regression", "weather": "regression"}


def test_default_recurrent_init_is_the_draws_it_always_was():
    from descent.engine.dense import uniform_fan_in
    from descent.engine.model import Net
    for kind in ("rnn", "lstm", "gru"):
        net = Net([{"type": kind, "hidden": 6}], (4, 3), np.float32, 5)
        rng = np.random.default_rng(5)
        for name, shape in net.params.shapes.items():
            expected = uniform_fan_in(rng, shape, 6, np.float32)
            if kind == "lstm" and "bias_ih" in name:
                expected[6:12] += 1.0
            assert np.array_equal(net.params.state_dict()[name], expected), (kind, name)


def test_orthogonal_recurrent_init_reaches_torch_unchanged():
    pytest.importorskip("torch")
    from descent.engine.model import Net
    from descent.engine.torch_backend import build_torch_model
    spec = [{"type": "gru", "hidden": 5, "init": "orthogonal", "init_scale": 2.0}]
    ours = Net(spec, (4, 3), np.float32, 0).params.state_dict()
    w = ours["0.weight_hh_l0"]
    assert np.allclose(np.linalg.svd(w[:5], compute_uv=False), 2.0, atol=1e-5)
    theirs = build_torch_model(spec, (4, 3)).state_dict()
    assert all(np.array_equal(v.numpy(), ours[k]) for k, v in theirs.items())


@pytest.mark.parametrize("bad, key", [({"init": "xavier"}, "init"), ({"init_scale": 0}, "init_scale")])
def test_bad_recurrent_init_names_the_key(bad, key):
    from descent.engine.model import Net
    with pytest.raises(SpecError) as e:
        Net([{"type": "rnn", "hidden": 3, **bad}], (4, 2), np.float32, 0)
    assert e.value.key == f"[0].{key}"


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_step_stats_carry_the_clip_scale(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    from descent.engine.backend import make_trainer
    from descent.engine.optim import OptimConfig
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32) * 10
    y = np.zeros((8, 1), np.float32) + 50
    layers = [{"type": "dense", "units": 1}]
    clipped = make_trainer(layers, (3,), "mse", OptimConfig(kind="sgd", lr=0.01, clip_norm=0.5), 0,
                           backend=backend).step(x, y)
    assert clipped.clip_scale == pytest.approx(0.5 / (clipped.grad_norm + 1e-6))
    free = make_trainer(layers, (3,), "mse", OptimConfig(kind="sgd", lr=0.01), 0, backend=backend).step(x, y)
    assert free.clip_scale == 1.0 and free.grad_norm == pytest.approx(clipped.grad_norm, rel=1e-5)


def test_mlp_expands_to_a_plain_dense_stack():
    from descent.engine.model import Net
    spec = [{"type": "mlp", "depth": 3, "units": 4, "activation": "tanh"}, {"type": "dense", "units": 2}]
    net = Net(spec, (2,), np.float32, 0)
    plain = Net([{"type": "dense", "units": 4}, {"type": "tanh"}] * 3 + [{"type": "dense", "units": 2}],
                (2,), np.float32, 0)
    assert list(net.params.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                                             "4.bias", "6.weight", "6.bias"]
    assert all(np.array_equal(a, plain.params.state_dict()[k]) for k, a in net.params.state_dict().items())
    with pytest.raises(SpecError) as e:
        Net([{"type": "dense", "units": 2}, {"type": "mlp", "units": 4, "depth": 0}], (2,), np.float32, 0)
    assert e.value.key == "[1].depth"


def test_resume_keeps_the_count_of_clipped_steps(tmp_path):
    import threading

    from descent.engine.records import Finished
    from descent.engine.scenario import load, resolve_name
    from descent.engine.session import Session
    sc = load(resolve_name("exploding"), overrides=["data.length=10", "data.train_size=64", "training.steps=20"])
    s = Session(sc, out_dir=tmp_path / "run")
    list(s.prepare())
    list(s.run(threading.Event(), steps=10))
    s.save()
    s.close()
    r = Session.resume(tmp_path / "run")
    list(r.prepare())
    records = list(r.run(threading.Event()))
    r.close()
    done = [x for x in records if isinstance(x, Finished)][0]
    assert done.summary["clipped_steps"] == r.clipped_steps >= s.clipped_steps > 0


@pytest.mark.parametrize("name", ["neuron", "activations", "exploding", "weather"])
def test_lesson_scenarios_round_trip_through_the_resolved_toml(name):
    """A run folder's scenario.toml (a TOML date for weather's test_from included) loads back the same."""
    from descent.engine.scenario import dumps, load, loads, resolve_name
    sc = load(resolve_name(name), check_shapes=False)
    again = loads(dumps(sc), name="resolved.toml", base_dir=sc.base_dir, check_shapes=False)
    assert again.to_dict() == sc.to_dict()
