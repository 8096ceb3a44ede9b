"""What one training step reports, the same for both backends."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StepStats:
    loss: float
    grad_norm: float                     # global, before clipping
    param_norm: float
    grad_norms: dict[str, float]         # per tensor
    update_ratios: dict[str, float]      # |dW| / |W| per tensor
    time_grad_norms: dict[str, np.ndarray] | None   # ||dL/dh_t||, (T,), per sequence layer
    clip_scale: float = 1.0              # the factor clipping applied to the gradient (1.0: not clipped)
    # ||dL/dh_{L-1-d}|| / ||dL/dh_{L-1}|| by distance d back from the answer, (T,), per sequence layer
    time_grad_ratio: dict[str, np.ndarray] | None = None
