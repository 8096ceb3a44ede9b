"""Shared fixtures for the engine tests: the torch reference, error measures, finite differences."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# A relative DESCENT_DATA (the README's `DESCENT_DATA=../shared/data`) is resolved once, here,
# against the folder pytest started in: fixtures that change directory must not lose the data.
if os.environ.get("DESCENT_DATA"):
    os.environ["DESCENT_DATA"] = str(Path(os.environ["DESCENT_DATA"]).expanduser().resolve())



@pytest.fixture(autouse=True)
def _runs_home(tmp_path_factory, monkeypatch):
    """Runs a test starts without naming a folder go to a temporary runs home, never the user's
    ~/.local/share/descent/runs; crash reports likewise (subprocesses inherit both)."""
    monkeypatch.setenv("DESCENT_RUNS", str(tmp_path_factory.getbasetemp() / "runs-home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "state-home"))


TORCH_REASON = "torch not installed: pip install 'descent[torch]'"


@pytest.fixture
def torch():
    """The torch module, or skip: every comparison with PyTorch asks for this fixture."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    torch.manual_seed(0)
    return torch


def max_rel_err(a, b) -> float:
    """max |a - b| / max |b| over all elements (b is the reference); 0 for two empty arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to every element of x (changed in place
    and restored), in float64."""
    assert x.dtype == np.float64
    grad = np.empty_like(x)
    # order="A": a view in memory order for a C- or Fortran-ordered x (a dense weight is stored transposed)
    flat, gflat = x.reshape(-1, order="A"), grad.reshape(-1, order="A")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


@pytest.fixture
def rel_err():
    return max_rel_err


@pytest.fixture
def num_grad():
    return numeric_grad


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
