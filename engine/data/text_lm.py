"""Character language-model data: a corpus as one stream of character ids, cut into windows.

Sample i of a split is the window of `context` characters starting at position i, and its
target is the same window shifted one character on, so a random batch of samples is a batch of
random contiguous windows (nanoGPT's get_batch, without replacement within an epoch). The
windows are strided views of one id array: nothing is copied until a batch is drawn.

Corpora:
- "shakespeare": Tiny Shakespeare (1,115,394 characters), split as nanoGPT's
  shakespeare_char/prepare.py does: the first 90% trains, the last 10% validates. Its
  alphabet is the file's own 65 characters, so losses compare with nanoGPT's.
- "sms": the SMS Spam Collection's messages without their labels, one message a line. The
  split is the classifier's (`load_sms_spam` defaults: 30% test, stratified, seed 0), so a
  model pretrained here has never read a message the fine-tuned classifier is tested on.

Each corpus has a fixed alphabet, written out below rather than read from the data, so the
vocabulary never depends on the split or the file's version and a saved run (data.json keeps
it) decodes the same ids forever. Characters outside it become UNKNOWN where the alphabet has
one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from descent.engine.data.dataset import Dataset
from descent.engine.data.folder import require
from descent.engine.data.options import Option
from descent.engine.errors import DescentError

UNKNOWN = "\ufffd"
CORPORA = ("shakespeare", "sms")
ALPHABETS = {
    "shakespeare": "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "sms": "\n" + "".join(chr(c) for c in range(32, 127)) + "\u00a3" + UNKNOWN,
}
KIND = "char_lm"                  # prep["kind"]: how the session and sampling know this data
EVAL_BATCHES = 200                # nanoGPT's eval_iters: validation windows = this x batch size

TEXT_LM_OPTIONS = {"corpus": Option("choice", choices=CORPORA), "context": Option("int", ge=1, le=1024),
                   "max_chars": Option("int", ge=0)}


def alphabet(corpus: str) -> list[str]:
    if corpus not in ALPHABETS:
        raise DescentError(f"unknown corpus {corpus!r}; expected one of {', '.join(CORPORA)}")
    return list(ALPHABETS[corpus])


def is_lm(ds) -> bool:
    return ds is not None and ds.prep.get("kind") == KIND


class CharCodec:
    """Text <-> ids for one alphabet; `strict` (no UNKNOWN in the alphabet) refuses unknown characters."""

    def __init__(self, vocab: list[str]):
        self.vocab = list(vocab)
        self.index = {c: i for i, c in enumerate(self.vocab)}
        self.unknown = self.index.get(UNKNOWN)
        self.table = np.full(65536, -1 if self.unknown is None else self.unknown, np.int64)
        for c, i in self.index.items():
            self.table[ord(c)] = i

    def encode(self, text: str, what: str = "the text") -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
        wide = codes >= len(self.table)
        ids = self.table[np.where(wide, 0, codes)]
        ids[wide] = -1 if self.unknown is None else self.unknown
        if self.unknown is None and (ids < 0).any():
            bad = sorted({text[i] for i in np.flatnonzero(ids < 0)})
            raise DescentError(f"{what} has characters this model's alphabet lacks: "
                               f"{''.join(bad)!r}; it knows {''.join(self.vocab)!r}")
        return ids

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def corpus_texts(root: Path, corpus: str) -> tuple[str, str]:
    """(training text, validation text) of a corpus in the data folder."""
    if corpus == "shakespeare":
        path = require("tinyshakespeare", Path(root)) / "input.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DescentError(f"{path}: not UTF-8 text") from None
        cut = int(len(text) * 0.9)                  # prepare.py: data[:int(n*0.9)]
        return text[:cut], text[cut:]
    from descent.engine.data.split import stratified_split
    from descent.engine.data.text import read_sms

    labels, texts = read_sms(require("sms_spam", Path(root)) / "SMSSpamCollection")
    train, test = stratified_split(np.array([lab == "spam" for lab in labels], np.int64), 0.3, 0)
    return "\n".join(texts[i] for i in train) + "\n", "\n".join(texts[i] for i in test) + "\n"


def windows(ids: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (N, context) strided views: N = len(ids) - context windows."""
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(ids[:-1], context), sliding_window_view(ids[1:], context)


def load_text_lm(root: str | os.PathLike, corpus: str = "shakespeare", context: int = 64,
                 max_chars: int = 0) -> Dataset:
    """A character LM dataset; `max_chars` > 0 keeps only the first that many characters of
    each split (small test runs)."""
    vocab = alphabet(corpus)
    codec = CharCodec(vocab)
    train_text, val_text = corpus_texts(Path(root), corpus)
    if max_chars:
        train_text, val_text = train_text[:max_chars], val_text[:max_chars]
    train_ids, val_ids = codec.encode(train_text, corpus), codec.encode(val_text, corpus)
    for name, ids in (("training", train_ids), ("validation", val_ids)):
        if len(ids) <= context:
            raise DescentError(f"the {corpus} {name} text has {len(ids)} characters, fewer than a window "
                               f"of context {context} + 1; lower data.context")
    x_train, y_train = windows(train_ids, context)
    x_test, y_test = windows(val_ids, context)
    return Dataset(f"{corpus} characters", "classification", x_train, y_train, x_test, y_test,
                   in_shape=(context,), n_classes=len(vocab), class_names=list(vocab), vocab=list(vocab),
                   extra_test={"unigram_entropy": unigram_entropy(train_ids, len(vocab))},
                   prep={"kind": KIND, "corpus": corpus, "context": context, "vocab": list(vocab)})


def unigram_entropy(ids: np.ndarray, k: int) -> float:
    """Entropy in nats of the character frequencies: the loss of a model that ignores context."""
    p = np.bincount(ids, minlength=k) / max(1, len(ids))
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def eval_windows(n_windows: int, count: int, seed: int) -> np.ndarray:
    """`count` fixed random window starts (sorted) for validation: the same every evaluation,
    so successive losses compare."""
    rng = np.random.default_rng([seed, 3])
    return np.sort(rng.integers(0, n_windows, size=min(count, n_windows) if count else 0))


BITS = 1.0 / math.log(2.0)        # nats -> bits
