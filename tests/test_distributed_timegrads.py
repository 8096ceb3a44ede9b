"""Per-time-step gradient norms under torchrun (engine/torch_timegrads.py): each process measures
its rows, the sums are all-reduced, and rank 0 logs the global batch's figures, the 1-process
run's. A real `torchrun --nproc_per_node 2` with gloo, on a tiny Nile (an LSTM over padded
sentences of different lengths), 4 steps; the batch of 7 splits 4 + 3 rows."""

from __future__ import annotations

import numpy as np
import pytest

from test_distributed import descent, ok, records, torchrun

pytest.importorskip("torch", reason="torch not installed: pip install 'descent[torch]'")

NILE = ["nile", "--backend", "torch", "--steps", 4, "--set", "data.train_size=128", "--set", "data.test_size=16",
        "--set", "data.gap=12", "--set", "data.min_gap=6", "--set", "training.batch_size=7",
        "--set", "training.log_every=2", "--set", "evaluation.every=100", "--set", "model.layers[1].hidden=8"]


def logged(run) -> dict[int, dict]:
    return {r["step"]: r for r in records(run) if r["kind"] == "step"}


def test_two_processes_log_the_one_process_time_grads(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    ok(descent("run", *NILE, "--out", one))
    ok(torchrun("run", *NILE, "--out", two))
    a, b = logged(one), logged(two)
    assert sorted(a) == sorted(b) == [2, 4]
    for step in a:
        for key in ("time_grad_norms", "time_grad_ratio"):
            assert set(a[step][key]) == set(b[step][key]) == {"1"}
            x, y = np.array(a[step][key]["1"]), np.array(b[step][key]["1"])
            assert len(x) == len(y) and np.count_nonzero(x) > 6     # 0 only past every sample's end
            # float32 in both; the 2-process sums differ from one pass over the batch only in order
            np.testing.assert_allclose(y, x, rtol=1e-5, err_msg=f"{key} at step {step}")
        assert a[step]["time_grad_ratio"]["1"][0] == 1.0
