"""Losses: each returns (mean loss as a Python float, dL/dlogits) and matches torch's reduction="mean".

The kernels are in loss_kernels.py.
"""

from __future__ import annotations

import numpy as np

from .loss_kernels import bce_logits, mse, softmax_ce

NAMES = ("cross_entropy", "bce", "mse")
IGNORE = -100     # a label that is padding (torch's default ignore_index)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """logits (N, K), or (B, T, K) for a label per time step; labels of the leading shape, integer
    class ids, IGNORE where a step is padding (the mean is over the other labels, as in torch)."""
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy expects logits (N, K) or (B, T, K), got {logits.shape}")
    flat = np.ascontiguousarray(logits).reshape(-1, logits.shape[-1])
    labels = np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)
    if labels.shape[0] != flat.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {flat.shape[0]} rows of logits")
    d = np.empty_like(flat)
    loss = float(softmax_ce(flat, labels, d))
    if loss < 0:
        raise ValueError(f"labels must lie in 0..{flat.shape[1] - 1} (or be {IGNORE}, padding)")
    return loss, d.reshape(logits.shape)


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray):
    """logits (N, 1) or (N,); targets 0/1 of the same size (BCEWithLogitsLoss)."""
    logits = np.ascontiguousarray(logits)
    targets = np.ascontiguousarray(targets, dtype=logits.dtype).reshape(logits.shape)
    d = np.empty_like(logits)
    return float(bce_logits(logits, targets, d)), d


def mean_squared_error(pred: np.ndarray, target: np.ndarray):
    """pred and target of the same size (MSELoss, mean over every element)."""
    pred = np.ascontiguousarray(pred)
    target = np.ascontiguousarray(target, dtype=pred.dtype).reshape(pred.shape)
    d = np.empty_like(pred)
    return float(mse(pred, target, d)), d


def loss_targets(loss: str, y: np.ndarray, dtype) -> np.ndarray:
    """Labels as the loss wants them: int ids for cross-entropy, floats otherwise."""
    if loss == "cross_entropy":
        return np.asarray(y, dtype=np.int64).reshape(-1)
    return np.asarray(y, dtype=dtype)


LOSSES = {"cross_entropy": softmax_cross_entropy, "bce": binary_cross_entropy, "mse": mean_squared_error}


def torch_loss(name: str):
    import torch.nn as nn

    if name == "cross_entropy":
        ce = nn.CrossEntropyLoss(ignore_index=IGNORE)
        return lambda out, target: ce(out.reshape(-1, out.shape[-1]), target.reshape(-1))
    return {"bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}[name]()
