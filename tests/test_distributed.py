"""torchrun with DistributedDataParallel (engine/distributed.py): real `torchrun --nproc_per_node 2`
runs with gloo on the CPU, against one-process torch runs of the same scenario.

Each launch costs three torch imports (torchrun's and two workers'), so the module trains
one 2-process run and reuses its folder; a run is 30 steps of the bundled 8x8 digits MLP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from descent.engine import checkpoint
from descent.engine.distributed import World
from descent.engine.errors import DescentError

pytest.importorskip("torch", reason="torch not installed: pip install 'descent[torch]'")

ROOT = Path(__file__).resolve().parent.parent
STEPS = 30
# one BLAS thread a process, as torchrun sets it for its workers, so the one-process run compares alike
ENV = {"OMP_NUM_THREADS": "1"}
SCENARIO = ["digits8x8", "--backend", "torch", "--set", "evaluation.every=20",
            "--set", "training.checkpoint_every=10"]


def torchrun(*args, timeout=300, **popen):
    # --standalone: a free port of its own, so runs side by side never meet
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "descent.tui.cli", *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, cwd=ROOT, env=os.environ | ENV, text=True, **popen)
    return subprocess.run(cmd, cwd=ROOT, env=os.environ | ENV, capture_output=True, text=True, timeout=timeout)


def descent(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT,
                          env=os.environ | ENV, capture_output=True, text=True, timeout=timeout)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def step_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(run) if r["kind"] == "step"}


def ok(p) -> str:
    assert p.returncode == 0, f"rc {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one-process run, two-process run) of the same scenario, seed and steps."""
    base = tmp_path_factory.mktemp("ddp")
    one, two = base / "one", base / "two"
    ok(descent("run", *SCENARIO, "--steps", STEPS, "--out", one))
    out = ok(torchrun("run", *SCENARIO, "--steps", STEPS, "--out", two))
    return one, two, out


def test_two_processes_write_one_run_folder_like_one_process(runs):
    one, two, out = runs
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert not list(two.glob("*.lock")) and not list(two.glob(".*"))       # lock released, no debris
    assert [r["kind"] for r in records(two)] == [r["kind"] for r in records(one)]
    assert out.count("done:") == 1 and out.count(f"step {STEPS}/{STEPS}") == 1   # rank 1 printed nothing
    with np.load(one / "checkpoint.npz") as a, np.load(two / "checkpoint.npz") as b:
        assert sorted(a.files) == sorted(b.files)
    summary = json.loads((two / "summary.json").read_text())
    assert (summary["status"], summary["steps"], summary["device"]) == ("finished", STEPS, "cpu")
    assert (summary["processes"], summary["process_group"]) == (2, "gloo")


def test_two_processes_reach_the_loss_of_one(runs):
    # batch_size is the global batch: each process trains on its half with its loss weighted so
    # that DDP's averaged gradient is the whole batch's, and the epoch order is the one-process
    # run's. The two runs then take the same steps; they differ only in float32 summation order
    # (two half-batch means averaged vs one mean), ~1e-7 relative a step. 1e-4 leaves room for
    # that to grow over 30 Adam steps and still fails on any real difference (a wrong share or
    # weight moves the loss by percents).
    one, two, _ = runs
    a, b = step_losses(one), step_losses(two)
    assert a.keys() == b.keys() and max(a) == STEPS
    assert all(abs(a[s] - b[s]) <= 1e-4 * abs(a[s]) for s in a), (a, b)
    assert b[STEPS] < 0.75 * b[min(b)]                                   # and it did learn
    with np.load(one / "checkpoint.npz") as wa, np.load(two / "checkpoint.npz") as wb:
        for name in wa.files:
            if wa[name].dtype.kind == "f":
                assert np.allclose(wa[name], wb[name], rtol=1e-3, atol=1e-4), name


def test_resume_a_two_process_run_in_one_process_then_under_torchrun(runs, tmp_path):
    _, two, _ = runs
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(two), str(run)], check=True)
    ok(descent("resume", run, "--steps", 5))
    out = ok(torchrun("resume", run, "--steps", 5))
    assert f"resuming at step {STEPS + 5}" in out
    steps = [r["step"] for r in records(run) if r["kind"] == "step"]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS + 10
    assert json.loads((run / "summary.json").read_text())["processes"] == 2


def _until_first_step(p) -> None:
    for line in p.stdout:
        if line.startswith("step "):
            return
    raise AssertionError(f"no step line; stderr:\n{p.stderr.read()[-3000:]}")


def test_ctrl_c_stops_every_process_at_one_step_with_the_checkpoint_saved(tmp_path):
    run = tmp_path / "run"
    p = torchrun("run", *SCENARIO, "--steps", 100_000, "--out", run, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, start_new_session=True)
    _until_first_step(p)
    os.killpg(p.pid, signal.SIGINT)          # what a terminal's Ctrl-C sends: the whole group
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0
    assert err.count("descent: interrupted at step") == 1, err[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    _, meta = checkpoint.load(run / "checkpoint.npz")
    assert summary["status"] == "stopped" and summary["steps"] == meta["step"] >= max(step_losses(run))


def _workers(pid: int) -> dict[int, int]:
    """{rank: pid} of torchrun's worker processes (Linux /proc)."""
    found = {}
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for kid in map(int, children.read_text().split()):
            env = dict(kv.split("=", 1) for kv in Path(f"/proc/{kid}/environ").read_text().split("\0") if "=" in kv)
            if "RANK" in env:
                found[int(env["RANK"])] = kid
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_a_rank_that_dies_fails_the_run_in_one_line_and_keeps_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    p = torchrun("run", *SCENARIO, "--steps", 100_000, "--out", run, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, start_new_session=True)
    _until_first_step(p)
    while not (run / "checkpoint.npz").exists():       # the first checkpoint_every
        assert p.poll() is None, p.stderr.read()[-3000:]
        time.sleep(0.05)
    os.kill(_workers(p.pid)[1], signal.SIGKILL)
    _, err = p.communicate(timeout=240)                # well inside DESCENT_DIST_TIMEOUT: no hang
    assert p.returncode != 0
    lost = [line for line in err.splitlines() if "lost the other processes" in line]
    # torchrun's own report (a traceback of its agent) fills the tail: show what the ranks said
    said = "\n".join(line for line in err.splitlines() if line.startswith("descent:")) or err[-3000:]
    assert lost and lost[0].startswith("descent: rank 0: lost the other processes at step"), said
    assert "the checkpoint of step" in lost[0]
    assert not list(run.glob("*.lock"))


def test_world_from_torchrun_environment():
    assert World.from_env({}) is None
    assert World.from_env({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None    # one process
    w = World.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (w.rank, w.size, w.local_rank) == (3, 4, 1)
    for bad in ({"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"}):
        with pytest.raises(DescentError):
            World.from_env(bad)


@pytest.mark.parametrize("n", [1, 2, 5, 32, 33])
def test_shares_cover_the_batch_once_and_weigh_to_its_mean(n):
    worlds = [World(r, 2, r) for r in range(2)]
    shares = [w.share(n) for w in worlds]
    real = [rows for rows, weight in shares if weight > 0]
    assert sorted(np.concatenate(real).tolist()) == list(range(n))
    # DDP averages the processes' weighted share means: that is the whole batch's mean
    values = np.random.default_rng(n).normal(size=n)
    averaged = sum(weight * values[rows].mean() for rows, weight in shares) / 2
    assert averaged == pytest.approx(values.mean())


def test_numba_under_torchrun_is_refused_before_joining(tmp_path):
    from descent.engine.distributed import DistributedSession, start
    from descent.engine.scenario import load, resolve_name

    session = DistributedSession(load(resolve_name("digits8x8")), out_dir=tmp_path / "run")
    with pytest.raises(DescentError, match='--backend torch'):
        start(World(0, 2, 0), session)
    assert not (tmp_path / "run").exists()
