"""Tabular datasets: Spambase and the user's own CSV files, plus the CSV reading they share
with the text loader. Errors name the file, and the line and column when a value is bad."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from descent.engine.data.dataset import Dataset
from descent.engine.data.folder import require
from descent.engine.data.options import SPLIT, Option
from descent.engine.data.split import random_split, scaled, scaling, stratified_split
from descent.engine.errors import DescentError, SpecError

SPAMBASE_FEATURES = 57
TASKS = ("classification", "regression")


SPAMBASE_OPTIONS = SPLIT


def load_spambase(root: str | os.PathLike, test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """UCI Spambase: 4,601 e-mails x 57 features, class 1 = spam; stratified split, features
    standardized with the training split's mean and std."""
    path = require("spambase", Path(root)) / "spambase.data"
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)           # (4601, 58)
    except ValueError as e:
        raise DescentError(f"{path}: not a numeric CSV table ({e})") from None
    if table.ndim != 2 or table.shape[1] != SPAMBASE_FEATURES + 1:
        raise DescentError(f"{path}: expected {SPAMBASE_FEATURES + 1} columns, found {table.shape[-1]}")
    x, y = table[:, :-1], table[:, -1].astype(np.int64)                      # (N, 57), (N,)
    train, test = stratified_split(y, test_fraction, seed)
    mean, std = scaling(x[train])
    return Dataset("spambase", "classification", scaled(x[train], mean, std), y[train], scaled(x[test], mean, std),
                   y[test], in_shape=(SPAMBASE_FEATURES,), n_classes=2, class_names=["ham", "spam"],
                   prep={"columns": [f"f{j}" for j in range(SPAMBASE_FEATURES)], "mean": mean.tolist(),
                         "std": std.tolist()})


CSV_OPTIONS = {"path": Option("str"), "label": Option("str"), "task": Option("choice", choices=TASKS),
               "delimiter": Option("str"), **SPLIT, "standardize": Option("bool")}


def load_csv(path: str | os.PathLike, label: str, task: str = "classification",
             delimiter: str | None = None, test_fraction: float = 0.25, seed: int = 0,
             standardize: bool = True) -> Dataset:
    """The user's CSV: a header row, numeric feature columns and one column named `label`.

    Classification labels (strings or numbers) become class ids in sorted order and the split is
    stratified; regression targets become float32 (N, 1). With `standardize` (the default)
    features are scaled to zero mean and unit variance with the training split's statistics,
    which the run folder keeps (data.json) so that weights can be read back in raw units; with
    `standardize = false` the model sees the raw values. `delimiter` defaults to a tab for
    `.tsv` files, else a comma.
    """
    if task not in TASKS:
        raise SpecError("data.task", f"must be one of {', '.join(TASKS)}, got {task!r}")
    path = Path(path)
    header, rows, lines = read_table(path, delimiter)
    target = column_index(header, label, path, "data.label")
    features = [j for j in range(len(header)) if j != target]
    if not features:
        raise DescentError(f"{path}: no feature columns besides {label!r}")
    x = np.empty((len(rows), len(features)), dtype=np.float64)              # (N, F)
    for i, (row, line) in enumerate(zip(rows, lines)):
        for k, j in enumerate(features):
            x[i, k] = _number(row[j], path, line, header[j])
    labels = [row[target].strip() for row in rows]
    if task == "classification":
        y, class_names = class_ids(labels, path, lines, label)
        train, test = stratified_split(y, test_fraction, seed)
    else:
        y = np.array([_number(v, path, line, label) for v, line in zip(labels, lines)],
                     dtype=np.float32)[:, None]                              # (N, 1)
        class_names = []
        train, test = random_split(len(rows), test_fraction, seed)
    if len(train) == 0 or len(test) == 0:
        raise DescentError(f"{path}: {len(rows)} rows are too few to split into train and test")
    prep: dict = {"columns": [header[j] for j in features]}
    if standardize:
        mean, std = scaling(x[train])
        x_train, x_test = scaled(x[train], mean, std), scaled(x[test], mean, std)
        prep |= {"mean": mean.tolist(), "std": std.tolist()}
    else:
        x_train, x_test = x[train].astype(np.float32), x[test].astype(np.float32)
    return Dataset(path.stem, task, x_train, y[train], x_test, y[test],
                   in_shape=(len(features),), n_classes=len(class_names), class_names=class_names, prep=prep)


def csv_feature_count(path: str | os.PathLike, label: str, delimiter: str | None = None) -> int:
    """The number of feature columns of a CSV, from its header row alone."""
    path = Path(path)
    header = read_header(path, delimiter)
    column_index(header, label, path, "data.label")
    return len(header) - 1


def default_delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is None:
        return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise SpecError("data.delimiter", f"must be one character, got {delimiter!r}")
    return delimiter


def read_header(path: Path, delimiter: str | None) -> list[str]:
    with _open(path) as f:
        try:
            header = next(csv.reader(f, delimiter=default_delimiter(path, delimiter)), None)
        except csv.Error as e:
            raise DescentError(f"{path}: cannot read the header row ({e})") from None
        except UnicodeDecodeError:
            raise DescentError(f"{path}: not UTF-8 text") from None
    if not header:
        raise DescentError(f"{path}: empty file (a header row naming the columns is needed)")
    return [h.strip() for h in header]


def read_table(path: Path, delimiter: str | None) -> tuple[list[str], list[list[str]], list[int]]:
    """(header, rows, line numbers) of a CSV with a header row; blank lines are skipped and every
    row must have as many fields as the header."""
    delimiter = default_delimiter(path, delimiter)
    rows, lines = [], []
    with _open(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise DescentError(f"{path}: empty file (a header row naming the columns is needed)")
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise DescentError(f"{path}: line {reader.line_num} has {len(row)} fields, "
                                       f"the header has {len(header)}")
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as e:
            raise DescentError(f"{path}: line {reader.line_num}: cannot parse ({e})") from None
        except UnicodeDecodeError:
            raise DescentError(f"{path}: not UTF-8 text") from None
    if not rows:
        raise DescentError(f"{path}: no data rows after the header")
    return [h.strip() for h in header], rows, lines


def column_index(header: list[str], name: str, path: Path, key: str) -> int:
    if name not in header:
        raise SpecError(key, f"column {name!r} not found in {path} (columns: {', '.join(header)})")
    return header.index(name)


def class_ids(labels: list[str], path: Path, lines: list[int], column: str) -> tuple[np.ndarray, list[str]]:
    """Label strings -> int64 ids in sorted order (numerically when every label is a number)."""
    for value, line in zip(labels, lines):
        if value == "":
            raise DescentError(f"{path}: line {line}, column {column!r}: empty label")
    names = sorted(set(labels))
    try:
        names.sort(key=float)
    except ValueError:
        pass
    if len(names) < 2:
        raise DescentError(f"{path}: column {column!r} has {len(names)} class; at least 2 are needed")
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[v] for v in labels], dtype=np.int64), names


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        shown = repr(text.strip()) if text.strip() else "an empty value"
        raise DescentError(f"{path}: line {line}, column {column!r}: {shown} is not a number") from None
    if not math.isfinite(value):
        raise DescentError(f"{path}: line {line}, column {column!r}: {text.strip()!r} is not a finite number")
    return value


def _open(path: Path):
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise DescentError(f"{path}: file not found") from None
    except OSError as e:
        raise DescentError(f"{path}: cannot open ({e.strerror or e})") from None
