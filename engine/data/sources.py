"""`load_dataset` and `input_shape`: the one entry point from a scenario's `[data]` table.

`source` names a loader; `options` are that loader's keyword arguments (the rest of the table).
Paths in options are relative to `base_dir`, the scenario file's folder, except those that start
with "data:", which are relative to the data folder (`data:weather/seattle-weather.csv`), so a
bundled scenario can name a file that `descent data fetch` puts there.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

from descent.engine.data.adding import ADDING_OPTIONS, load_adding
from descent.engine.data.dataset import Dataset
from descent.engine.data.folder import DATASETS, data_dir
from descent.engine.data.images import DIGITS8X8_OPTIONS, MNIST_OPTIONS, load_digits8x8, load_mnist
from descent.engine.data.nile import NILE_OPTIONS, make_nile, nile_length, nile_vocab
from descent.engine.data.line import LINE_OPTIONS, load_line
from descent.engine.data.options import Option
from descent.engine.data.reverse import REVERSE_OPTIONS, VOCAB as REVERSE_VOCAB, load_reverse
from descent.engine.data.series import SERIES_OPTIONS, load_series, series_feature_count
from descent.engine.data.tables import (CSV_OPTIONS, SPAMBASE_FEATURES, SPAMBASE_OPTIONS, csv_feature_count,
                                        load_csv, load_spambase)
from descent.engine.data.text import (SMS_SPAM_OPTIONS, SMS_WORDS_OPTIONS, TEXT_CSV_OPTIONS, check_text_options,
                                      load_sms_spam, load_sms_words, load_text_csv)
from descent.engine.data.text_lm import TEXT_LM_OPTIONS, alphabet, load_text_lm
from descent.engine.data.toy2d import TOY2D_OPTIONS, load_toy2d
from descent.engine.errors import DataMissing, SpecError

# source -> (loader, how it is called: "root" = data folder first, "path" = a file option, "" = neither,
#            the options it declares beside it)
_LOADERS: dict[str, tuple[Callable[..., Dataset], str, dict[str, Option]]] = {
    "mnist": (load_mnist, "root", MNIST_OPTIONS),
    "digits8x8": (load_digits8x8, "", DIGITS8X8_OPTIONS),
    "sms_spam": (load_sms_spam, "root", SMS_SPAM_OPTIONS),
    "sms_words": (load_sms_words, "root", SMS_WORDS_OPTIONS),
    "spambase": (load_spambase, "root", SPAMBASE_OPTIONS),
    "nile": (make_nile, "", NILE_OPTIONS),
    "csv": (load_csv, "path", CSV_OPTIONS),
    "text": (load_text_csv, "path", TEXT_CSV_OPTIONS),
    "toy2d": (load_toy2d, "", TOY2D_OPTIONS),
    "line": (load_line, "", LINE_OPTIONS),
    "adding": (load_adding, "", ADDING_OPTIONS),
    "series": (load_series, "path", SERIES_OPTIONS),
    "text_lm": (load_text_lm, "root", TEXT_LM_OPTIONS),
    "reverse": (load_reverse, "", REVERSE_OPTIONS),
}
SOURCES = tuple(_LOADERS)
REGRESSION_SOURCES = ("line", "adding", "series")     # their targets are numbers (csv: its `task` option)
SEQUENCE_SOURCES = ("sms_words",)                      # a class label per time step
PER_TOKEN_SOURCES = ("reverse",)                      # a label per output step (seq2seq)
DATA_PREFIX = "data:"


def source_options(source: str) -> dict[str, object]:
    """The options `source` accepts, in the loader's order, with its defaults
    (`inspect.Parameter.empty` = required)."""
    return {name: default for name, (_, default) in declared_options(source).items()}


def declared_options(source: str) -> dict[str, tuple[Option, object]]:
    """Each option of `source`: its declared kind and bounds, and the loader's default."""
    loader, mode, options = _loader(source)
    params = list(inspect.signature(loader).parameters.values())
    if mode == "root":
        params = params[1:]
    return {p.name: (options[p.name], p.default) for p in params}


def load_dataset(source: str, options: dict, root: Path, base_dir: Path) -> Dataset:
    """Load `source` with `options`; `root` is the data folder, `base_dir` the scenario's folder."""
    loader, mode, _ = _loader(source)
    kwargs = _checked(source, options)
    if mode == "path":
        kwargs["path"] = resolve_path(kwargs["path"], base_dir, root)
        return loader(**kwargs)
    if mode == "root":
        return loader(Path(root), **kwargs)
    return loader(**kwargs)


def input_shape(source: str, options: dict, base_dir: Path, root: Path | None = None) -> tuple:
    """The per-sample input shape `load_dataset` would give, without reading the data files
    (a user CSV's header row only; a series' file only when it names no `features`)."""
    kwargs = {**{k: v for k, v in source_options(source).items() if v is not inspect.Parameter.empty},
              **_checked(source, options)}
    if source == "mnist":
        return (1, 28, 28)
    if source == "digits8x8":
        return (1, 8, 8)
    if source == "spambase":
        return (SPAMBASE_FEATURES,)
    if source == "nile":
        return (nile_length(kwargs["gap"]),)
    if source == "csv":
        return (csv_feature_count(resolve_path(kwargs["path"], base_dir, root), kwargs["label"],
                                  kwargs["delimiter"]),)
    if source == "toy2d":
        return (2,)
    if source == "line":
        return (1,)
    if source == "adding":
        return (kwargs["length"], 2)
    if source == "text_lm":
        return (kwargs["context"],)
    if source == "reverse":
        return (2 * kwargs["max_len"] + 1,)
    if source == "series":
        features = kwargs["features"]
        path = resolve_path(kwargs["path"], base_dir, root) if features is None else Path(str(kwargs["path"]))
        return (kwargs["window"], series_feature_count(path, kwargs["time"], features, kwargs["delimiter"]))
    if source == "sms_words":
        return (kwargs["max_len"],)
    check_text_options(kwargs["features"], kwargs["vocab_size"], kwargs["max_len"])   # sms_spam, text
    return (kwargs["max_len"],) if kwargs["features"] == "sequence" else (kwargs["vocab_size"],)


def vocab_size(source: str, options: dict) -> int | None:
    """How many token ids the source's sequences use (an embedding's `vocab`), or None for non-token data."""
    kwargs = {**{k: v for k, v in source_options(source).items() if v is not inspect.Parameter.empty},
              **_checked(source, options)}
    if source == "nile":
        return len(nile_vocab(kwargs["facts"]))
    if source == "text_lm":
        return len(alphabet(kwargs["corpus"]))
    if source == "reverse":
        return len(REVERSE_VOCAB)
    if source in ("sms_spam", "text") and kwargs["features"] == "sequence" or source == "sms_words":
        return kwargs["vocab_size"]
    return None


def class_count(source: str, options: dict) -> int | None:
    """How many classes the source's labels have, known without reading data; None for the
    user's files (their label column says) and for regression."""
    kwargs = {**{k: v for k, v in source_options(source).items() if v is not inspect.Parameter.empty},
              **_checked(source, options)}
    if source == "nile":
        return int(kwargs["facts"])
    if source == "sms_words":
        return int(kwargs["vocab_size"])
    return {"mnist": 10, "digits8x8": 10, "sms_spam": 2, "spambase": 2, "reverse": len(REVERSE_VOCAB)}.get(source)


def _loader(source: str) -> tuple[Callable[..., Dataset], str, dict[str, Option]]:
    if source not in _LOADERS:
        raise SpecError("data.source", f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return _LOADERS[source]


def _checked(source: str, options: dict) -> dict:
    """A copy of `options`, after checking every key is known and every required one given."""
    accepted = source_options(source)
    for key in options:
        if key not in accepted:
            raise SpecError(f"data.{key}", f"unknown option for source {source!r}; "
                                           f"expected one of {', '.join(accepted)}")
    for key, default in accepted.items():
        if default is inspect.Parameter.empty and key not in options:
            raise SpecError(f"data.{key}", f"required for source {source!r}")
    return dict(options)


def resolve_path(path, base_dir: Path, root: Path | None = None) -> Path:
    """A `path` option as a file path: "data:REL" inside the data folder `root` (None: the
    default one), anything else relative to `base_dir`. A missing data-folder file is
    `DataMissing` with the fetch command when REL's first folder is a known dataset."""
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise SpecError("data.path", f"must be a file path, got {path!r}")
    text = str(path)
    if not text.startswith(DATA_PREFIX):
        p = Path(text).expanduser()
        return p if p.is_absolute() else Path(base_dir) / p
    rel = Path(text[len(DATA_PREFIX):])
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise SpecError("data.path", f"{text!r}: after {DATA_PREFIX!r} give a path inside the data folder, "
                                     "like data:weather/seattle-weather.csv")
    folder = data_dir(root)
    p = folder / rel
    if not p.is_file():
        name = rel.parts[0]
        how = (f"run `descent data fetch {name}`" if name in DATASETS and len(rel.parts) > 1
               else "put it there")
        raise DataMissing(f"{rel} not found in the data folder {folder}; {how} "
                          "(or point --data / $DESCENT_DATA at a folder that has it)")
    return p
