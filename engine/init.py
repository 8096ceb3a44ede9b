"""Weight initialisations beyond each layer's PyTorch default: the recurrent-weight options.

`orthogonal` follows `torch.nn.init.orthogonal_` (QR of a Gaussian matrix, signs fixed by R's
diagonal so the result is Haar-distributed) times `scale`, so every singular value is `scale`.
A recurrent weight of scale s multiplies the state by s per step along every direction, which
is what makes s > 1 explode and s < 1 vanish over long sequences (Pascanu et al. 2013).
"""

from __future__ import annotations

import numpy as np

RECURRENT_INITS = ("default", "orthogonal")


def orthogonal(rng: np.random.Generator, shape: tuple, scale: float = 1.0,
               dtype=np.float64) -> np.ndarray:
    """A (rows, cols...) array whose (rows, prod(cols)) view has orthonormal rows or columns
    (whichever are fewer), times `scale`."""
    if len(shape) < 2:
        raise ValueError(f"orthogonal init needs at least 2 dimensions, got shape {shape}")
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.standard_normal((rows, cols))                    # (rows, cols)
    if rows < cols:
        a = a.T                                              # (cols, rows): QR wants tall
    q, r = np.linalg.qr(a)                                   # q (max, min) orthonormal columns
    q *= np.sign(np.diag(r))                                 # makes the draw uniform (Haar)
    if rows < cols:
        q = q.T
    return (q * scale).reshape(shape).astype(dtype)


def recurrent_weight(rng: np.random.Generator, shape: tuple, hidden: int, init: str = "default",
                     scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    """A `weight_hh` of shape (G*H, H) for G gate blocks: PyTorch's U(-1/sqrt(H), 1/sqrt(H)), or
    one orthogonal (H, H) block per gate (as Keras does), either times `scale`."""
    if init not in RECURRENT_INITS:
        raise ValueError(f"recurrent init must be one of {', '.join(RECURRENT_INITS)}, got {init!r}")
    if shape[0] % hidden or shape[1] != hidden:
        raise ValueError(f"weight_hh shape {shape} is not (G*{hidden}, {hidden})")
    if init == "default":
        bound = 1.0 / np.sqrt(hidden)
        return (rng.uniform(-bound, bound, shape) * scale).astype(dtype)
    blocks = [orthogonal(rng, (hidden, hidden), scale) for _ in range(shape[0] // hidden)]
    return np.concatenate(blocks, axis=0).astype(dtype)
