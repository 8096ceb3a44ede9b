"""Loss kernels: each fills dL/dlogits and returns the mean loss (torch's reduction="mean")."""

from __future__ import annotations

import math

from .exp_fast import softmax_exp
from .jit import jit

CE_BLOCK = 4096     # logits a block of rows holds (16 KB in float32): its three passes stay in L1
CE_ROW_EXP = 64     # classes from which a row's own exponentials vectorise (fewer: a block's run at once)


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
    # three passes over a block of rows, so that the exponentials run as one flat loop (softmax_exp
    # vectorises in float32; rows of ten classes would not) on values still in cache: shift by the
    # row max, exponentiate, normalise
    total = 0.0
    rows = max(1, CE_BLOCK // k)
    for r0 in range(0, n, rows):
        # views of the block, indexed from 0: no wraparound checks in the loops
        z, d, y = logits[r0:r0 + rows], dlogits[r0:r0 + rows], labels[r0:r0 + rows]
        for i in range(z.shape[0]):
            if y[i] == -100:
                for j in range(k):
                    d[i, j] = 0.0
                continue
            m = z[i, 0]
            for j in range(1, k):
                m = max(m, z[i, j])
            for j in range(k):
                d[i, j] = z[i, j] - m
            total -= d[i, y[i]]
        if k >= CE_ROW_EXP:             # rows long enough to vectorise: padding rows skipped
            for i in range(z.shape[0]):
                if y[i] != -100:
                    row = d[i]
                    for j in range(k):
                        row[j] = softmax_exp(row[j])
        else:                           # short rows: the block as one run (padding: e^0, zeroed below)
            flat = d.reshape(d.size)
            for t in range(flat.size):
                flat[t] = softmax_exp(flat[t])
        for i in range(z.shape[0]):
            if y[i] == -100:
                for j in range(k):
                    d[i, j] = 0.0
                continue
            s = 0.0
            for j in range(k):
                s += d[i, j]
            total += math.log(s)
            inv_s = 1.0 / s
            for j in range(k):
                d[i, j] *= inv_s * inv_n
            d[i, y[i]] -= inv_n
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
