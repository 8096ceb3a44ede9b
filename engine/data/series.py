"""The `series` source: windows of a time-ordered CSV to forecast one column `horizon` steps on.

Sample i looks at rows t-window+1..t (every feature column) and predicts the target at row
t+horizon; its time is that target row's. The split is chronological: test samples are those
whose target time is at or after `test_from` (else the last `test_fraction` of samples), and
every training sample's target comes before the first test target, so nothing is shuffled
across the split. Scaling statistics come from the rows before that first test target only.
Targets are standardized too; `extra_test` keeps what is needed to speak in raw units:

    time (N_test,) str       target time of each test sample
    truth (N_test,) float64  raw target
    persistence (N_test,)    raw "target at t+horizon = target at t" forecast
    target_mean, target_std  0-d float64: raw = standardized * std + mean
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

import numpy as np

from descent.engine.data.checks import fraction, whole_number
from descent.engine.data.dataset import Dataset
from descent.engine.data.options import Option
from descent.engine.data.tables import column_index, read_table
from descent.engine.errors import DescentError, SpecError

# test_from is a TOML date or a number in the time column's units: "any" lets the loader check it
SERIES_OPTIONS = {"path": Option("str"), "target": Option("str"), "time": Option("str"),
                  "features": Option("array"), "window": Option("int", ge=1), "horizon": Option("int", ge=1),
                  "test_from": Option("any"), "test_fraction": Option("float", gt=0, lt=1),
                  "standardize": Option("bool"), "delimiter": Option("str")}


def load_series(path: str | os.PathLike, target: str, time: str = "date",
                features: list[str] | None = None, window: int = 7, horizon: int = 1,
                test_from=None, test_fraction: float = 0.25, standardize: bool = True,
                delimiter: str | None = None) -> Dataset:
    """A forecasting Dataset: x float32 (N, window, F), y float32 (N, 1).

    features: the input columns; by default every column but `time` whose cells are all numbers
    (the target included). test_from: a date ("2015-01-01", a TOML date) or a number in the time
    column's units; it wins over test_fraction.
    """
    path = Path(path)
    window = whole_number("data.window", window, 1)
    horizon = whole_number("data.horizon", horizon, 1)
    if not isinstance(standardize, bool):
        raise SpecError("data.standardize", f"must be true or false, got {standardize!r}")
    header, rows, lines = read_table(path, delimiter)
    tidx = column_index(header, time, path, "data.time")
    times = _times(rows, tidx, path, lines, time)
    cols = _feature_columns(header, rows, time, features, path)
    values = np.array([[_number(r[j], path, ln, header[j]) for j in cols] for r, ln in zip(rows, lines)],
                      dtype=np.float64).reshape(len(rows), len(cols))       # (R, F)
    tcol = column_index(header, target, path, "data.target")
    series = np.array([_number(r[tcol], path, ln, target) for r, ln in zip(rows, lines)])  # (R,)

    anchors = np.arange(window - 1, len(rows) - horizon)                    # row t of each sample
    if len(anchors) < 2:
        raise DescentError(f"{path}: {len(rows)} rows are too few for window {window} and horizon {horizon}")
    first_test = _first_test(times[anchors + horizon], test_from, test_fraction, path)
    if first_test == 0 or first_test == len(anchors):
        raise DescentError(f"{path}: the split leaves no {'training' if first_test == 0 else 'test'} samples")
    fit_rows = anchors[first_test] + horizon                                 # rows before the first test target
    mean, std = values[:fit_rows].mean(0), values[:fit_rows].std(0)         # (F,)
    t_mean, t_std = float(series[:fit_rows].mean()), float(series[:fit_rows].std())
    if not standardize:
        mean, std, t_mean, t_std = np.zeros_like(mean), np.ones_like(std), 0.0, 1.0
    std[std == 0] = 1.0
    t_std = t_std or 1.0
    scaled = (values - mean) / std                                           # (R, F)
    x = scaled[anchors[:, None] + np.arange(1 - window, 1)[None, :]].astype(np.float32)  # (N, W, F)
    y = ((series[anchors + horizon] - t_mean) / t_std).astype(np.float32)[:, None]       # (N, 1)

    test = anchors[first_test:]
    extra = {"time": np.array([rows[r][tidx].strip() for r in test + horizon]),
             "truth": series[test + horizon], "persistence": series[test],
             "target_mean": np.array(t_mean), "target_std": np.array(t_std)}
    return Dataset(path.stem, "regression", x[:first_test], y[:first_test], x[first_test:], y[first_test:],
                   in_shape=(window, len(cols)), n_classes=0, class_names=[], extra_test=extra)


def series_feature_count(path: str | os.PathLike, time: str = "date", features: list[str] | None = None,
                         delimiter: str | None = None) -> int:
    """How many input columns `load_series` would use (reads the file only when `features` is not given)."""
    if features is not None:
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise SpecError("data.features", f"must be a non-empty list of column names, got {features!r}")
        return len(features)
    header, rows, _ = read_table(Path(path), delimiter)
    return len(_feature_columns(header, rows, time, None, Path(path)))


def persistence_mae(series: np.ndarray, horizon: int = 1, start: int | None = None) -> float:
    """MAE of "value at r = value at r - horizon" over target rows `start`.. (default: every row
    that has a value `horizon` before it), in the series' own units."""
    series = np.asarray(series, dtype=np.float64)
    start = horizon if start is None else max(int(start), horizon)
    return float(np.mean(np.abs(series[start:] - series[start - horizon:len(series) - horizon])))


def dataset_persistence_mae(ds: Dataset) -> float:
    """The persistence MAE on a `load_series` Dataset's own test split, raw units."""
    return float(np.mean(np.abs(ds.extra_test["truth"] - ds.extra_test["persistence"])))


def to_raw(ds: Dataset, y: np.ndarray) -> np.ndarray:
    """Standardized targets or predictions of a `load_series` Dataset back in raw units."""
    return np.asarray(y, dtype=np.float64).reshape(-1) * float(ds.extra_test["target_std"]) \
        + float(ds.extra_test["target_mean"])


def _feature_columns(header, rows, time, features, path) -> list[int]:
    if features is None:
        cols = [j for j, h in enumerate(header) if h != time and all(_is_number(r[j]) for r in rows)]
    else:
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise SpecError("data.features", f"must be a non-empty list of column names, got {features!r}")
        cols = [column_index(header, f, path, "data.features") for f in features]
    if not cols:
        raise DescentError(f"{path}: no numeric feature columns")
    return cols


def _times(rows, j, path, lines, name) -> np.ndarray:
    """The time column as float64 (numbers as they are, dates as days since 1970), increasing."""
    out = np.array([_time_value(r[j].strip(), f"{path}: line {ln}, column {name!r}")
                    for r, ln in zip(rows, lines)])
    bad = np.flatnonzero(np.diff(out) <= 0)
    if len(bad):
        raise DescentError(f"{path}: line {lines[bad[0] + 1]}: column {name!r} is not increasing "
                           "(sort the rows by time)")
    return out


def _time_value(value, where: str) -> float:
    if isinstance(value, dt.datetime):
        return (value.replace(tzinfo=None) - dt.datetime(1970, 1, 1)).total_seconds() / 86400.0
    if isinstance(value, dt.date):
        return float((value - dt.date(1970, 1, 1)).days)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    if _is_number(text):
        return float(text)
    try:
        return _time_value(dt.datetime.fromisoformat(text.replace("/", "-")), where)
    except ValueError:
        raise DescentError(f"{where}: {text!r} is neither a number nor a date like 2015-01-31") from None


def _first_test(target_times: np.ndarray, test_from, test_fraction, path) -> int:
    if test_from is None:
        n_test = int(math.floor(len(target_times) * fraction("data.test_fraction", test_fraction) + 0.5))
        return len(target_times) - n_test
    if isinstance(test_from, bool):
        raise SpecError("data.test_from", f"must be a date or a number, got {test_from!r}")
    try:
        cut = _time_value(test_from, "")
    except DescentError:
        raise SpecError("data.test_from",
                        f"must be a date like 2015-01-01 or a number, got {test_from!r}") from None
    return int(np.searchsorted(target_times, cut, side="left"))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _number(text: str, path: Path, line: int, column: str) -> float:
    if not _is_number(text):
        shown = repr(text.strip()) if text.strip() else "an empty value"
        raise DescentError(f"{path}: line {line}, column {column!r}: {shown} is not a finite number")
    return float(text)
