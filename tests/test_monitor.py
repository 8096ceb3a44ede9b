"""descent.Monitor on a user's own torch model: what it records equals torch's own numbers (float64),
it keeps to its schedule, undoes a GradScaler's scale, and writes a run folder the engine reads."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import naive

from descent.engine.errors import DescentError
from descent.engine.records import Evaluation, Finished, Step

ROOT = Path(__file__).resolve().parents[1]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def steps(run_dir: Path) -> list[dict]:
    return [r for r in records(run_dir) if r["kind"] == "step"]


class Seq(object):
    """A recurrent classifier on float input (a data tensor needing no gradient) or on tokens."""

    @staticmethod
    def make(torch, cell="LSTM", batch_first=True, tokens=False):
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(7, 5) if tokens else None
                self.rnn = getattr(nn, cell)(5, 6, batch_first=batch_first)
                self.head = nn.Linear(6, 3)

            def forward(self, x):
                if self.embed is not None:
                    x = self.embed(x)
                out = self.rnn(x)[0]
                return self.head(out[:, -1] if batch_first else out[-1])

        return Net().double()


def direct_time_stats(g: np.ndarray, lengths: np.ndarray):
    """From dL/dx (B, T, F): the mean over real steps of ||dL/dx_t|| and the answer-aligned ratio."""
    return naive.time_stats(np.linalg.norm(g, axis=-1), lengths)


def test_grad_norms_and_update_ratios_equal_torch(torch, tmp_path):
    from descent import Monitor

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    expected = []
    with Monitor(model, tmp_path / "run", every=1) as monitor:
        for _ in range(3):
            x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 2, (16,))
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            grads = {n: p.grad.norm().item() for n, p in model.named_parameters()}
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            monitor.step(loss, opt)
            opt.step()
            ratios = {n: (p.detach() - before[n]).norm().item() / p.detach().norm().item()
                      for n, p in model.named_parameters()}
            expected.append((loss.item(), grads, ratios, opt.param_groups[0]["lr"]))
    got = steps(tmp_path / "run")
    assert [r["step"] for r in got] == [1, 2, 3]
    for r, (loss, grads, ratios, lr) in zip(got, expected):
        assert r["loss"] == pytest.approx(loss, rel=1e-12)
        assert r["lr"] == lr
        assert r["grad_norms"].keys() == grads.keys()
        for n in grads:
            assert r["grad_norms"][n] == pytest.approx(grads[n], rel=1e-12)
            assert r["update_ratios"][n] == pytest.approx(ratios[n], rel=1e-9)
        assert r["grad_norm"] == pytest.approx(math.sqrt(sum(g * g for g in grads.values())), rel=1e-12)
        assert r["time_grad_norms"] is None and "lr_groups" not in r


@pytest.mark.parametrize("batch_first", [True, False])
def test_input_time_grads_equal_torch(torch, tmp_path, batch_first):
    """dL/dx_t of a data tensor (which needs no gradient of its own), batch_first both ways."""
    from descent import Monitor

    model = Seq.make(torch, "LSTM", batch_first)
    reference = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    expected = []
    with Monitor(model, tmp_path / "run", every=2) as monitor:
        for _ in range(4):
            x = torch.randn(5, 9, 5, dtype=torch.float64)          # (B, T, F)
            x_in = x if batch_first else x.transpose(0, 1)
            y = torch.randint(0, 3, (5,))
            xr = x_in.clone().requires_grad_(True)
            ref_loss = torch.nn.functional.cross_entropy(reference(xr), y)
            ref_opt.zero_grad()
            ref_loss.backward()
            g = xr.grad if batch_first else xr.grad.transpose(0, 1)
            expected.append(direct_time_stats(g.numpy(), np.full(5, 9)))
            ref_opt.step()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_in), y)
            loss.backward()
            monitor.step(loss, opt)
            opt.step()
            assert x_in.grad is None and not x_in.requires_grad   # the user's tensor is left alone
    got = steps(tmp_path / "run")
    assert [r["step"] for r in got] == [2, 4]
    for r, (mean, ratio) in zip(got, [expected[1], expected[3]]):
        np.testing.assert_allclose(r["time_grad_norms"]["rnn"], mean, rtol=1e-10)
        np.testing.assert_allclose(r["time_grad_ratio"]["rnn"], ratio, rtol=1e-10)


def test_taps_see_only_the_layers_share_and_leave_training_unchanged(torch, tmp_path):
    """An embedding's output that feeds the GRU and a skip path: the tap sees the GRU's gradient
    only, and the monitored run's weights equal an unmonitored twin's."""
    from descent import Monitor

    nn = torch.nn

    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.rnn, self.head = nn.Embedding(7, 5), nn.GRU(5, 6, batch_first=True), nn.Linear(11, 3)

        def forward(self, x, keep=None):
            e = self.embed(x)
            if keep is not None:
                keep.append(e)
            r = e.view_as(e) if keep is not None else e       # the reference's own handle on the GRU's input
            if keep is not None:
                r.retain_grad()
                keep.append(r)
            out = self.rnn(r)[0]
            return self.head(torch.cat([out[:, -1], e.mean(1)], dim=1))

    model = Skip().double()
    twin = copy.deepcopy(model)
    opt, twin_opt = torch.optim.SGD(model.parameters(), lr=0.5), torch.optim.SGD(twin.parameters(), lr=0.5)
    with Monitor(model, tmp_path / "run", every=1) as monitor:
        for _ in range(2):
            x, y = torch.randint(0, 7, (4, 6)), torch.randint(0, 3, (4,))
            keep = []
            twin_loss = torch.nn.functional.cross_entropy(twin(x, keep), y)
            twin_opt.zero_grad()
            twin_loss.backward()
            mean, ratio = direct_time_stats(keep[1].grad.numpy(), np.full(4, 6))
            twin_opt.step()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            monitor.step(loss, opt)
            opt.step()
            assert loss.item() == twin_loss.item()
    last = steps(tmp_path / "run")[-1]
    np.testing.assert_allclose(last["time_grad_norms"]["rnn"], mean, rtol=1e-10)
    np.testing.assert_allclose(last["time_grad_ratio"]["rnn"], ratio, rtol=1e-10)
    for (n, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), n


def test_packed_sequences_count_only_real_steps(torch, tmp_path):
    from torch.nn.utils.rnn import pack_padded_sequence

    from descent import Monitor

    rnn = torch.nn.RNN(5, 6, batch_first=True).double()
    opt = torch.optim.SGD(rnn.parameters(), lr=0.1)
    lengths = torch.tensor([7, 3, 5, 1])
    x = torch.randn(4, 7, 5, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    ref = copy.deepcopy(rnn)
    h = ref(pack_padded_sequence(xr, lengths, batch_first=True, enforce_sorted=False))[1]
    h.square().sum().backward()
    mean, ratio = direct_time_stats(xr.grad.numpy(), lengths.numpy())
    with Monitor(rnn, tmp_path / "run", every=1) as monitor:
        loss = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[1].square().sum()
        loss.backward()
        monitor.step(loss, opt)
        opt.step()
    r = steps(tmp_path / "run")[0]
    np.testing.assert_allclose(r["time_grad_norms"]["rnn"], mean, rtol=1e-10)
    np.testing.assert_allclose(r["time_grad_ratio"]["rnn"], ratio, rtol=1e-10)
    assert r["time_grad_norms"]["rnn"][6] == pytest.approx(float(np.linalg.norm(xr.grad[0, 6])), rel=1e-10)


def test_throttled_hooks_do_nothing_on_unlogged_steps(torch, tmp_path, monkeypatch):
    from descent import Monitor
    from descent.engine import monitor_taps

    taps = []
    real_tap = monitor_taps.InputTaps._tap

    def counting(self, name, x, batch_first):
        taps.append(name)
        return real_tap(self, name, x, batch_first)

    monkeypatch.setattr(monitor_taps.InputTaps, "_tap", counting)
    model = Seq.make(torch, "GRU", tokens=True)
    opt = torch.optim.Adam(model.parameters())
    with Monitor(model, tmp_path / "run", every=4) as monitor:
        for i in range(1, 11):
            loss = model(torch.randint(0, 7, (3, 5))).sum()
            loss.backward()
            monitor.step(loss, opt)
            opt.step()
            opt.zero_grad()
            assert monitor._pending is None      # the parameter copy goes when the optimizer has stepped
            with torch.no_grad():
                model(torch.randint(0, 7, (3, 5)))    # an evaluation pass is never tapped
    assert [r["step"] for r in steps(tmp_path / "run")] == [4, 8]
    assert taps == ["rnn", "rnn"]
    assert not any(m._forward_pre_hooks for m in model.modules())       # close removed them
    assert not opt._optimizer_step_post_hooks


def test_grad_scaler_unscaled(torch, tmp_path):
    """A real GradScaler on the CPU: gradients measured unscaled, whether or not the loop called
    scaler.unscale_ first; a step the scaler skips leaves no record."""
    from descent import Monitor

    model = Seq.make(torch, "LSTM")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1000)
    expected = []
    with Monitor(model, tmp_path / "run", every=1, scaler=scaler) as monitor:
        for i in range(4):
            x, y = torch.randn(3, 4, 5, dtype=torch.float64), torch.randint(0, 3, (3,))
            xr = x.clone().requires_grad_(True)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xr), y)
            scaler.scale(loss).backward()
            if i == 2:
                next(model.parameters()).grad[0, 0] = math.inf
            if i == 1:
                scaler.unscale_(opt)
            scale = 1.0 if i == 1 else scaler.get_scale()
            grads = {n: p.grad.norm().item() / scale for n, p in model.named_parameters()}
            mean, _ = direct_time_stats(xr.grad.numpy() / scaler.get_scale(), np.full(3, 4))
            expected.append((grads, mean))
            monitor.step(loss, opt)
            scaler.step(opt)
            scaler.update()
    assert monitor.skipped_steps == 1
    got = steps(tmp_path / "run")
    assert [r["step"] for r in got] == [1, 2, 4]
    for r, (grads, mean) in zip(got, [expected[0], expected[1], expected[3]]):
        for n in grads:
            assert r["grad_norms"][n] == pytest.approx(grads[n], rel=1e-9)
        np.testing.assert_allclose(r["time_grad_norms"]["rnn"], mean, rtol=1e-6)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_steps"] == 1


def test_a_scaler_with_only_get_scale(torch, tmp_path):
    from descent import Monitor

    class Fixed:
        def get_scale(self):
            return 8.0

    w = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=0.0)
    with Monitor(torch.nn.ParameterList([w]), tmp_path / "run", every=1, scaler=Fixed()) as monitor:
        (8.0 * w.square().sum() / 2).backward()          # the loop scaled its loss by 8 itself
        monitor.step(w.square().sum() / 2, opt)
        opt.step()
    r = steps(tmp_path / "run")[0]
    assert r["grad_norms"]["0"] == pytest.approx(5.0, rel=1e-12)
    assert r["update_ratios"]["0"] == 0.0 and r["loss"] == pytest.approx(12.5)


def test_learning_rates_per_group(torch, tmp_path):
    from descent import Monitor

    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    model = torch.nn.Sequential(a, b)
    opt = torch.optim.SGD([{"params": a.parameters(), "lr": 0.1}, {"params": b.parameters(), "lr": 0.01}])
    with Monitor(model, tmp_path / "run", every=1) as monitor:
        model(torch.randn(4, 2)).sum().backward()
        monitor.step(1.5, opt)
        opt.step()
    r = steps(tmp_path / "run")[0]
    assert (r["lr"], r["lr_groups"], r["loss"]) == (0.1, [0.1, 0.01], 1.5)


def test_run_folder_reads_like_a_sessions(torch, tmp_path):
    """The engine's readers take the folder: records rebuild as Step/Evaluation/Finished, the
    dashboard's History draws the time-gradient heatmap, `descent runs` lists it, and the
    checkpoint loads strictly into a fresh model under torch's names."""
    from descent import Monitor
    from descent.engine import checkpoint
    from descent.engine.rundir import FORMAT
    from descent.engine.runlock import read_lock
    from descent.engine.runs import list_runs
    from descent.tui.app.history import History
    from descent.tui.app.timegrads import TimeGradients

    run = tmp_path / "runs" / "mine"
    model = Seq.make(torch, "LSTM", tokens=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    monitor = Monitor(model, run, every=2, name="my lstm", steps_per_epoch=4)
    assert read_lock(run) is not None
    with pytest.raises(DescentError, match="already holds a run|in use"):
        Monitor(model, run)
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(model(torch.randint(0, 7, (4, 8))), torch.randint(0, 3, (4,)))
        loss.backward()
        monitor.step(loss, opt)
        opt.step()
        opt.zero_grad()
    monitor.evaluate({"accuracy": torch.tensor(0.75), "loss": 1.25})
    monitor.checkpoint()
    monitor.close()
    assert read_lock(run) is None

    kinds = {"step": Step, "evaluation": Evaluation, "finished": Finished}
    history = History()
    for rec in records(run):
        cls = kinds[rec.pop("kind")]
        assert set(rec) == {f.name for f in dataclasses.fields(cls)}
        built = cls(**rec)
        history.add(built)
    assert [s for s, _ in history.ratio_rows(10)] == [2, 4, 6]
    assert history.curve("val_acc") == ([6], [0.75])
    view = TimeGradients()
    view.rows = history.ratio_rows(10)
    text = view.render_rows(60, 12, colour=False).plain
    assert "layer rnn" in text and "█" in text

    summary = json.loads((run / "summary.json").read_text())
    assert summary["format"] == FORMAT and summary["status"] == "finished" and summary["steps"] == 6
    assert summary["epochs"] == 1.5 and summary["metrics"] == {"accuracy": 0.75, "loss": 1.25}
    [row] = list_runs(run.parent)
    assert (row["scenario"], row["steps"], row["status"]) == ("my lstm", 6, "finished")
    import tomllib

    described = tomllib.loads((run / "scenario.toml").read_text())
    assert described["monitor"]["recurrent"] == ["rnn"] and described["monitor"]["optimizer"]["kind"] == "Adam"
    assert described["monitor"]["tensors"]["rnn.weight_hh_l0"] == [24, 6]

    arrays, meta = checkpoint.load(run / "checkpoint.npz")
    assert meta["step"] == 6 and meta["format"] == FORMAT
    fresh = Seq.make(torch, "LSTM", tokens=True)
    fresh.load_state_dict(checkpoint.torch_state_dict(run / "checkpoint.npz"), strict=True)
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p, q)

    from descent.engine.session import Session

    with pytest.raises(DescentError, match="recorded by descent.Monitor from your own training script"):
        Session.resume(run)

    again = Monitor(model, run, force=True)
    again.close("stopped")
    assert records(run)[-1]["kind"] == "stopped"


def test_bad_arguments_are_one_line_errors(torch, tmp_path):
    from descent import Monitor

    model = torch.nn.Linear(2, 1)
    for every in (0, 2.5, True):
        with pytest.raises(DescentError, match="every must be"):
            Monitor(model, tmp_path / "a", every=every)
    with Monitor(model, tmp_path / "b") as monitor:
        with pytest.raises(DescentError, match="'acc' is 'high', not a number"):
            monitor.evaluate({"acc": "high"})
    with pytest.raises(DescentError, match="is closed"):
        monitor.step(1.0, torch.optim.SGD(model.parameters(), lr=0.1))


def test_the_example_script_records_the_lstm_time_grads(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "remember"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "monitor_example.py"), "--steps", "30",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"descent watch {out}" in done.stdout
    logged = steps(out)
    assert [r["step"] for r in logged] == [10, 20, 30]
    assert all(len(r["time_grad_norms"]["lstm"]) == 10 and len(r["time_grad_ratio"]["lstm"]) == 10 for r in logged)
    assert logged[0]["time_grad_ratio"]["lstm"][0] == pytest.approx(1.0)
    assert [r["kind"] for r in records(out)][-2:] == ["evaluation", "finished"]
    assert (out / "checkpoint.npz").exists()


def test_two_forward_passes_in_a_step_pool_their_samples(torch, tmp_path):
    """Micro-batches of different lengths before one optimizer step: one batch, each sample its
    own real steps."""
    from descent import Monitor

    rnn = torch.nn.GRU(5, 6, batch_first=True).double()
    ref = copy.deepcopy(rnn)
    opt = torch.optim.SGD(rnn.parameters(), lr=0.1)
    xs = [torch.randn(2, 4, 5, dtype=torch.float64), torch.randn(3, 6, 5, dtype=torch.float64)]
    grads = []
    for x in xs:
        xr = x.clone().requires_grad_(True)
        ref(xr)[0][:, -1].sum().backward()
        grads.append(np.pad(xr.grad.numpy(), ((0, 0), (0, 6 - x.shape[1]), (0, 0))))
    mean, ratio = direct_time_stats(np.concatenate(grads), np.array([4, 4, 6, 6, 6]))
    with Monitor(rnn, tmp_path / "run", every=1) as monitor:
        loss = sum(rnn(x)[0][:, -1].sum() for x in xs)
        loss.backward()
        monitor.step(loss, opt)
        opt.step()
    r = steps(tmp_path / "run")[0]
    np.testing.assert_allclose(r["time_grad_norms"]["gru"], mean, rtol=1e-10)
    np.testing.assert_allclose(r["time_grad_ratio"]["gru"], ratio, rtol=1e-10)


def test_step_lines_are_the_sessions_serialization(torch, tmp_path):
    """Monitor writes Step lines without asdict's copy; they are what records.to_json gives."""
    from descent import Monitor
    from descent.engine.records import to_json

    model = Seq.make(torch, "RNN", tokens=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Monitor(model, tmp_path / "run", every=1) as monitor:
        model(torch.randint(0, 7, (2, 3))).sum().backward()
        monitor.step(torch.tensor(0.5), opt)
        opt.step()
    line = steps(tmp_path / "run")[0]
    rebuilt = Step(**{k: v for k, v in line.items() if k != "kind"})
    assert json.loads(json.dumps(to_json(rebuilt))) == line


def test_importing_monitor_loads_neither_torch_nor_textual():
    code = ("import sys; from descent import Monitor; import descent.engine.monitor; "
            "print(sorted(m for m in ('torch', 'textual') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


def test_a_run_folder_removed_mid_run_is_a_one_line_error(torch, tmp_path):
    """metrics.jsonl is written by Monitor's own thread; its error reaches the training loop."""
    import shutil

    from descent import Monitor
    from descent.engine.ioerrors import IOFailure

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = Monitor(model, tmp_path / "run", every=1)
    shutil.rmtree(tmp_path / "run")
    with pytest.raises(IOFailure, match="was removed"):
        for _ in range(50):
            model(torch.randn(3, 2)).sum().backward()
            monitor.step(1.0, opt)
            opt.step()
        monitor.close()
    with pytest.raises(IOFailure, match="was removed"):
        monitor.close()
    assert monitor.closed and not monitor._lines.is_alive()


CRASHING_LOOP = """
import sys, torch
from descent import Monitor
model = torch.nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
monitor = Monitor(model, sys.argv[1], every=5)     # no `with`, never closed: the loop crashes
for step in range(1, 26):
    loss = model(torch.randn(4, 3)).square().mean()
    opt.zero_grad()
    loss.backward()
    monitor.step(loss, opt)
    opt.step()
raise RuntimeError("the user's loop crashed")
"""


def test_a_crashing_loop_loses_no_logged_step(torch, tmp_path):
    """metrics.jsonl is written by a thread in batches; an uncaught exception still leaves every
    logged step in the file (the finalizer flushes the batch), as the engine's per-line writer does."""
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", CRASHING_LOOP, str(run)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 1 and "the user's loop crashed" in done.stderr
    assert [r["step"] for r in steps(run)] == [5, 10, 15, 20, 25]
    assert not (run / ".descent.lock").exists()          # the finalizer released the folder too
