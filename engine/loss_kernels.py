"""Loss kernels: each fills dL/dlogits and returns the mean loss (torch's reduction="mean")."""

from __future__ import annotations

import math

from .exp_fast import softmax_exp
from .jit import jit

CE_ROW_EXP = 64     # classes from which a row is a vectorised run of its own (fewer: the batch is one run)


@jit
def exp_in_place(a):
    """a <- e^a for a 1-D a: one loop, which vectorises in float32."""
    for t in range(a.size):
        a[t] = softmax_exp(a[t])


@jit
def softmax_ce(logits, labels, dlogits):
    """Mean cross-entropy of logits (N, K) against labels (N,); fills dlogits (N, K).
    A label of IGNORE (-100, torch's ignore_index) is padding: its row adds nothing and gets a zero
    gradient, and the mean is over the other rows (0.0 when there are none).
    Returns -1.0 (never a loss) if a label lies outside 0..K-1 and is not IGNORE."""
    n, k = logits.shape
    count = 0
    for i in range(n):
        if labels[i] == -100:
            continue
        if labels[i] < 0 or labels[i] >= k:
            return -1.0
        count += 1
    inv_n = 1.0 / count if count else 0.0
    # the exponentials as runs of one loop, which vectorises in float32 (softmax_exp): a long
    # row is its own run, padding rows skipped; short rows (ten classes) are shifted by their max
    # all at once, then exponentiated as one run (padding rows: e^0, zeroed afterwards)
    total = 0.0
    long_rows = k >= CE_ROW_EXP
    for i in range(n):
        if labels[i] == -100:
            for j in range(k):
                dlogits[i, j] = 0.0
            continue
        m = logits[i, 0]
        for j in range(1, k):
            m = max(m, logits[i, j])
        for j in range(k):
            dlogits[i, j] = logits[i, j] - m
        total -= dlogits[i, labels[i]]
        if long_rows:
            exp_in_place(dlogits[i])
    if not long_rows:
        exp_in_place(dlogits.reshape(n * k))
    for i in range(n):
        if labels[i] == -100:
            if not long_rows:           # the run over the batch made their zeros ones
                for j in range(k):
                    dlogits[i, j] = 0.0
            continue
        s = 0.0
        for j in range(k):
            s += dlogits[i, j]
        total += math.log(s)
        inv_s = 1.0 / s
        for j in range(k):
            dlogits[i, j] *= inv_s * inv_n
        dlogits[i, labels[i]] -= inv_n
    return total * inv_n


@jit
def bce_logits(z, t, dz):
    """Mean binary cross-entropy of logits z against targets t (same size); fills dz."""
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
def mse(pred, target, dpred):
    """Mean squared error of pred against target (same size); fills dpred."""
    n = pred.size
    total = 0.0
    for i in range(n):
        d = pred.flat[i] - target.flat[i]
        total += d * d
        dpred.flat[i] = 2.0 * d / n
    return total / n
