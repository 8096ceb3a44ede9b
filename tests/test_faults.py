"""Issue 9: faults a real user meets, in subprocesses: signals, kill -9 during checkpoint
writes, concurrent runs, a full disk (RLIMIT_FSIZE), an --out that cannot be a folder.

Each fault gets a clean outcome: exit 2 naming the path, or exit 130 with a checkpoint."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descent.engine import checkpoint

ROOT = Path(__file__).resolve().parent.parent
LONG = ["run", "digits8x8", "--steps", "10000000", "--set", "training.log_every=1"]


def descent(*args, timeout=300, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, size: int, proc: subprocess.Popen, limit_s: float = 120) -> None:
    """Until `path` holds `size` bytes (the run is training), or fail if the run ended first."""
    deadline = time.monotonic() + limit_s
    while not (path.exists() and path.stat().st_size >= size):
        if proc.poll() is not None:
            pytest.fail(f"the run ended early (rc {proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not reach {size} bytes")
        time.sleep(0.1)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def one_line(p: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return lines[0]


# ---- kill -9 during checkpoint writes, then resume ---------------------------------------------
@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run killed with SIGKILL while it writes a checkpoint every step, with the debris such a
    kill can leave planted (a half-written .tmp and a step logged after the last checkpoint),
    then resumed for 5 steps. Planting makes the outcome the same on every run of the test."""
    out = tmp_path_factory.mktemp("killed") / "run"
    proc = start(*LONG, "--set", "training.checkpoint_every=1", "--out", out)
    wait_for(out / "checkpoint.npz", 1, proc)
    wait_for(out / "metrics.jsonl", 4000, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    _, meta = checkpoint.load(out / "checkpoint.npz")     # atomic writes: always a whole checkpoint
    saved = int(meta["step"])
    (out / ".checkpoint.npz.debris.tmp").write_bytes(b"\0" * 4096)
    step_records = [r for r in records(out / "metrics.jsonl") if r["kind"] == "step"]
    if not any(r["step"] == saved + 1 for r in step_records):
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({**step_records[-1], "step": saved + 1}) + "\n")
    p = descent("resume", out, "--steps", 5)
    return out, saved, p


def test_kill9_during_checkpoint_writes_leaves_a_checkpoint_that_resumes(killed):
    out, saved, p = killed
    assert p.returncode == 0, p.stderr
    assert f"resuming at step {saved}" in p.stdout + p.stderr


def test_resume_removes_checkpoint_debris(killed):
    out, _, _ = killed
    assert not list(out.glob("*.tmp"))


def test_resume_keeps_steps_strictly_increasing(killed):
    out, _, _ = killed
    steps = [r["step"] for r in records(out / "metrics.jsonl") if r["kind"] == "step"]
    assert all(a < b for a, b in zip(steps, steps[1:])), steps


# ---- signals --------------------------------------------------------------------------------
def test_sighup_saves_a_checkpoint_like_sigterm(tmp_path):
    out = tmp_path / "hup"
    proc = start(*LONG, "--out", out)
    wait_for(out / "metrics.jsonl", 2000, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert (out / "checkpoint.npz").exists() and records(out / "metrics.jsonl")[-1]["kind"] == "stopped"


# ---- run folders ----------------------------------------------------------------------------
def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "shared"
    first = start(*LONG, "--out", out)
    try:
        wait_for(out / "metrics.jsonl", 2000, first)
        second = descent("run", "digits8x8", "--steps", 5, "--out", out)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert second.returncode == 2, second.stderr
    line = one_line(second)
    assert str(out) in line and f"pid {first.pid}" in line


def test_a_run_into_a_folder_holding_a_run_is_refused(tmp_path):
    out = tmp_path / "done"
    assert descent("run", "digits8x8", "--steps", 5, "--out", out).returncode == 0
    before = (out / "metrics.jsonl").read_bytes()
    p = descent("run", "digits8x8", "--steps", 5, "--out", out)
    assert p.returncode == 2 and str(out) in one_line(p) and "resume" in one_line(p), p.stderr
    assert (out / "metrics.jsonl").read_bytes() == before


# ---- I/O errors -----------------------------------------------------------------------------
def small_files():   # a file-size limit as a full disk: writes past it fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_a_full_disk_is_exit_2_naming_the_file(tmp_path):
    out, scenario = tmp_path / "full", tmp_path / "wide.toml"
    scenario.write_text('[scenario]\nname = "wide"\ndescription = "a checkpoint past 64 KiB"\n'
                        '[data]\nsource = "digits8x8"\n[model]\nlayers = [{ type = "flatten" }, '
                        '{ type = "dense", units = 512 }, { type = "relu" }, { type = "dense", units = 10 }]\n')
    p = descent("run", scenario, "--steps", 20, "--out", out, preexec=small_files)
    assert p.returncode == 2, p.stderr
    line = one_line(p)
    assert str(out) in line and os.strerror(27) in line     # EFBIG: "File too large"
    assert "no checkpoint was written" in line             # and it says what is left


def test_an_out_under_a_file_is_exit_2(tmp_path):
    (tmp_path / "plain").write_text("")
    p = descent("run", "digits8x8", "--steps", 5, "--out", tmp_path / "plain" / "run")
    assert p.returncode == 2, p.stderr
    assert str(tmp_path / "plain") in one_line(p)


def test_an_out_that_is_a_file_is_exit_2(tmp_path):
    (tmp_path / "plain").write_text("")
    p = descent("run", "digits8x8", "--steps", 5, "--out", tmp_path / "plain")
    assert p.returncode == 2, p.stderr
    assert str(tmp_path / "plain") in one_line(p)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders, so there is no error to see")
def test_a_read_only_folder_is_exit_2(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        p = descent("run", "digits8x8", "--steps", 5, "--out", ro / "run")
    finally:
        ro.chmod(0o755)
    assert p.returncode == 2, p.stderr
    assert str(ro / "run") in one_line(p)


def test_a_folder_removed_mid_run_is_exit_2_naming_it(tmp_path):
    import shutil

    out = tmp_path / "gone"
    proc = start(*LONG, "--out", out)
    wait_for(out / "metrics.jsonl", 2000, proc)
    shutil.rmtree(out, ignore_errors=True)     # the run may release its lock file meanwhile
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(out) in lines[0] and "removed" in lines[0], err
    assert not out.exists()                 # not quietly made again by the next write


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    out = tmp_path / "stale"
    proc = start(*LONG, "--set", "training.checkpoint_every=10", "--out", out)
    wait_for(out / "checkpoint.npz", 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert (out / ".descent.lock").exists()          # the killed run could not remove it
    p = descent("resume", out, "--steps", 3)
    assert p.returncode == 0, p.stderr
    assert not (out / ".descent.lock").exists()


def test_force_replaces_the_run_in_a_folder(tmp_path):
    out = tmp_path / "again"
    assert descent("run", "digits8x8", "--steps", 5, "--out", out).returncode == 0
    p = descent("run", "digits8x8", "--steps", 3, "--set", "training.log_every=1", "--out", out, "--force")
    assert p.returncode == 0, p.stderr
    steps = [r["step"] for r in records(out / "metrics.jsonl") if r["kind"] == "step"]
    assert steps == [1, 2, 3]


def test_sighup_on_resume_keeps_the_run_resumable(tmp_path):
    out = tmp_path / "hup2"
    assert descent("run", "digits8x8", "--steps", 5, "--set", "training.checkpoint_every=5", "--out", out).returncode == 0
    proc = start("resume", out, "--steps", 10000000)
    wait_for(out / "metrics.jsonl", (out / "metrics.jsonl").stat().st_size + 2000, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    _, meta = checkpoint.load(out / "checkpoint.npz")
    assert meta["step"] > 5 and json.loads((out / "summary.json").read_text())["status"] == "stopped"
