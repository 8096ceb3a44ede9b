"""The Nile memory test: remember a fact across a gap of filler words.

Each sample is one fact's opening, then `g` filler words, then "?":

    the longest river on earth is  and then well so ... quietly  ?      -> nile

and the model must answer at the "?" step. Openings share most of their words, so the model
has to carry the one or two distinctive words (river, mountain, largest, hottest, ...) across
the gap. Fillers never occur in an opening or an answer.
"""

from __future__ import annotations

import numpy as np

from descent.engine.data.checks import whole_number
from descent.engine.data.dataset import Dataset
from descent.engine.data.options import Option
from descent.engine.errors import SpecError

# (opening, answer): every opening is 6 words; openings and answers are all distinct.
FACTS: tuple[tuple[str, str], ...] = (
    ("the longest river on earth is", "nile"),
    ("the tallest mountain on earth is", "everest"),
    ("the largest ocean on earth is", "pacific"),
    ("the largest desert on earth is", "sahara"),
    ("the largest country on earth is", "russia"),
    ("the largest planet in space is", "jupiter"),
    ("the hottest planet in space is", "venus"),
    ("the deepest lake on earth is", "baikal"),
    ("the largest island on earth is", "greenland"),
    ("the longest wall on earth is", "china"),
    ("the largest rainforest on earth is", "amazon"),
    ("the coldest continent on earth is", "antarctica"),
    ("the smallest country on earth is", "vatican"),
    ("the largest continent on earth is", "asia"),
    ("the fastest animal on earth is", "cheetah"),
    ("the largest animal on earth is", "whale"),
)
OPENING_LEN = 6
QUESTION = "?"
FILLERS: tuple[str, ...] = (
    "and", "then", "well", "so", "we", "walked", "along", "quietly", "after", "that",
    "some", "time", "people", "talked", "about", "many", "things", "like", "weather", "music",
    "food", "friends", "later", "again", "slowly", "around", "town", "today", "really", "just",
)


def nile_length(gap: int) -> int:
    """T, the padded sequence length: opening + at most `gap` fillers + "?"."""
    return OPENING_LEN + whole_number("data.gap", gap, 0) + 1


def nile_vocab(facts: int) -> list[str]:
    """`<pad>`, `<unk>`, the words of the first `facts` openings (first-seen order), the fillers, "?"."""
    words: list[str] = []
    for opening, _ in FACTS[:facts]:
        words += [w for w in opening.split() if w not in words]
    return ["<pad>", "<unk>"] + words + list(FILLERS) + [QUESTION]


NILE_OPTIONS = {"gap": Option("int", ge=0, le=1000), "min_gap": Option("int", ge=0),
                "short_gap": Option("int", ge=0), "short_share": Option("float", ge=0, le=1),
                "facts": Option("int", ge=2, le=12), "train_size": Option("int", gt=0),
                "test_size": Option("int", gt=0), "seed": Option("int", ge=0)}


def make_nile(gap: int = 100, min_gap: int = 0, short_gap: int = 2, short_share: float = 0.0,
              facts: int = 8, train_size: int = 20000, test_size: int = 2000, seed: int = 0) -> Dataset:
    """Train gaps are uniform in [min_gap, gap], except for a `short_share` of the training
    sentences, whose gaps are uniform in [0, short_gap] (capped at gap). Test gaps are spread
    evenly over the same gap values (every one appears) and reported in `extra_test["gap"]`.
    Facts are balanced in both splits, so chance accuracy is exactly 1/facts when the size is a
    multiple of `facts`.

    Why short and long with nothing between: a tanh RNN learns a fact from the short sentences,
    where its gradient reaches the fact's words, but that memory fades within a few words, and
    the long sentences' gradient dies before it reaches the fact. Gaps of a few words teach it
    a memory that lasts instead (measured: trained on gaps 0-5 it is right at gap 50 too; with
    short gaps 0-2 beside 20-50 it learned the long ones too for 2 of 4 seeds, with 0-1 for none).
    With short gaps of 0-1 beside 20-50 it is right on the short ones and near chance on the long
    ones, while an LSTM or a GRU learns both."""
    gap = whole_number("data.gap", gap, 0)
    min_gap = whole_number("data.min_gap", min_gap, 0)
    if min_gap > gap:
        raise SpecError("data.min_gap", f"must be at most gap ({gap}), got {min_gap}")
    facts = whole_number("data.facts", facts, 2)
    if facts > len(FACTS):
        raise SpecError("data.facts", f"must be at most {len(FACTS)}, got {facts}")
    short_gap = min(whole_number("data.short_gap", short_gap, 0), gap)
    if not 0 <= short_share <= 1:
        raise SpecError("data.short_share", f"must be between 0 and 1, got {short_share}")
    train_size = whole_number("data.train_size", train_size, 1)
    test_size = whole_number("data.test_size", test_size, 1)

    vocab = nile_vocab(facts)
    index = {w: i for i, w in enumerate(vocab)}
    openings = np.array([[index[w] for w in FACTS[f][0].split()] for f in range(facts)], dtype=np.int64)
    fillers = np.array([index[w] for w in FILLERS], dtype=np.int64)
    rng = np.random.default_rng(whole_number("data.seed", seed, 0))

    train_gaps = rng.integers(min_gap, gap + 1, size=train_size)
    values = np.arange(min_gap, gap + 1)                                    # the test's gaps
    if short_share > 0:
        short = rng.permutation(train_size) < round(short_share * train_size)
        train_gaps[short] = rng.integers(0, short_gap + 1, size=int(short.sum()))
        values = np.union1d(np.arange(short_gap + 1), values)
    test_gaps = values[(np.arange(test_size) * len(values)) // test_size]  # evenly spread
    splits = []
    for n, gaps in ((train_size, train_gaps), (test_size, test_gaps)):
        order = rng.permutation(n)
        gaps = gaps[order].astype(np.int64)                                 # (N,)
        y = rng.permutation(np.arange(n) % facts).astype(np.int64)          # (N,) balanced
        x, mask = _sentences(openings[y], gaps, fillers, nile_length(gap), index[QUESTION], rng)
        splits.append((x, y, mask, gaps))
    (x_train, y_train, m_train, _), (x_test, y_test, m_test, g_test) = splits
    return Dataset("nile", "classification", x_train, y_train, x_test, y_test,
                   in_shape=(nile_length(gap),), n_classes=facts,
                   class_names=[answer for _, answer in FACTS[:facts]],
                   mask_train=m_train, mask_test=m_test, vocab=vocab, extra_test={"gap": g_test},
                   prep={"vocab": vocab, "length": nile_length(gap)})


def _sentences(openings: np.ndarray, gaps: np.ndarray, fillers: np.ndarray, T: int,
               question: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (N, T) and mask (N, T): opening, gaps[i] random fillers, "?", then padding."""
    n = len(gaps)
    steps = np.arange(T)[None, :]                                           # (1, T)
    x = fillers[rng.integers(0, len(fillers), size=(n, T))]                 # (N, T)
    x[:, :OPENING_LEN] = openings                                           # (N, 6)
    end = OPENING_LEN + gaps                                                # (N,) index of "?"
    x[np.arange(n), end] = question
    mask = steps <= end[:, None]                                            # (N, T)
    x[~mask] = 0
    return x, mask


def nile_sentence(tokens_row: np.ndarray, mask_row: np.ndarray | None, vocab: list[str]) -> str:
    """One sample as text with its filler run compressed:
    'the longest river on earth is … 97 filler words … ?'."""
    ids = np.asarray(tokens_row)
    if mask_row is not None:
        ids = ids[np.asarray(mask_row, dtype=bool)]
    filler = set(FILLERS)
    parts, run = [], 0
    for i in ids:
        word = vocab[int(i)]
        if word in filler:
            run += 1
            continue
        if run:
            parts.append(f"… {run} filler word{'s' if run != 1 else ''} …")
            run = 0
        parts.append(word)
    if run:
        parts.append(f"… {run} filler word{'s' if run != 1 else ''} …")
    return " ".join(parts)

