"""Train/test splits and feature scaling, deterministic from a seed."""

from __future__ import annotations

import numpy as np

from descent.engine.data.checks import fraction, whole_number


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx): each class puts round(n_class * test_fraction) of its samples in the
    test split (halves round up), chosen by `seed`. Both index arrays come shuffled."""
    test_fraction = fraction("data.test_fraction", test_fraction)
    y = np.asarray(y)
    rng = np.random.default_rng(whole_number("data.seed", seed, 0))
    train, test = [], []
    for c in np.unique(y):                               # sorted, so the order is fixed
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(np.floor(len(idx) * test_fraction + 0.5))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train)).astype(np.int64)
    test_idx = rng.permutation(np.concatenate(test)).astype(np.int64)
    return train_idx, test_idx


def random_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) for unlabelled or regression rows: round(n * test_fraction) to test."""
    test_fraction = fraction("data.test_fraction", test_fraction)
    order = np.random.default_rng(whole_number("data.seed", seed, 0)).permutation(n).astype(np.int64)
    n_test = int(np.floor(n * test_fraction + 0.5))
    return order[n_test:], order[:n_test]


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both to zero mean, unit variance with the training split's statistics (float32).
    Constant columns are only centred."""
    mean, std = scaling(x_train)
    return scaled(x_train, mean, std), scaled(x_test, mean, std)


def scaling(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per column, float64, as `standardize` uses them (std 1 for constant columns);
    a run folder keeps them so that `predict` scales new rows the same way."""
    mean = x_train.mean(axis=0, dtype=np.float64)            # (F,)
    std = x_train.std(axis=0, dtype=np.float64)              # (F,)
    std[std == 0] = 1.0
    return mean, std


def scaled(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((x - mean) / std).astype(np.float32)
