"""Issue 9 (items 2-4, 9-11, 13): run folders as the session and the command line keep them:
the runs home and `descent runs`, a failed write that keeps the last good checkpoint, the
format version and versions in summary.json, resume past a finished cosine schedule, exact
epochs, a divergence with checkpoint_every = 0, crash reports, and the dashboard's hang-up."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from descent.engine import checkpoint, rundir
from descent.engine.errors import DescentError
from descent.engine.ioerrors import IOFailure
from descent.engine.runs import list_runs, runs_home
from descent.engine.scenario import load, resolve_name
from descent.engine.session import Session

ROOT = Path(__file__).resolve().parent.parent


def descent(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=os.environ | (env or {}))


def digits(*overrides) -> object:
    return load(resolve_name("digits8x8"), overrides=["training.log_every=1", *overrides])


def drain(session, steps=None) -> list:
    for _ in session.prepare():
        pass
    try:
        return list(session.run(steps=steps))
    finally:
        session.close()


# ---- where runs live --------------------------------------------------------------------------
def test_runs_home_follows_descent_runs_then_xdg_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCENT_RUNS", str(tmp_path / "mine"))
    assert runs_home() == tmp_path / "mine"
    monkeypatch.delenv("DESCENT_RUNS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert runs_home() == tmp_path / "data" / "descent" / "runs"
    monkeypatch.setenv("XDG_DATA_HOME", "relative")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert runs_home() == tmp_path / ".local" / "share" / "descent" / "runs"


def test_run_without_out_goes_to_the_runs_home_and_descent_runs_lists_it(tmp_path):
    home = tmp_path / "home"
    p = descent("run", "digits8x8", "--steps", 4, env={"DESCENT_RUNS": str(home)})
    assert p.returncode == 0, p.stderr
    (run,) = home.iterdir()
    assert run.name.startswith("digits8x8-") and (run / "summary.json").exists()
    p = descent("runs", env={"DESCENT_RUNS": str(home)})
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stdout.splitlines() if run.name in ln)
    assert "finished" in line and " 4 steps" in line and "accuracy" in line


def test_list_runs_tells_killed_and_running_runs(tmp_path):
    done = tmp_path / "done"
    drain(Session(digits("training.steps=3"), out_dir=done))
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "metrics.jsonl").write_text(json.dumps({"kind": "step", "step": 7}) + "\n")
    running = tmp_path / "running"
    running.mkdir()
    (running / "metrics.jsonl").write_text("")
    (running / ".descent.lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                                       "started": 1.0}))
    rows = {r["name"]: r for r in list_runs(tmp_path)}
    assert rows["done"]["status"] == "finished" and rows["done"]["steps"] == 3
    assert rows["killed"]["status"] == "killed" and rows["killed"]["steps"] == 7
    assert rows["running"]["status"] == "running"
    assert list_runs(tmp_path / "none") == []


# ---- what a run folder records -----------------------------------------------------------------
def test_summary_and_checkpoint_record_format_versions_threads_backend(tmp_path):
    out = tmp_path / "run"
    drain(Session(digits("training.steps=2"), out_dir=out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == rundir.FORMAT and summary["backend"] == "numba" and summary["threads"] >= 1
    assert set(summary["versions"]) == {"descent", "numpy", "numba", "torch"}
    assert summary["versions"]["numpy"] and summary["versions"]["numba"]
    _, meta = checkpoint.load(out / "checkpoint.npz")
    assert meta["format"] == rundir.FORMAT


def test_resume_refuses_a_newer_run_format(tmp_path):
    out = tmp_path / "run"
    drain(Session(digits("training.steps=2"), out_dir=out))
    arrays, meta = checkpoint.load(out / "checkpoint.npz")
    checkpoint.save(out / "checkpoint.npz", arrays, {**meta, "format": rundir.FORMAT + 1})
    with pytest.raises(DescentError, match="newer descent"):
        Session.resume(out)
    p = descent("resume", out)
    assert p.returncode == 2 and "newer descent" in p.stderr and "Traceback" not in p.stderr


def test_resume_and_predict_on_a_missing_folder_say_what_is_missing(tmp_path):
    for command in (["resume"], ["predict"]):
        p = descent(*command, tmp_path / "nope", *(["hello"] if command == ["predict"] else []))
        assert p.returncode == 2 and "no such run folder" in p.stderr, p.stderr
        if command == ["predict"]:
            assert "descent resume" not in p.stderr
    p = descent("predict", tmp_path, "hello")
    assert p.returncode == 2 and "no scenario.toml" in p.stderr and "descent resume" not in p.stderr


# ---- failed writes ----------------------------------------------------------------------------
def test_a_failed_final_save_keeps_the_last_checkpoint_and_the_metrics(tmp_path, monkeypatch):
    out = tmp_path / "run"
    session = Session(digits("training.steps=10", "training.checkpoint_every=5"), out_dir=out)
    real = checkpoint.save

    def full_disk(path, arrays, meta):
        if meta["step"] == 10:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, arrays, meta)

    monkeypatch.setattr(checkpoint, "save", full_disk)
    with pytest.raises(IOFailure) as e:
        drain(session)
    assert str(e.value) == f"cannot write {out / 'checkpoint.npz'}: {os.strerror(errno.ENOSPC)}"
    _, meta = checkpoint.load(out / "checkpoint.npz")
    assert meta["step"] == 5 and not list(out.glob(".*.tmp"))
    steps = [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(ln)["kind"] == "step"]
    assert steps == list(range(1, 11))


def test_an_out_that_is_a_file_fails_before_the_data_loads(tmp_path):
    (tmp_path / "plain").write_text("")
    session = Session(digits(), data_root=tmp_path / "no-data-here", out_dir=tmp_path / "plain" / "run")
    with pytest.raises(IOFailure, match="is a file, not a folder"):
        next(session.prepare())


def test_steps_and_epochs_must_be_positive_and_never_blame_set():
    for flag, value in (("--steps", "0"), ("--steps", "-5"), ("--epochs", "0")):
        p = descent("run", "digits8x8", flag, value)
        assert p.returncode == 2 and flag in p.stderr and "(from --set)" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1


# ---- the schedule and the epoch count ----------------------------------------------------------
def test_resume_steps_on_a_finished_cosine_run_starts_a_new_cycle(tmp_path):
    out = tmp_path / "cos"
    drain(Session(digits("training.steps=20", "training.schedule=\"cosine\"", "training.checkpoint_every=0"),
                  out_dir=out))
    session = Session.resume(out)
    for _ in session.prepare():
        pass
    assert session.lr_now() == 0.0                        # where the schedule ended
    note = session.extend(10)
    assert "new cycle" in note and "10 extra steps" in note
    assert session.lr_now() == pytest.approx(session.base_lr)
    steps = [r for r in session.run(steps=10) if type(r).__name__ == "Step"]
    session.close()
    assert [r.step for r in steps] == list(range(21, 31)) and steps[-1].lr < steps[0].lr
    p = descent("resume", out, "--steps", 5)
    assert p.returncode == 0 and "cosine schedule ended at step 30" in p.stdout, p.stdout + p.stderr


def test_epochs_train_exactly_that_many_epochs(tmp_path):
    session = Session(digits("training.epochs=3", "training.steps=0", "training.batch_size=100"))
    records = drain(session)
    n = len(session.x_train)
    assert n % 100                                        # a partial last batch in each epoch
    assert session.step == 3 * math.ceil(n / 100) and session.epoch == 3.0
    assert [r for r in records if type(r).__name__ == "Finished"][0].summary["epochs"] == 3.0


# ---- divergence ---------------------------------------------------------------------------------
def test_a_divergence_without_checkpoints_writes_the_last_good_state(tmp_path):
    out = tmp_path / "div"
    p = descent("run", "digits8x8", "--set", "training.optimizer=sgd", "--set", "training.lr=1e4",
                "--set", "training.checkpoint_every=0", "--out", out)
    assert p.returncode == 1, p.stderr
    _, meta = checkpoint.load(out / "checkpoint.npz")
    assert f"last good checkpoint (step {meta['step']}) kept in {out}" in p.stderr
    diverged = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()
                if '"diverged"' in ln][0]
    assert meta["step"] < diverged["step"]
    p = descent("resume", out, "--steps", 1)            # the kept state trains on
    assert p.returncode in (0, 1) and f"step {meta['step'] + 1}/" in p.stdout and "Traceback" not in p.stderr


# ---- crash reports ------------------------------------------------------------------------------
def test_an_internal_error_writes_a_private_report_in_the_state_folder(tmp_path, monkeypatch, capsys):
    import descent.tui.cli as cli

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(cli, "cmd_list", lambda args: 1 / 0)
    assert cli.main(["list"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("descent: internal error: ZeroDivisionError") and "/tmp/descent-error.txt" not in err
    (report,) = (tmp_path / "state" / "descent").iterdir()
    assert str(report) in err and "ZeroDivisionError" in report.read_text()


def test_from_set_is_said_exactly_when_a_set_gave_the_value(tmp_path):
    p = descent("run", "digits8x8", "--set", "model.layers[2].units=3", "--out", tmp_path / "a")
    assert p.returncode == 2 and p.stderr.strip().endswith("(from --set)"), p.stderr
    text = (ROOT / "scenarios" / "digits8x8.toml").read_text()
    own = tmp_path / "three.toml"
    own.write_text(text.replace("units = 10", "units = 3"))
    assert "units = 3" in own.read_text()
    p = descent("run", own, "--set", "training.lr=0.01", "--out", tmp_path / "b")
    assert p.returncode == 2 and "units" in p.stderr and "(from --set)" not in p.stderr, p.stderr


def test_a_run_that_ended_between_the_checks_and_the_lock_is_not_overwritten(tmp_path, monkeypatch):
    """The checks pass on an empty folder; another run trains there and ends before the lock is taken."""
    from descent.engine import runlock

    out = tmp_path / "race"
    late = Session(digits("training.steps=2"), out_dir=out)
    real, raced = runlock.acquire, []

    def another_run_first(run_dir):
        if not raced:
            raced.append(True)
            drain(Session(digits("training.steps=3"), out_dir=out))
        return real(run_dir)

    monkeypatch.setattr(runlock, "acquire", another_run_first)
    with pytest.raises(DescentError, match="already holds a run"):
        for _ in late.prepare():
            pass
    late.close()
    assert raced and json.loads((out / "summary.json").read_text())["steps"] == 3
    assert not (out / ".descent.lock").exists()


# ---- evaluation time ----------------------------------------------------------------------------
def test_each_evaluation_is_announced_and_left_out_of_training_time(tmp_path, monkeypatch):
    """An Evaluating record comes before every evaluation (the dashboard shows the state while a
    slow model evaluates), never in metrics.jsonl; elapsed, steps/s and summary.json's figures
    count training alone (bench/scenario_speed.py says so, and a 10 s evaluation of
    textgen_transformer made the next logged steps/s a tenth of the real one)."""
    import time

    from descent.engine.records import Evaluating, Evaluation

    session = Session(digits("training.steps=20", "evaluation.every=5"), out_dir=tmp_path / "ev")
    slow = session.evaluate
    monkeypatch.setattr(session, "evaluate", lambda: (time.sleep(0.4), slow())[1])
    records = drain(session)
    evals = [i for i, r in enumerate(records) if isinstance(r, Evaluation)]
    assert [r.step for r in records if isinstance(r, Evaluation)] == [5, 10, 15, 20]
    assert all(isinstance(records[i - 1], Evaluating) and records[i - 1].step == records[i].step for i in evals)
    took = [records[i - 1].last_seconds for i in evals]
    assert took[0] is None and all(0.4 <= s < 5 for s in took[1:])    # what the evaluation before took
    kinds = {json.loads(line)["kind"] for line in (tmp_path / "ev" / "metrics.jsonl").read_text().splitlines()}
    assert "evaluating" not in kinds and "evaluation" in kinds
    assert session.elapsed < 1.0               # 20 small steps; the three evaluations inside the run took 1.2 s
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["wall_time_s"] == pytest.approx(session.elapsed, abs=1e-3)
    rates = [r.steps_per_s for r in records if type(r).__name__ == "Step"]
    assert min(rates[5:]) > 10                                   # no window took in an evaluation's 0.4 s
