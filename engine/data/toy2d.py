"""TensorFlow Playground's 2-D point sets, generated here (no download): xor, circle, spiral,
gauss, plus scikit-learn's two moons.

Coordinates are Playground's (a [-6, 6] square) divided by 6, so every set fits about [-1, 1]^2
and a decision boundary can be drawn over one fixed window. `noise` is Playground's 0..0.5 scale.
Labels are int64 0/1 with exactly half of each class (xor: a quarter of the points per quadrant),
so chance is one half and the best linear separator of xor gets about two thirds.
"""

from __future__ import annotations

import numpy as np

from descent.engine.data.checks import fraction, whole_number
from descent.engine.data.dataset import Dataset
from descent.engine.data.options import SPLIT, Option
from descent.engine.data.split import stratified_split
from descent.engine.errors import SpecError

KINDS = ("xor", "circle", "spiral", "gauss", "moons")
SCALE = 6.0          # Playground's half-width
LIMITS = (-1.0, 1.0)  # the window every set fits in (before noise), for boundary plots
TOY2D_OPTIONS = {"kind": Option("choice", choices=KINDS), "n": Option("int", ge=8),
                 "noise": Option("float", ge=0, le=1), **SPLIT}


def make_toy2d(kind: str = "xor", n: int = 500, noise: float = 0.0,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 2) float32, y (n,) int64) for one of `KINDS`; n is rounded down to a multiple of 4
    (xor's quadrants) and must be at least 8."""
    if kind not in KINDS:
        raise SpecError("data.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    n = whole_number("data.n", n, 8) // 4 * 4
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= noise <= 1.0:
        raise SpecError("data.noise", f"must be a number from 0 to 1, got {noise!r}")
    rng = np.random.default_rng(whole_number("data.seed", seed, 0))
    x, y = _GENERATORS[kind](rng, n, float(noise))
    order = rng.permutation(n)
    return (x[order] / SCALE).astype(np.float32), y[order].astype(np.int64)


def load_toy2d(kind: str = "xor", n: int = 500, noise: float = 0.0, test_fraction: float = 0.5,
               seed: int = 0) -> Dataset:
    """A stratified train/test split of `make_toy2d`; coordinates are not standardized, so the
    model sees the plane the panel draws."""
    x, y = make_toy2d(kind, n, noise, seed)
    train, test = stratified_split(y, fraction("data.test_fraction", test_fraction), seed)
    return Dataset(f"toy2d-{kind}", "classification", x[train], y[train], x[test], y[test],
                   in_shape=(2,), n_classes=2, class_names=["0", "1"])


def _xor(rng, n, noise):
    # Playground pads points 0.3 away from the axes so the quadrant label is never ambiguous
    q = n // 4
    sx = np.repeat([1.0, -1.0, -1.0, 1.0], q)                       # one quadrant per quarter
    sy = np.repeat([1.0, 1.0, -1.0, -1.0], q)
    x = np.stack([sx * (rng.uniform(0, 5, n) + 0.3), sy * (rng.uniform(0, 5, n) + 0.3)], 1)
    x += rng.uniform(-5, 5, (n, 2)) * noise
    return x, (sx * sy > 0).astype(np.int64)


def _circle(rng, n, noise):
    h, radius = n // 2, 5.0
    r = np.concatenate([rng.uniform(0, radius * 0.5, h), rng.uniform(radius * 0.7, radius, n - h)])
    angle = rng.uniform(0, 2 * np.pi, n)
    x = np.stack([r * np.sin(angle), r * np.cos(angle)], 1)
    x += rng.uniform(-radius, radius, (n, 2)) * noise
    return x, (np.arange(n) < h).astype(np.int64)                   # 1 = the inner disc


def _spiral(rng, n, noise):
    h = n // 2
    parts = []
    for delta, m in ((0.0, h), (np.pi, n - h)):
        i = np.arange(m)
        r = i / m * 5
        t = 1.75 * i / m * 2 * np.pi + delta
        parts.append(np.stack([r * np.sin(t), r * np.cos(t)], 1) + rng.uniform(-1, 1, (m, 2)) * noise)
    return np.concatenate(parts), (np.arange(n) < h).astype(np.int64)


def _gauss(rng, n, noise):
    h = n // 2
    std = np.sqrt(0.5 + 3.5 * min(noise, 0.5) / 0.5)               # Playground: variance 0.5..4
    centres = np.where((np.arange(n) < h)[:, None], 2.0, -2.0)
    return centres + rng.normal(0, std, (n, 2)), (np.arange(n) < h).astype(np.int64)


def _moons(rng, n, noise):
    h = n // 2
    a, b = np.linspace(0, np.pi, h), np.linspace(0, np.pi, n - h)
    outer = np.stack([np.cos(a), np.sin(a)], 1)
    inner = np.stack([1 - np.cos(b), 0.5 - np.sin(b)], 1)
    x = np.concatenate([outer, inner]) + rng.normal(0, noise, (n, 2))
    x = (x - [0.5, 0.25]) * (SCALE / 1.6)                           # centred, about [-5, 5] wide
    return x, (np.arange(n) >= h).astype(np.int64)                  # 1 = the inner moon


_GENERATORS = {"xor": _xor, "circle": _circle, "spiral": _spiral, "gauss": _gauss, "moons": _moons}
