"""`Dataset`: the arrays one scenario trains on, with what the dashboard needs to show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Dataset:
    """A train/test pair of arrays, batch-first.

    Images are float32 `(N, C, H, W)` in [0, 1]; tables float32 `(N, F)`; token sequences int64
    `(N, T)` with a bool mask `(N, T)` (True = real token, padding on the right). Class labels
    are int64 ids `0..K-1`; regression targets float32 `(N, 1)`.
    """

    name: str
    task: str                       # "classification" or "regression"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    in_shape: tuple                 # per-sample shape, no batch axis; (T,) for token ids
    n_classes: int                  # 0 for regression; 2 for binary
    class_names: list[str]
    mask_train: np.ndarray | None = None    # (N, T) bool for token sequences
    mask_test: np.ndarray | None = None
    vocab: list[str] | None = None          # token strings; 0 = "<pad>", 1 = "<unk>"
    texts_test: list[str] | None = None     # raw texts of the test split
    extra_test: dict = field(default_factory=dict)   # e.g. {"gap": (N_test,) int64} for nile
    encode: Callable | None = None  # text datasets: encode(list[str]) -> (x, mask) like the training inputs
    # what turns new raw inputs into model inputs, JSON-ready (a run folder's data.json keeps it):
    # "columns" (CSV feature names), "mean"/"std" (standardization), "pixel_max" (raw image scale),
    # "vocab"/"features"/"max_len" (text), "length" (nile)
    prep: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def n_test(self) -> int:
        return len(self.x_test)

    def summary(self) -> str:
        """One line for logs and the dashboard header."""
        kind = f"{self.n_classes} classes" if self.task == "classification" else "regression"
        return (f"{self.name}: {self.n_train:,} train + {self.n_test:,} test, "
                f"input {self.in_shape}, {kind}")
