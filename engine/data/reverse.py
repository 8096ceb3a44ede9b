"""Reverse a sentence of words: a transduction with variable lengths for the seq2seq lesson.

"red fox jumps" -> "jumps fox red". Each sentence is 1..max_len distinct words (uniform length)
from a fixed list of 64, so the word to write next can be found by what it is, which attention
can learn; without attention the whole sentence must pass through one state vector (the
bottleneck of Cho et al. 2014 and Bahdanau, Cho & Bengio 2014, Fig. 2), which long sentences
overflow.

Layout for `type = "seq2seq"` (engine/seq2seq.py): x (N, 2 S + 1) int64 = [source padded to S |
BOS, reversed source, padded to S + 1]; the mask True at the real tokens of both halves;
y (N, S + 1) = reversed source, EOS, then IGNORE (-100). Vocabulary: 0 <pad>, 1 <unk> (unused),
2 <s>, 3 </s>, then the words. `extra_test["length"]` is each test sentence's word count.
"""

from __future__ import annotations

import numpy as np

from descent.engine.data.checks import whole_number
from descent.engine.data.dataset import Dataset
from descent.engine.data.options import Option

IGNORE = -100    # engine.losses.IGNORE, torch's ignore_index (not imported: that would load the kernels here)

WORDS = ("red blue green gold grey pink black white fox cat dog owl bee ant hen cow "
         "fish bird frog wolf bear deer duck goat runs jumps sings hides eats sees finds likes "
         "big small old new fast slow warm cold over under near far up down in out "
         "sun moon star rain snow wind tree leaf rock sand sea hill road home door key").split()
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
BOS, EOS = 2, 3
VOCAB = list(SPECIALS) + list(WORDS)
REVERSE_OPTIONS = {"max_len": Option("int", ge=1, le=len(WORDS)), "min_len": Option("int", ge=1, le=len(WORDS)),
                   "train_size": Option("int", ge=1), "test_size": Option("int", ge=1), "seed": Option("int", ge=0)}


def make_reverse(max_len: int, min_len: int, n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x (n, 2 S + 1) int64, mask bool, y (n, S + 1) int64, lengths (n,)), S = max_len."""
    S, first = max_len, len(SPECIALS)
    lengths = rng.integers(min_len, max_len + 1, n)
    words = np.argsort(rng.random((n, len(WORDS))), axis=1)[:, :S] + first   # distinct words per row
    pos = np.arange(S)[None, :]
    real = pos < lengths[:, None]
    src = np.where(real, words, 0)
    rev_idx = np.clip(lengths[:, None] - 1 - pos, 0, S - 1)
    rev = np.where(real, np.take_along_axis(src, rev_idx, axis=1), 0)           # (n, S)
    y = np.full((n, S + 1), IGNORE, np.int64)
    y[:, :S] = np.where(real, rev, IGNORE)
    y[np.arange(n), lengths] = EOS
    tin = np.zeros((n, S + 1), np.int64)
    tin[:, 0] = BOS
    tin[:, 1:] = rev
    x = np.concatenate([src, tin], axis=1).astype(np.int64)
    mask = np.concatenate([real, np.arange(S + 1)[None, :] <= lengths[:, None]], axis=1)
    return x, mask, y, lengths


def load_reverse(max_len: int = 40, min_len: int = 1, train_size: int = 50000, test_size: int = 2000,
                 seed: int = 0) -> Dataset:
    """Independent train and test draws from one seeded generator."""
    max_len = whole_number("data.max_len", max_len, 1)
    min_len = whole_number("data.min_len", min_len, 1)
    if min_len > max_len:
        from descent.engine.errors import SpecError

        raise SpecError("data.min_len", f"must be at most max_len ({max_len}), got {min_len}")
    rng = np.random.default_rng(whole_number("data.seed", seed, 0))
    n_train = whole_number("data.train_size", train_size, 1)
    n_test = whole_number("data.test_size", test_size, 1)
    x, mask, y, lengths = make_reverse(max_len, min_len, n_train + n_test, rng)
    cut = n_train
    return Dataset(f"reverse {min_len}-{max_len} words", "classification", x[:cut], y[:cut], x[cut:], y[cut:],
                   in_shape=(2 * max_len + 1,), n_classes=len(VOCAB), class_names=list(VOCAB),
                   mask_train=mask[:cut], mask_test=mask[cut:], vocab=list(VOCAB),
                   extra_test={"length": lengths[cut:]}, prep={"vocab": list(VOCAB), "max_len": max_len})


def words_of(ids, vocab=VOCAB) -> list[str]:
    """Token ids up to (not including) EOS or padding, as words."""
    out = []
    for i in np.asarray(ids).tolist():
        if i in (0, EOS) or i < 0:
            break
        out.append(vocab[i] if i < len(vocab) else "?")
    return out
