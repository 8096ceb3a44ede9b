"""Steering a real headless run: `descent run` in a subprocess, `descent control` from another,
and what metrics.jsonl, checkpoint.npz, summary.json and the exit codes say afterwards.

No timed assertions: every wait polls the run folder with a generous deadline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from descent.engine import checkpoint
from descent.engine.control import append_request

from test_cli import ROOT, descent, read_jsonl

# neuron steps take microseconds: a budget it never reaches, logged sparsely
LONG = ["--steps", "100000000", "--set", "training.log_every=20", "--set", "evaluation.every=100000"]


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "descent.tui.cli", "run", "neuron", *LONG, *extra, "--out",
                             str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def records(out: Path) -> list[dict]:
    """metrics.jsonl's complete lines (the run may be writing the last one now)."""
    text = (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").exists() else ""
    return [json.loads(line) for line in text.split("\n")[:-1]]


def wait_for(what: str, check, proc: subprocess.Popen, timeout: float = 120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def training(out: Path, proc) -> None:
    wait_for("the first logged step", lambda: any(r["kind"] == "step" for r in records(out)), proc)


def answer(out: Path, rid: str, proc) -> dict:
    return wait_for(f"the answer to {rid}",
                    lambda: next((r for r in records(out) if r["kind"] == "control" and r["id"] == rid), None), proc)


def last_step(out: Path) -> int:
    return max(r["step"] for r in records(out) if r["kind"] == "step")


def checkpoint_step(out: Path) -> int:
    return checkpoint.load(out / "checkpoint.npz")[1]["step"]


def test_a_headless_run_is_steered_from_another_process(tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    try:
        training(out, proc)
        p = descent("control", out, "set", "training.lr=0.05", check_rc=0)
        assert "training.lr = 0.05 applies before step" in p.stdout
        knob = next(r for r in records(out) if r["kind"] == "knobchanged")
        assert (knob["key"], knob["value"]) == ("training.lr", 0.05)
        wait_for("a step after the change", lambda: last_step(out) > knob["step"] + 20, proc)
        later = [r for r in records(out) if r["kind"] == "step"]
        assert all(r["lr"] == 0.05 for r in later if r["step"] > knob["step"])
        assert all(r["lr"] == 0.5 for r in later if r["step"] <= knob["step"])

        p = descent("control", out, "pause", check_rc=0)
        paused = next(r for r in records(out) if r["kind"] == "control" and r["op"] == "pause")
        assert p.stdout.strip() == f"descent: paused at step {paused['step']}"
        assert last_step(out) <= paused["step"]
        # a session that is paused still reads requests, and answers them at the same step
        refused = append_request(out, "set", "training.optimizer", "adam")    # past the CLI's own check
        ack = answer(out, refused, proc)
        assert not ack["ok"] and "applies only on reset" in ack["message"] and ack["step"] == paused["step"]
        p = descent("control", out, "checkpoint", check_rc=0)
        assert f"checkpoint.npz written at step {paused['step']}" in p.stdout
        assert checkpoint_step(out) == paused["step"]
        assert last_step(out) <= paused["step"]              # nothing trained while paused

        descent("control", out, "resume", check_rc=0)
        wait_for("steps after resuming", lambda: last_step(out) > paused["step"], proc)
        p = descent("control", out, "stop", check_rc=0)
        assert "stopping at step" in p.stdout
        said, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped by a control request" in err
    assert f"paused at step {paused['step']} (control request)" in said and "control: resumed at step" in said
    assert "control request refused: training.optimizer: applies only on reset" in err
    recs = read_jsonl(out / "metrics.jsonl")
    assert recs[-1]["kind"] == "stopped"
    assert [r["op"] for r in recs if r["kind"] == "control"] == ["set", "pause", "set", "checkpoint", "resume", "stop"]
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped"

    # resumed: the earlier requests (a stop among them) are not applied again
    p = descent("resume", out, "--steps", 40, check_rc=0)
    assert "done: " in p.stdout
    tail = read_jsonl(out / "metrics.jsonl")[len(recs):]
    assert tail and not any(r["kind"] == "control" for r in tail) and tail[-1]["kind"] == "finished"


def test_ctrl_c_while_paused_keeps_the_run_and_exits_130(tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    try:
        training(out, proc)
        rid = append_request(out, "pause")
        paused = answer(out, rid, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    recs = read_jsonl(out / "metrics.jsonl")
    assert recs[-1] == {"kind": "stopped", "step": paused["step"]}
    assert checkpoint_step(out) == paused["step"]


def test_control_refuses_bad_input_in_one_line(tmp_path):
    out = tmp_path / "done"
    descent("run", "neuron", "--steps", 5, "--out", out, check_rc=0)
    cases = [((tmp_path / "nowhere", "pause"), 2, "no such folder"),
             ((tmp_path, "pause"), 2, "not a run folder"),
             ((out, "explode"), 2, "invalid choice: 'explode'"),
             ((out, "set"), 2, "'set' takes KEY=VALUE"),
             ((out, "pause", "training.lr=1"), 2, "only 'set' takes one"),
             ((out, "set", "training.lr"), 2, "expected KEY=VALUE"),
             ((out, "set", "training.lrr=0.1"), 2, "did you mean 'lr'"),
             ((out, "set", "training.lr=-1"), 2, "must be > 0"),
             ((out, "set", "training.optimizer=adam"), 2, "applies only on reset"),
             ((out, "set", "training.lr=0.1"), 1, "no descent run is training there now"),
             ((out, "stop"), 1, "no descent run is training there now")]
    for args, rc, text in cases:
        p = descent("control", *args)
        assert p.returncode == rc, (args, p.stderr)
        assert text in p.stderr and len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)
    assert not (out / "control.jsonl").exists()             # nothing was sent
