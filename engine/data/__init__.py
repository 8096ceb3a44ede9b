"""Datasets for descent: the data folder and `fetch`, the loaders, text vectorizing and the
Nile memory test. NumPy and the standard library only (scikit-learn lazily, for its digits).

| module | holds |
|---|---|
| `folder.py` | `DATA_ENV`, `data_dir`, `DATASETS` (files, SHA-256, sources), `require` |
| `fetch.py` | `fetch`: verified, atomic downloads |
| `dataset.py` | `Dataset` |
| `split.py` | `stratified_split`, `random_split`, `standardize` |
| `images.py` | `load_mnist` (IDX files), `load_digits8x8` |
| `text.py` | `tokenize`, `build_vocab`, `TextEncoder`, `load_sms_spam`, `load_text_csv` |
| `tables.py` | `load_spambase`, `load_csv` and the CSV reading shared with `text.py` |
| `nile.py` | `make_nile`, `nile_sentence` |
| `toy2d.py`, `line.py`, `adding.py` | generated lesson data: Playground's 2-D sets, y = x, the adding problem |
| `reverse.py` | `load_reverse`: sentences of distinct words and their reversal, laid out for the seq2seq layer |
| `series.py` | `load_series` (windows of a time-ordered CSV, chronological split), persistence, `to_raw` |
| `text_lm.py` | `load_text_lm`: a character LM's windows (Tiny Shakespeare 90/10, SMS messages), fixed alphabets, `CharCodec` |
| `sources.py` | `load_dataset`, `input_shape`: the entry point from a scenario's `[data]` table |
"""

from descent.engine.data.dataset import Dataset
from descent.engine.data.fetch import fetch
from descent.engine.data.folder import DATA_ENV, DATASETS, DatasetInfo, data_dir, require
from descent.engine.data.images import load_digits8x8, load_mnist, read_idx
from descent.engine.data.nile import FACTS, FILLERS, make_nile, nile_sentence
from descent.engine.data.sources import SOURCES, class_count, input_shape, load_dataset, source_options, vocab_size
from descent.engine.data.split import random_split, standardize, stratified_split
from descent.engine.data.tables import load_csv, load_spambase
from descent.engine.data.text import TextEncoder, build_vocab, load_sms_spam, load_text_csv, tokenize

__all__ = [
    "DATA_ENV", "DATASETS", "FACTS", "FILLERS", "SOURCES", "Dataset", "DatasetInfo", "TextEncoder",
    "build_vocab", "class_count", "data_dir", "fetch", "input_shape", "load_csv", "load_dataset", "load_digits8x8",
    "load_mnist", "load_sms_spam", "load_spambase", "load_text_csv", "make_nile", "nile_sentence", "vocab_size",
    "random_split", "read_idx", "require", "source_options", "standardize", "stratified_split",
    "tokenize",
]
