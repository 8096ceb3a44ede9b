"""The Nile memory test generator."""

import numpy as np
import pytest

from descent.engine.data import FACTS, FILLERS, make_nile, nile_sentence
from descent.engine.errors import SpecError


@pytest.fixture(scope="module")
def nile():
    return make_nile(gap=20, min_gap=3, facts=6, train_size=1200, test_size=360, seed=11)


def test_fact_table_is_unambiguous():
    openings = [o for o, _ in FACTS]
    answers = [a for _, a in FACTS]
    assert len(FACTS) >= 12
    assert len(set(openings)) == len(openings) and len(set(answers)) == len(answers)
    assert all(len(o.split()) == 6 and o.startswith("the ") and o.endswith(" is") for o in openings)
    fact_words = {w for o in openings for w in o.split()} | set(answers)
    assert 25 <= len(set(FILLERS)) == len(FILLERS) and not fact_words & set(FILLERS)
    assert FACTS[0] == ("the longest river on earth is", "nile")


def test_shapes_classes_and_vocab(nile):
    T = 6 + 20 + 1
    assert nile.in_shape == (T,) and nile.x_train.shape == (1200, T) and nile.x_test.shape == (360, T)
    assert nile.x_train.dtype == np.int64 and nile.mask_train.dtype == np.bool_
    assert nile.n_classes == 6 and nile.class_names == [a for _, a in FACTS[:6]]
    assert nile.vocab[:2] == ["<pad>", "<unk>"] and len(set(nile.vocab)) == len(nile.vocab)
    assert nile.x_train.max() < len(nile.vocab) and "?" in nile.vocab


@pytest.mark.parametrize("split", ["train", "test"])
def test_each_sample_is_opening_fillers_question(nile, split):
    x, y, mask = getattr(nile, f"x_{split}"), getattr(nile, f"y_{split}"), getattr(nile, f"mask_{split}")
    vocab = np.array(nile.vocab)
    lengths = mask.sum(axis=1)
    assert np.array_equal(mask, np.arange(x.shape[1]) < lengths[:, None])     # right padding
    assert not x[~mask].any()
    for row, label, n in zip(x, y, lengths):
        words = list(vocab[row[:n]])
        assert " ".join(words[:6]) == FACTS[label][0]
        assert words[-1] == "?" and set(words[6:-1]) <= set(FILLERS)


def test_gaps_in_range_and_every_test_gap_present(nile):
    train_gaps = nile.mask_train.sum(axis=1) - 7
    test_gaps = nile.mask_test.sum(axis=1) - 7
    assert train_gaps.min() >= 3 and train_gaps.max() <= 20
    assert set(train_gaps.tolist()) == set(range(3, 21))        # uniform: 1200 draws hit all 18
    assert np.array_equal(nile.extra_test["gap"], test_gaps)
    counts = np.bincount(test_gaps, minlength=21)[3:]
    assert counts.min() == counts.max() == 20                     # 360 spread evenly over 18 gaps


def test_every_fact_appears_and_chance_is_one_over_facts(nile):
    for y in (nile.y_train, nile.y_test):
        counts = np.bincount(y, minlength=6)
        assert (counts > 0).all() and counts.max() / len(y) == pytest.approx(1 / 6)


def test_same_seed_same_data_other_seed_different():
    small = dict(gap=10, train_size=100, test_size=40)
    a, b, c = make_nile(**small, seed=1), make_nile(**small, seed=1), make_nile(**small, seed=2)
    for field in ("x_train", "y_train", "mask_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, c.x_train)


def test_defaults_and_zero_gap():
    d = make_nile(train_size=80, test_size=16)
    assert d.in_shape == (107,) and d.n_classes == 8
    z = make_nile(gap=0, facts=2, train_size=10, test_size=4)
    assert z.in_shape == (7,) and z.mask_train.all()


def test_nile_sentence_compresses_the_filler_run(nile):
    i = int(np.argmax(nile.extra_test["gap"]))
    text = nile_sentence(nile.x_test[i], nile.mask_test[i], nile.vocab)
    assert text == f"{FACTS[nile.y_test[i]][0]} … 20 filler words … ?"
    vocab = nile.vocab
    one = [vocab.index(w) for w in "the longest river on earth is and ?".split()] + [0, 0]
    text = nile_sentence(np.array(one), np.array(one) > 0, vocab)
    assert text == "the longest river on earth is … 1 filler word … ?"


@pytest.mark.parametrize("options, key", [({"gap": 5, "min_gap": 6}, "data.min_gap"),
                                          ({"facts": 1}, "data.facts"),
                                          ({"short_share": 1.5}, "data.short_share"),
                                          ({"facts": len(FACTS) + 1}, "data.facts"),
                                          ({"gap": -1}, "data.gap"),
                                          ({"train_size": 0}, "data.train_size")])
def test_bad_options_name_the_key(options, key):
    with pytest.raises(SpecError) as e:
        make_nile(**options)
    assert e.value.key == key


def test_short_share_mixes_short_and_long_gaps():
    d = make_nile(gap=30, min_gap=20, short_gap=2, short_share=0.25, facts=4, train_size=800, test_size=140)
    train_gaps = d.mask_train.sum(axis=1) - 7
    assert (train_gaps <= 2).sum() == 200 and ((train_gaps >= 20) | (train_gaps <= 2)).all()
    assert set(train_gaps.tolist()) == {0, 1, 2, *range(20, 31)}
    counts = np.bincount(d.extra_test["gap"], minlength=31)
    assert counts[[0, 1, 2, *range(20, 31)]].tolist() == [10] * 14 and not counts[3:20].any()   # the same gaps
    capped = make_nile(gap=1, short_gap=5, short_share=1.0, facts=2, train_size=50, test_size=4)
    assert (capped.mask_train.sum(axis=1) - 7).max() <= 1


def test_no_short_share_keeps_the_old_draws():
    a = make_nile(gap=12, min_gap=4, facts=3, train_size=60, test_size=9, seed=3)
    b = make_nile(gap=12, min_gap=4, short_gap=7, short_share=0.0, facts=3, train_size=60, test_size=9, seed=3)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_test, b.x_test)
    assert a.extra_test["gap"].min() == 4
