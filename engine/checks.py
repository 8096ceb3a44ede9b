"""Checks that a scenario can run, made when it loads (and by `descent validate`), not minutes
into training: the model's output against the task, classes and loss; the data file's content;
the panel against the data source; how deep the model nests.

Pure functions raising `SpecError` keyed like the scenario (`model.layers[2].units`,
`training.loss`, `data.path`); the loader adds the file and line.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

from descent.engine.errors import DescentError, SpecError

MAX_NESTING = 32    # residual blocks inside residual blocks; far deeper than any real model
# panel -> the data sources it can show (a missing panel means every source)
PANEL_SOURCES = {"digits": ("digits8x8", "mnist"), "nile": ("nile",), "spam": ("sms_spam", "text"),
                 "finetune": ("sms_spam", "text"),
                 "seq2seq": ("reverse",)}


def resolved_loss(loss_name: str, task: str, units: int) -> str:
    """The loss "auto" stands for, as the session picks it."""
    if loss_name != "auto":
        return loss_name
    if task == "regression":
        return "mse"
    return "bce" if units == 1 else "cross_entropy"


def check_output_fits(out_shape: tuple, task: str, n_classes: int, loss_name: str, last_layer_key: str,
                      target_width: int = 1, file: str | None = None, per_token: bool = False) -> str:
    """Raise unless a model whose last layer (`last_layer_key`, e.g. "model.layers[2]") gives
    `out_shape` per sample can be trained with `loss_name` on the task; return the loss used.

    Classification needs one unit per class (cross_entropy), or one unit and two classes (bce);
    regression needs `target_width` units and mse. With `per_token` (a label per output step) an
    output (T, K) is checked as K units."""
    units_key = f"{last_layer_key}.units"
    if task == "sequence":
        if len(out_shape) != 2 or loss_name not in ("auto", "cross_entropy"):
            raise SpecError(last_layer_key, f"a label per time step needs an output per step (T, {n_classes}) and "
                                            f"cross_entropy; the model gives {tuple(out_shape)}", file)
        if out_shape[1] != n_classes:
            raise SpecError(units_key, f"the model gives {out_shape[1]} values per step but there are {n_classes} "
                                       f"classes; set units = {n_classes}", file)
        return "cross_entropy"
    if per_token and len(out_shape) == 2:
        out_shape = tuple(out_shape[1:])
    if len(out_shape) != 1:
        raise SpecError(last_layer_key, f"the model's output has shape {tuple(out_shape)}; it must be flat "
                                        f"(end with a dense layer, after a flatten)", file)
    units = int(out_shape[0])
    loss = resolved_loss(loss_name, task, units)
    if task == "regression":
        if loss != "mse":
            raise SpecError("training.loss", f'"{loss_name}" needs a classification task; use "mse" or "auto"', file)
        if units != target_width:
            raise SpecError(units_key, f"the model gives {units} values per sample but the target has "
                                       f"{target_width}; set units = {target_width}", file)
        return loss
    if loss == "mse":
        raise SpecError("training.loss", f'"mse" is for regression, and this is a classification task '
                                         f'({n_classes} classes); use "cross_entropy" or "auto"', file)
    if loss == "bce":
        if n_classes != 2:
            if loss_name == "auto":    # "auto" chose bce because of the single unit: the unit count is wrong
                raise SpecError(units_key, f"1 unit can only tell 2 classes apart, and the data has {n_classes}; "
                                           f"set units = {n_classes}", file)
            raise SpecError("training.loss", f'"bce" is for 2 classes, and the data has {n_classes}; '
                                             f'use "cross_entropy" or "auto"', file)
        if units != 1:
            raise SpecError(units_key, f'"bce" needs 1 output unit (the probability of class 1), got {units}', file)
        return loss
    if units != n_classes:
        hint = ' (or loss = "bce" with 2 classes)' if units == 1 else ""
        raise SpecError(units_key, f"the model gives {units} values per sample but the data has {n_classes} "
                                   f"classes; set units = {n_classes}{hint}", file)
    return loss


def output_layer_key(layers, key: str = "model.layers") -> str:
    """The key of the layer that sets the output width: the last one with `units` (an activation
    after it keeps the width), else the last layer."""
    at = next((i for i in range(len(layers) - 1, -1, -1) if "units" in layers[i]), len(layers) - 1)
    if at != len(layers) - 1 and any(layers[j].get("type") in ("flatten", "dense", "residual")
                                     for j in range(at + 1, len(layers))):
        at = len(layers) - 1
    return f"{key}[{at}]"


def check_panel(panel: str, source: str, task: str, file: str | None = None) -> None:
    """A panel shows its own kind of data: digits images, Nile sentences, typed messages."""
    allowed = PANEL_SOURCES.get(panel)
    if allowed is not None and source not in allowed:
        raise SpecError("scenario.panel", f'"{panel}" shows {" or ".join(allowed)} data, and this scenario\'s '
                                          f'source is "{source}"; use panel = "generic"', file)
    if panel in ("spam", "finetune") and task != "classification":
        raise SpecError("scenario.panel", '"spam" needs a classification task; use panel = "generic"', file)


def check_nesting(layers, key: str = "model.layers", limit: int = MAX_NESTING, file: str | None = None) -> None:
    """Residual blocks nested deeper than `limit` (checked without recursion, so 400 levels give
    this error and not a RecursionError)."""
    todo = [(layers, key, 0)]
    while todo:
        items, at, depth = todo.pop()
        if depth > limit:
            raise SpecError(at, f"layers nest {depth} levels deep; at most {limit} are allowed", file)
        if isinstance(items, (list, tuple)):
            for i, layer in enumerate(items):
                inner = layer.get("layers") if hasattr(layer, "get") else None
                if inner is not None:
                    todo.append((inner, f"{at}[{i}].layers", depth + 1))


def check_regular_file(path: str | os.PathLike, key: str = "data.path", file: str | None = None) -> Path:
    """`path` if it is a regular file; else an error that says what it is instead (a folder is not
    "file not found", nor is /dev/zero, which would be read forever)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise SpecError(key, f"file not found: {p}", file) from None
    except NotADirectoryError:
        raise SpecError(key, f"{p}: a part of this path is a file, not a folder", file) from None
    except OSError as e:
        raise SpecError(key, f"cannot read {p}: {os.strerror(e.errno) if e.errno else e}", file) from None
    if stat.S_ISDIR(mode):
        raise SpecError(key, f"{p} is a folder, not a file", file)
    if not stat.S_ISREG(mode):
        raise SpecError(key, f"{p} is not a regular file (a device or a pipe)", file)
    return p


# --- data content ----------------------------------------------------------------------------


def check_csv(path: str | os.PathLike, label: str, task: str = "classification", delimiter: str | None = None,
              test_fraction: float = 0.25, seed: int = 0, file: str | None = None) -> int:
    """Read the CSV as `load_csv` would and raise a SpecError (`data.path` or `data.label`, the
    CSV's path and line in the message) for anything that would stop training; return the
    number of classes (0 for regression)."""
    from descent.engine.data.tables import TASKS, read_table

    if task not in TASKS:
        raise SpecError("data.task", f"must be one of {', '.join(TASKS)}, got {task!r}", file)
    p = check_regular_file(path, "data.path", file)
    try:
        header, rows, lines = read_table(p, delimiter)
    except SpecError as e:
        raise SpecError(e.key, e.message, file) from None
    except DescentError as e:    # ragged rows, bad UTF-8, no rows: the file's content, so data.path
        raise SpecError("data.path", str(e), file) from None
    return check_table(p, header, rows, lines, label, task, test_fraction, seed, file)


def check_table(path: Path, header: list[str], rows: list[list[str]], lines: list[int], label: str,
                task: str, test_fraction: float = 0.25, seed: int = 0, file: str | None = None) -> int:
    """The checks of `check_csv` on a table already read (header, rows, their line numbers)."""
    if label not in header:
        raise SpecError("data.label", f"column {label!r} not found in {path} (columns: {', '.join(header)})", file)
    target = header.index(label)
    features = [j for j in range(len(header)) if j != target]
    if not features:
        raise SpecError("data.label", f"{path} has no feature columns besides {label!r}", file)
    for row, line in zip(rows, lines):
        for j in features:
            if not _finite(row[j]):
                raise SpecError("data.path", f"{path}: line {line}, column {header[j]!r}: "
                                             f"{_shown(row[j])} is not a finite number", file)
    labels = [row[target].strip() for row in rows]
    if task == "regression":
        for value, line in zip(labels, lines):
            if not _finite(value):
                raise SpecError("data.label", f"{path}: line {line}: the regression target {label!r} is "
                                              f"{_shown(value)}, not a number (for classes, task = \"classification\")",
                                file)
        classes = None
    else:
        for value, line in zip(labels, lines):
            if not value:
                raise SpecError("data.label", f"{path}: line {line}: empty label in column {label!r}", file)
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise SpecError("data.label", f"{path}: column {label!r} holds {len(classes)} class "
                                          f"({', '.join(classes) or 'none'}); at least 2 are needed", file)
    check_split(path, len(rows), labels if classes else None, test_fraction, seed, file)
    return len(classes) if classes else 0


def check_text_table(path: str | os.PathLike, text_column: str, label: str, delimiter: str | None = None,
                     test_fraction: float = 0.3, seed: int = 0, file: str | None = None) -> int:
    """A text dataset: both columns present, no empty texts, 2 classes at least, rows to split;
    returns the number of classes."""
    from descent.engine.data.tables import read_table

    p = check_regular_file(path, "data.path", file)
    try:
        header, rows, lines = read_table(p, delimiter)
    except DescentError as e:
        raise SpecError("data.path", str(e), file) from None
    for key, name in (("data.text_column", text_column), ("data.label", label)):
        if name not in header:
            raise SpecError(key, f"column {name!r} not found in {p} (columns: {', '.join(header)})", file)
    t, y = header.index(text_column), header.index(label)
    for row, line in zip(rows, lines):
        if not row[t].strip():
            raise SpecError("data.path", f"{p}: line {line}: empty text in column {text_column!r}", file)
        if not row[y].strip():
            raise SpecError("data.label", f"{p}: line {line}: empty label in column {label!r}", file)
    labels = [row[y].strip() for row in rows]
    if len(set(labels)) < 2:
        raise SpecError("data.label", f"{p}: column {label!r} holds {len(set(labels))} class; at least 2 are needed",
                        file)
    check_split(p, len(rows), labels, test_fraction, seed, file)
    return len(set(labels))


def data_classes(source: str, options: dict, base_dir: Path) -> int | None:
    """Read the user's data file of a `csv` or `text` source as its loader would (every check
    above) and return its class count (0 for regression); None for the other sources."""
    import inspect

    from descent.engine.data.sources import resolve_path, source_options

    if source not in ("csv", "text"):
        return None
    kw = {**{k: v for k, v in source_options(source).items() if v is not inspect.Parameter.empty}, **options}
    path = resolve_path(kw["path"], base_dir)
    if source == "csv":
        return check_csv(path, kw["label"], kw["task"], kw["delimiter"], kw["test_fraction"], kw["seed"])
    return check_text_table(path, kw["text_column"], kw["label"], kw["delimiter"], kw["test_fraction"], kw["seed"])


def check_split(path: Path, n_rows: int, labels: list[str] | None, test_fraction: float, seed: int,
                file: str | None = None) -> None:
    """Both splits non-empty, computed by the very split functions the loaders use."""
    import numpy as np

    from descent.engine.data.split import random_split, stratified_split

    if labels is None:
        train, test = random_split(n_rows, test_fraction, seed)
    else:
        names = {n: i for i, n in enumerate(sorted(set(labels)))}
        train, test = stratified_split(np.array([names[v] for v in labels]), test_fraction, seed)
    if len(train) == 0 or len(test) == 0:
        raise SpecError("data.path", f"{path}: {n_rows} rows are too few to split into train and test "
                                     f"(test_fraction {test_fraction})", file)


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _shown(text: str) -> str:
    return repr(text.strip()) if text.strip() else "an empty value"
