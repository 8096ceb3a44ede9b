"""What the teaching scenarios add to a regression evaluation, for their panels and the tests.

series (weather): `mae` in the target's own units (the model trains on standardized targets,
but a forecast is judged in degrees), `persistence_mae` on the same test samples beside it,
and `forecast` = {time, truth, pred, persistence} in raw units for the panel, at most
FORECAST_POINTS evenly spaced samples. line (one neuron): the fitted `w` and `b` of a 1 -> 1
dense model, and `lambda_max` / `lr_max` = 2 / lambda_max of the loss's Hessian from the
training x, the stability limit of plain full-batch gradient descent.
"""

from __future__ import annotations

import numpy as np

from .lessons import stability

FORECAST_POINTS = 400


def lesson_extras(source: str, ds, out: np.ndarray, n: int, trainer, lr: float) -> tuple[dict, dict]:
    """(metrics, details) to merge into the evaluation of the first `n` test samples; `out` is
    the model's output on them, `trainer` the model (its state_dict), `lr` the current rate."""
    if source == "series":
        return _series(ds, out, n)
    if source == "line":
        return _line(ds, trainer.state_dict(), lr)
    return {}, {}


def _series(ds, out, n):
    from .data.series import to_raw

    extra = ds.extra_test
    truth, persistence = extra["truth"][:n], extra["persistence"][:n]            # (n,) raw
    pred = to_raw(ds, out)[:n]                                                    # (n,) raw
    idx = np.unique(np.linspace(0, n - 1, min(n, FORECAST_POINTS)).round().astype(np.int64)) if n else []
    forecast = {"time": [str(t) for t in extra["time"][:n][idx]], "truth": truth[idx].tolist(),
                "pred": pred[idx].tolist(), "persistence": persistence[idx].tolist()}
    metrics = {"mae": float(np.mean(np.abs(pred - truth))) if n else 0.0,
               "persistence_mae": float(np.mean(np.abs(persistence - truth))) if n else 0.0}
    return metrics, {"forecast": forecast}


def _line(ds, state, lr):
    s = stability(ds.x_train[:, 0], lr)
    details = {"lambda_max": s.lambda_max, "lr_max": s.lr_max}
    w, b = state.get("0.weight"), state.get("0.bias")
    if w is not None and np.size(w) == 1 and b is not None and np.size(b) == 1 and len(state) == 2:
        details |= {"w": float(np.ravel(w)[0]), "b": float(np.ravel(b)[0])}
    return {}, details
