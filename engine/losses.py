"""Losses: each returns (mean loss as a Python float, dL/dlogits) and matches torch's reduction="mean"."""

from __future__ import annotations

import math

import numpy as np

from .jit import jit

NAMES = ("cross_entropy", "bce", "mse")


@jit
def _softmax_ce(logits, labels, dlogits):
    """Mean cross-entropy of logits (N, K) against labels (N,); fills dlogits (N, K).
    Returns -1.0 (never a loss) if a label lies outside 0..K-1."""
    n, k = logits.shape
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            return -1.0
    total = 0.0
    inv_n = 1.0 / n
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, k):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(k):
            e = math.exp(logits[i, j] - m)
            dlogits[i, j] = e
            s += e
        total += math.log(s) + m - logits[i, labels[i]]
        inv_s = 1.0 / s
        for j in range(k):
            dlogits[i, j] *= inv_s * inv_n
        dlogits[i, labels[i]] -= inv_n
    return total * inv_n


@jit
def _bce_logits(z, t, dz):
    n = z.size
    total = 0.0
    for i in range(n):
        v = z.flat[i]
        # max(v, 0) - v*t + log(1 + exp(-|v|)): stable for both signs
        total += max(v, 0.0) - v * t.flat[i] + math.log1p(math.exp(-abs(v)))
        sig = 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))
        dz.flat[i] = (sig - t.flat[i]) / n
    return total / n


@jit
def _mse(pred, target, dpred):
    n = pred.size
    total = 0.0
    for i in range(n):
        d = pred.flat[i] - target.flat[i]
        total += d * d
        dpred.flat[i] = 2.0 * d / n
    return total / n


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """logits (N, K) float; labels (N,) integer class ids."""
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits (N, K), got {logits.shape}")
    labels = np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {logits.shape[0]} rows of logits")
    logits = np.ascontiguousarray(logits)
    d = np.empty_like(logits)
    loss = float(_softmax_ce(logits, labels, d))
    if loss < 0:
        raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1}")
    return loss, d


def binary_cross_entropy(logits: np.ndarray, targets: np.ndarray):
    """logits (N, 1) or (N,); targets 0/1 of the same size (BCEWithLogitsLoss)."""
    logits = np.ascontiguousarray(logits)
    targets = np.ascontiguousarray(targets, dtype=logits.dtype).reshape(logits.shape)
    d = np.empty_like(logits)
    return float(_bce_logits(logits, targets, d)), d


def mean_squared_error(pred: np.ndarray, target: np.ndarray):
    """pred and target of the same size (MSELoss, mean over every element)."""
    pred = np.ascontiguousarray(pred)
    target = np.ascontiguousarray(target, dtype=pred.dtype).reshape(pred.shape)
    d = np.empty_like(pred)
    return float(_mse(pred, target, d)), d


LOSSES = {"cross_entropy": softmax_cross_entropy, "bce": binary_cross_entropy, "mse": mean_squared_error}


def torch_loss(name: str):
    import torch.nn as nn

    return {"cross_entropy": nn.CrossEntropyLoss, "bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss}[name]()
