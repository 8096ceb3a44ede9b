"""Evaluation metrics from predictions: pure functions over arrays."""

from __future__ import annotations

import math

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Over the last axis: (N, K) rows, or (N, T, K) a distribution per time step."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """(n, K) class probabilities from logits; one logit (BCE) becomes [1 - p, p]."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-outputs[:, 0]))
        return np.stack([1.0 - p, p], axis=1)
    return softmax(outputs.reshape(len(outputs), -1))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts, rows = true class, columns = predicted."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def binary_metrics(cm: np.ndarray) -> dict[str, float]:
    """Class 1 is the positive class (for spam: recall is "spam caught", the false-positive
    rate "ham blocked")."""
    tn, fp, fn, tp = (float(v) for v in cm.ravel())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "mcc": (tp * tn - fp * fn) / denom if denom else 0.0,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
    }


def classification(probs: np.ndarray, y: np.ndarray, class_names: list[str]) -> tuple[dict, dict]:
    """Metrics and details (confusion matrix, per-class errors) for class probabilities."""
    y = np.asarray(y, np.int64).reshape(-1)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    cm = confusion(y, pred, k)
    eps = 1e-12
    metrics = {
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "loss": float(-np.log(probs[np.arange(len(y)), y] + eps).mean()) if len(y) else 0.0,
    }
    metrics["error"] = 1.0 - metrics["accuracy"]
    if k == 2:
        metrics |= binary_metrics(cm)
    per_class = (cm.sum(axis=1) - np.diag(cm)).tolist()
    details = {"confusion": cm.tolist(), "class_names": list(class_names), "errors_per_class": per_class}
    return metrics, details


def regression(pred: np.ndarray, target: np.ndarray) -> tuple[dict, dict]:
    pred = np.asarray(pred, np.float64).reshape(len(pred), -1)
    target = np.asarray(target, np.float64).reshape(pred.shape)
    err = pred - target
    var = float(((target - target.mean(axis=0)) ** 2).mean())
    mse = float((err ** 2).mean())
    return {"mse": mse, "loss": mse, "mae": float(np.abs(err).mean()),
            "r2": 1.0 - mse / var if var > 0 else 0.0}, {}


def accuracy_by_group(correct: np.ndarray, groups: np.ndarray, bins: int = 12) -> dict:
    """Accuracy per group value (the Nile gap), pooled into at most `bins` ranges."""
    groups = np.asarray(groups)
    values = np.unique(groups)
    if len(values) > bins:
        edges = np.linspace(values.min(), values.max() + 1, bins + 1)
        idx = np.clip(np.searchsorted(edges, groups, side="right") - 1, 0, bins - 1)
        centers = [int((edges[i] + edges[i + 1] - 1) // 2) for i in range(bins)]
        acc = [float(correct[idx == i].mean()) if (idx == i).any() else float("nan") for i in range(bins)]
        return {"gap": centers, "accuracy": acc, "gap_lo": [int(e) for e in edges[:-1]],
                "gap_hi": [int(e) - 1 for e in edges[1:]]}
    return {"gap": values.tolist(), "accuracy": [float(correct[groups == v].mean()) for v in values],
            "gap_lo": values.tolist(), "gap_hi": values.tolist()}


def sequences(logits: np.ndarray, labels: np.ndarray, ignore: int = -100) -> tuple[dict, dict]:
    """Metrics for a label per time step: logits (N, T, K), labels (N, T) with `ignore` at padding.

    token_accuracy is over real tokens; sequence_accuracy counts a sample right only when every real
    token is; loss is the mean cross-entropy per real token (nats). details["correct"] is each
    sample's exactness (bool, N), for accuracy by length or by gap."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64).reshape(logits.shape[:-1])
    real = labels != ignore
    pred = logits.argmax(axis=-1)
    hit = (pred == labels) & real
    n_real = int(real.sum())
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, np.where(real, labels, 0)[..., None], axis=-1)[..., 0]
    exact = (hit == real).all(axis=1)
    metrics = {"token_accuracy": float(hit.sum() / n_real) if n_real else 0.0,
               "sequence_accuracy": float(exact.mean()) if len(exact) else 0.0,
               "loss": float(-(picked * real).sum() / n_real) if n_real else 0.0}
    metrics["accuracy"] = metrics["sequence_accuracy"]
    metrics["error"] = 1.0 - metrics["accuracy"]
    return metrics, {"correct": exact}


def sequences_batched(predict, x, y, mask, batch: int = 256, ignore: int = -100) -> tuple[dict, dict]:
    """`sequences` over (x, y, mask) in slices of `batch` samples, so the logits of a large
    vocabulary never exist for the whole split at once; `predict(x, mask)` gives logits."""
    tokens = hits = exact = 0
    nll = 0.0
    correct = []
    for lo in range(0, len(x), batch):
        yb = np.asarray(y[lo:lo + batch])
        m, d = sequences(predict(x[lo:lo + batch], None if mask is None else mask[lo:lo + batch]), yb, ignore)
        n = int((yb != ignore).sum())
        tokens, hits, nll = tokens + n, hits + m["token_accuracy"] * n, nll + m["loss"] * n
        exact += int(d["correct"].sum())
        correct.append(d["correct"])
    metrics = {"token_accuracy": hits / tokens if tokens else 0.0,
               "sequence_accuracy": exact / len(x) if len(x) else 0.0,
               "loss": nll / tokens if tokens else 0.0}
    metrics["perplexity"] = math.exp(min(metrics["loss"], 50.0))
    metrics["accuracy"] = metrics["token_accuracy"]
    metrics["error"] = 1.0 - metrics["accuracy"]
    return metrics, {"correct": np.concatenate(correct) if correct else np.zeros(0, bool)}
