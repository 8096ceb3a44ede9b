"""The one-neuron lesson's data: pairs (x, x) with x evenly spaced over a range, in raw units.

Evenly spaced rather than random so that the data's moments, and with them the loss's Hessian
H = 2 [[E x^2, E x], [E x, 1]], are exact: on "-1..1" E x = 0 and lambda_max is exactly 2, so
plain full-batch gradient descent converges for every lr < 1 and diverges above it. Features
are not standardized: the lesson (and the seed's "0..99" range) is about raw x.
"""

from __future__ import annotations

import numpy as np

from descent.engine.data.checks import whole_number
from descent.engine.data.dataset import Dataset
from descent.engine.data.options import Option
from descent.engine.errors import SpecError

X_RANGES = ("-1..1", "0..1", "0..9", "0..99")
LINE_OPTIONS = {"x_range": Option("str"), "n": Option("int", ge=2), "slope": Option("float"),
                "intercept": Option("float"), "seed": Option("int", ge=0)}


def parse_range(text) -> tuple[float, float]:
    """'-1..1' -> (-1.0, 1.0); any 'LOW..HIGH' with LOW < HIGH is accepted."""
    try:
        low, high = (float(v) for v in str(text).split(".."))
    except ValueError:
        raise SpecError("data.x_range", f"must look like '-1..1' (one of {', '.join(X_RANGES)}), "
                                        f"got {text!r}") from None
    if not low < high:
        raise SpecError("data.x_range", f"needs LOW < HIGH, got {text!r}")
    return low, high


def load_line(x_range: str = "-1..1", n: int = 256, slope: float = 1.0, intercept: float = 0.0,
              seed: int = 0) -> Dataset:
    """Training x: n evenly spaced points over x_range, shuffled by `seed`; test x: the n - 1
    midpoints between them. y = slope * x + intercept, float32 (N, 1); x float32 (N, 1)."""
    low, high = parse_range(x_range)
    n = whole_number("data.n", n, 2)
    for key, v in (("data.slope", slope), ("data.intercept", intercept)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SpecError(key, f"must be a number, got {v!r}")
    rng = np.random.default_rng(whole_number("data.seed", seed, 0))
    x_train = rng.permutation(np.linspace(low, high, n))
    x_test = np.linspace(low, high, n)[:-1] + (high - low) / (2 * (n - 1))
    pair = lambda x: (x[:, None].astype(np.float32),                        # noqa: E731
                      (slope * x + intercept)[:, None].astype(np.float32))
    (xa, ya), (xb, yb) = pair(x_train), pair(x_test)
    return Dataset(f"line {x_range}", "regression", xa, ya, xb, yb, in_shape=(1,), n_classes=0,
                   class_names=[])
