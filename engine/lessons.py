"""The arithmetic behind the teaching scenarios' panels, in plain NumPy.

One neuron: y = w x + b under MSE is a quadratic bowl; its Hessian comes from the data's
moments, H = 2 [[E x^2, E x], [E x, 1]], and plain gradient descent is stable exactly when
lr < 2 / lambda_max(H), because each step multiplies the error along H's top eigenvector by
1 - lr * lambda_max. For x ~ U[-1, 1] (E x = 0, E x^2 = 1/3) lambda_max = 2, so lr > 1 diverges.
Activations: a stack of dense layers with no non-linearity is one affine map (product of the
weights, bias carried through), which `collapse_linear` computes for the panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


# ---- one neuron -------------------------------------------------------------------------

def linreg_hessian(x: np.ndarray, bias: bool = True) -> np.ndarray:
    """The Hessian of mean((w x + b - y)^2) in (w, b); (2, 2), or (1, 1) without a bias."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if not bias:
        return np.array([[2.0 * np.mean(x * x)]])
    m1, m2 = np.mean(x), np.mean(x * x)
    return 2.0 * np.array([[m2, m1], [m1, 1.0]])


def lambda_max(hessian: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(hessian)[-1])


@dataclass(frozen=True)
class Stability:
    """Plain GD on a quadratic: the largest stable rate and what `lr` does along the top direction."""
    lambda_max: float
    lr_max: float           # 2 / lambda_max
    lr: float
    factor: float           # |1 - lr * lambda_max|: the error's growth per step, stable when < 1

    @property
    def diverges(self) -> bool:
        return self.factor > 1.0

    def explain(self) -> str:
        verdict = (f"diverges: the error grows x{self.factor:.3g} per step" if self.diverges
                   else f"converges: the error shrinks x{self.factor:.3g} per step")
        return (f"lambda_max {self.lambda_max:.4g}, stable below lr 2/lambda_max = {self.lr_max:.4g}; "
                f"lr {self.lr:.4g} {verdict}")


def stability(x: np.ndarray, lr: float, bias: bool = True) -> Stability:
    lam = lambda_max(linreg_hessian(x, bias))
    return Stability(lam, 2.0 / lam, float(lr), abs(1.0 - lr * lam))


def least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(w*, b*) minimising mean((w x + b - y)^2)."""
    a = np.stack([np.asarray(x, np.float64).reshape(-1), np.ones(np.size(x))], 1)   # (N, 2)
    (w, b), *_ = np.linalg.lstsq(a, np.asarray(y, np.float64).reshape(-1), rcond=None)
    return float(w), float(b)


def mse_and_grad(x: np.ndarray, y: np.ndarray, w: float, b: float) -> tuple[float, float, float]:
    """(loss, dL/dw, dL/db) of mean((w x + b - y)^2)."""
    x = np.asarray(x, np.float64).reshape(-1)
    r = w * x + b - np.asarray(y, np.float64).reshape(-1)                # (N,)
    return float(np.mean(r * r)), float(2 * np.mean(r * x)), float(2 * np.mean(r))


def gd_path(x: np.ndarray, y: np.ndarray, lr: float, steps: int, w0: float = 0.0,
            b0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch plain GD: ((steps+1, 2) path of (w, b), (steps+1,) losses). Stops early,
    padding with inf, once the loss overflows."""
    path = np.full((steps + 1, 2), np.inf)
    losses = np.full(steps + 1, np.inf)
    w, b = float(w0), float(b0)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            loss, gw, gb = mse_and_grad(x, y, w, b)
            path[k], losses[k] = (w, b), loss
            if not np.isfinite(loss):
                break
            w, b = w - lr * gw, b - lr * gb
    return path, losses


def mse_grid(x: np.ndarray, y: np.ndarray, w_lim: tuple[float, float], b_lim: tuple[float, float],
             cols: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MSE(w, b) at cell centres: ((rows, cols) loss, (cols,) w axis, (rows,) b axis). Row 0 is
    the largest b, so the array reads like the screen (b up)."""
    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    ws = w_lim[0] + (np.arange(cols) + 0.5) * (w_lim[1] - w_lim[0]) / cols          # (C,)
    bs = b_lim[1] - (np.arange(rows) + 0.5) * (b_lim[1] - b_lim[0]) / rows          # (R,)
    # mean((w x + b - y)^2) expanded in the data's moments: no (R, C, N) array
    sxx, sx, sy, sxy, syy = x @ x / len(x), x.mean(), y.mean(), x @ y / len(x), y @ y / len(x)
    W, B = ws[None, :], bs[:, None]
    loss = W * W * sxx + 2 * W * B * sx + B * B - 2 * W * sxy - 2 * B * sy + syy     # (R, C)
    return np.maximum(loss, 0.0), ws, bs


def surface_window(w_star: float, b_star: float, points: np.ndarray | None = None,
                   half: float = 1.5) -> tuple[tuple[float, float], tuple[float, float]]:
    """(w_lim, b_lim) centred on the minimum, at least +-`half` wide and widened to hold the
    finite `points` ((K, 2) of (w, b)) so the path stays in view."""
    hw = hb = half
    if points is not None and len(points):
        p = np.asarray(points, np.float64)
        p = p[np.all(np.isfinite(p), axis=1)]
        if len(p):
            hw = max(hw, float(np.max(np.abs(p[:, 0] - w_star))) * 1.1)
            hb = max(hb, float(np.max(np.abs(p[:, 1] - b_star))) * 1.1)
    return (w_star - hw, w_star + hw), (b_star - hb, b_star + hb)


# ---- activations ------------------------------------------------------------------------

def collapse_linear(layers: list[tuple[np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray]:
    """The single affine map (W (out, in), b (out,)) of dense layers with no activation, given
    input to output in torch layout (W (out, in)); a None bias counts as zero."""
    if not layers:
        raise ValueError("collapse_linear needs at least one layer")
    W = np.eye(np.asarray(layers[0][0]).shape[1])
    b = np.zeros(W.shape[0])
    for weight, bias in layers:
        weight = np.asarray(weight, np.float64)
        if weight.ndim != 2 or weight.shape[1] != W.shape[0]:
            raise ValueError(f"layer weight {weight.shape} does not take {W.shape[0]} inputs")
        W, b = weight @ W, weight @ b                                    # (out, in), (out,)
        if bias is not None:
            b = b + np.asarray(bias, np.float64).reshape(-1)
    return W, b


def boundary_grid(predict_fn: Callable[[np.ndarray], np.ndarray], xlim: tuple[float, float],
                  ylim: tuple[float, float], cols: int, rows: int) -> np.ndarray:
    """P(class 1) at the centre of each of (rows, cols) cells over the plane, row 0 at the top
    (largest y). `predict_fn` takes (N, 2) float32 points and returns (N,) P(class 1), (N, 1)
    sigmoid outputs, or (N, K) class probabilities (column 1 is used)."""
    xs = xlim[0] + (np.arange(cols) + 0.5) * (xlim[1] - xlim[0]) / cols                 # (C,)
    ys = ylim[1] - (np.arange(rows) + 0.5) * (ylim[1] - ylim[0]) / rows                 # (R,)
    pts = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), -1).reshape(-1, 2)    # (R*C, 2)
    p = np.asarray(predict_fn(pts.astype(np.float32)), dtype=np.float64)
    if p.ndim == 2:
        p = p[:, 1] if p.shape[1] > 1 else p[:, 0]
    if p.shape != (rows * cols,):
        raise ValueError(f"predict_fn returned shape {p.shape} for {rows * cols} points")
    return p.reshape(rows, cols)


# ---- clipping ---------------------------------------------------------------------------

def clip_summary(norms: np.ndarray, clip_norm: float) -> tuple[np.ndarray, float, float]:
    """(norms after clipping, share of steps clipped, max/median norm ratio) for global gradient
    norms before clipping; clip_norm 0 = off. Non-finite norms count as clipped."""
    norms = np.asarray(norms, np.float64)
    if clip_norm > 0:
        after = np.where(np.isfinite(norms), np.minimum(norms, clip_norm), clip_norm)
        share = float(np.mean(~(norms <= clip_norm))) if len(norms) else 0.0
    else:
        after, share = norms.copy(), 0.0
    finite = norms[np.isfinite(norms)]
    med = float(np.median(finite)) if len(finite) else 0.0
    ratio = float(np.max(finite) / med) if med > 0 else float("inf")
    return after, share, ratio
