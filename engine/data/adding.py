"""The adding problem (Hochreiter & Schmidhuber 1997): a long-range credit task for recurrent nets.

Each sample is T steps of two features: a value drawn from U[0, 1] and a marker that is 1 at
exactly two steps (one in the first half, one in the second) and 0 elsewhere. The target is the
sum of the two marked values. Predicting the mean (1.0) scores MSE 1/6; beating that needs the
first marked value carried across about T/2 steps, so gradients must travel that far back,
which is where they explode or vanish (Pascanu, Mikolov & Bengio 2013).
"""

from __future__ import annotations

import numpy as np

from descent.engine.data.checks import whole_number
from descent.engine.data.dataset import Dataset
from descent.engine.data.options import Option

BASELINE_MSE = 1.0 / 6.0     # the variance of U[0,1] + U[0,1]: the "always say 1" model
ADDING_OPTIONS = {"length": Option("int", ge=2), "train_size": Option("int", ge=1),
                  "test_size": Option("int", ge=1), "seed": Option("int", ge=0)}


def make_adding(length: int = 50, n: int = 10000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (n, length, 2), y float32 (n, 1))."""
    length = whole_number("data.length", length, 2)
    n = whole_number("data.n", n, 1)
    rng = np.random.default_rng(whole_number("data.seed", seed, 0))
    half = length // 2
    values = rng.uniform(0, 1, (n, length))                                  # (N, T)
    first = rng.integers(0, half, n)                                         # (N,)
    second = rng.integers(half, length, n)                                   # (N,)
    marks = np.zeros((n, length))
    marks[np.arange(n), first] = marks[np.arange(n), second] = 1.0
    y = values[np.arange(n), first] + values[np.arange(n), second]           # (N,)
    return np.stack([values, marks], -1).astype(np.float32), y[:, None].astype(np.float32)


def load_adding(length: int = 50, train_size: int = 10000, test_size: int = 1000,
                seed: int = 0) -> Dataset:
    """Independent train and test draws from one seeded generator."""
    x, y = make_adding(length, whole_number("data.train_size", train_size, 1)
                       + whole_number("data.test_size", test_size, 1), seed)
    return Dataset(f"adding T={length}", "regression", x[:train_size], y[:train_size],
                   x[train_size:], y[train_size:], in_shape=(length, 2), n_classes=0,
                   class_names=[])
