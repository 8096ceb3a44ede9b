"""training.device / --device: where the torch backend trains, and the one-line errors when that
device is not here or the backend cannot use it. No test needs a GPU: on a machine that has one,
the "absent" tests skip, saying so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from descent.engine.errors import DescentError, SpecError
from descent.engine.scenario import load, resolve_name
from descent.engine.torch_backend import resolve_device

ROOT = Path(__file__).resolve().parent.parent


def descent(*args):
    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT,
                          env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def has_mps() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def digits(*overrides):
    return load(resolve_name("digits8x8"), overrides=list(overrides))


def test_the_default_device_is_the_cpu_and_cuda_n_is_a_value():
    assert digits().training.device == "cpu"
    assert digits("training.device=cuda:1").training.device == "cuda:1"
    with pytest.raises(SpecError, match=r'training.device: must be one of "cpu", "cuda", "mps", "auto" or "cuda:N"'):
        digits("training.device=gpu")


def test_the_numba_engine_takes_cpu_and_auto_only():
    assert resolve_device("cpu", "numba") == resolve_device("auto", "numba") == "cpu"
    for device in ("cuda", "cuda:0", "mps"):
        with pytest.raises(DescentError, match=f'training.device = {device} needs training.backend = "torch"'):
            resolve_device(device, "numba")


def test_auto_is_the_cpu_here(torch):
    if has_cuda() or has_mps():
        pytest.skip("this machine has a GPU: auto picks it")
    assert resolve_device("auto", "torch") == resolve_device("cpu", "torch") == "cpu"


def test_a_cpu_torch_run_records_its_device(tmp_path, torch):
    from descent.engine.session import Session

    out = tmp_path / "run"
    session = Session(digits("training.steps=3"), out_dir=out, backend="torch")
    notes = [r.message for r in session.prepare()]
    assert notes[0] == "torch backend on cpu"
    for _ in session.run():
        pass
    session.close()
    assert next(session.trainer.model.parameters()).device.type == "cpu"
    assert json.loads((out / "summary.json").read_text())["device"] == "cpu"
    resumed = Session.resume(out, device="auto")         # --device on resume overrides the run's
    assert resumed.scenario.training.device == "auto"


def test_cuda_absent_is_one_line_exit_2(tmp_path, torch):
    if has_cuda():
        pytest.skip("this machine has a CUDA device")
    p = descent("run", "digits8x8", "--backend", "torch", "--device", "cuda", "--steps", 2, "--out", tmp_path / "run")
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"descent: training.device = cuda: no CUDA device here (torch "
                                               f"{torch.__version__.split('+')[0]}, ")
    assert "--device cpu" in err[0] and not (tmp_path / "run").exists()


def test_numba_with_cuda_is_one_line_exit_2(tmp_path):
    p = descent("run", "digits8x8", "--device", "cuda", "--steps", 2, "--out", tmp_path / "run")
    assert p.returncode == 2
    assert p.stderr.strip() == ('descent: training.device = cuda needs training.backend = "torch" (the numba engine '
                                'runs on the CPU only): add --backend torch, or --device cpu')
    assert not (tmp_path / "run").exists()


def test_a_device_that_is_no_device_is_refused_by_the_parser():
    p = descent("run", "digits8x8", "--device", "gpu")
    assert p.returncode == 2
    assert p.stderr.strip() == ("descent run: argument --device: expected one of cpu, cuda, mps, auto or cuda:N, "
                                "got 'gpu' (see `descent run --help`)")


def test_the_dashboard_takes_no_device_with_resume(tmp_path):
    p = descent("tui", "--resume", tmp_path, "--device", "cpu")
    assert p.returncode == 2
    assert p.stderr.strip() == ("descent: --device: the dashboard resumes on the run's own training.device "
                                "(a headless `descent resume DIR --device ...` takes another)")
