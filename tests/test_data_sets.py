"""The bundled datasets: counts and label balance from the data README, splits, determinism.

Datasets come from `data_dir()` ($DESCENT_DATA in CI); a test skips only when its files are absent.
"""


import numpy as np
import pytest

from descent.engine.data import (data_dir, load_digits8x8, load_mnist, load_sms_spam, load_spambase,
                         require, stratified_split)
from descent.engine.data.text import build_vocab, read_sms, tokenize
from descent.engine.errors import DataMissing, SpecError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def root_with(name):
    root = data_dir()
    try:
        require(name, root)
    except DataMissing:
        pytest.skip(f"{name} not found in {root} (set $DESCENT_DATA to the shared data folder)")
    return root


def per_class_test_counts_are_exact(y_train, y_test, fraction):
    counts = np.bincount(np.concatenate([y_train, y_test]))
    expected = np.floor(counts * fraction + 0.5).astype(int)
    return np.array_equal(np.bincount(y_test, minlength=len(counts)), expected)


# --- stratified_split -----------------------------------------------------------------------

def test_stratified_split_exact_per_class_counts_and_disjoint():
    y = np.repeat([0, 1, 2], [10, 7, 3])
    train, test = stratified_split(y, 0.3, seed=5)
    assert np.bincount(y[test]).tolist() == [3, 2, 1]         # 3.0, 2.1, 0.9 rounded
    assert np.bincount(y[train]).tolist() == [7, 5, 2]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(20))
    assert train.dtype == np.int64 and test.dtype == np.int64


def test_stratified_split_is_deterministic_per_seed():
    y = np.random.default_rng(0).integers(0, 4, 500)
    a, b = stratified_split(y, 0.25, 1), stratified_split(y, 0.25, 1)
    c = stratified_split(y, 0.25, 2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.3", True])
def test_stratified_split_rejects_bad_fractions(fraction):
    with pytest.raises(SpecError) as e:
        stratified_split(np.array([0, 1, 0, 1]), fraction, 0)
    assert e.value.key == "data.test_fraction"


# --- MNIST ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist():
    return load_mnist(root_with("mnist"))      # its load time is timed in bench/load.py


def test_mnist_shapes_counts_and_labels(mnist):
    d = mnist
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.in_shape == (1, 28, 28) and d.n_classes == 10 and d.class_names == list("0123456789")
    assert np.bincount(d.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(d.y_test).tolist() == MNIST_TEST_COUNTS
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert 0.12 < d.x_train.mean() < 0.14                         # MNIST's well-known mean 0.1307


def test_mnist_limits_keep_the_first_rows(mnist):
    full = mnist
    d = load_mnist(data_dir(), limit_train=100, limit_test=30)
    assert d.x_train.shape == (100, 1, 28, 28) and len(d.y_test) == 30
    assert np.array_equal(d.x_train, full.x_train[:100]) and np.array_equal(d.y_test, full.y_test[:30])
    with pytest.raises(SpecError, match="data.limit_train"):
        load_mnist(data_dir(), limit_train=0)


# --- 8x8 digits -----------------------------------------------------------------------------

def test_digits8x8_split_and_scaling():
    d = load_digits8x8(test_fraction=0.25, seed=0)
    assert d.n_train + d.n_test == 1797
    assert d.x_train.shape[1:] == (1, 8, 8) == d.in_shape and d.x_train.dtype == np.float32
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert per_class_test_counts_are_exact(d.y_train, d.y_test, 0.25)
    again = load_digits8x8(test_fraction=0.25, seed=0)
    assert np.array_equal(d.x_test, again.x_test) and np.array_equal(d.y_train, again.y_train)


# --- SMS Spam Collection --------------------------------------------------------------------

@pytest.fixture(scope="module")
def sms_root():
    return root_with("sms_spam")


def test_sms_counts_and_stratified_split(sms_root):
    d = load_sms_spam(sms_root)
    y = np.concatenate([d.y_train, d.y_test])
    assert np.bincount(y).tolist() == [4827, 747]
    assert np.bincount(d.y_test).tolist() == [1448, 224]          # round(0.3 * 4827), round(0.3 * 747)
    assert per_class_test_counts_are_exact(d.y_train, d.y_test, 0.3)
    assert d.class_names == ["ham", "spam"] and d.n_classes == 2
    assert len(d.texts_test) == d.n_test


def test_sms_bow_is_binary_presence_and_encode_reproduces_inputs(sms_root):
    d = load_sms_spam(sms_root, features="bow", vocab_size=500)
    assert d.x_train.shape == (d.n_train, 500) == (d.n_train, *d.in_shape)
    assert d.x_train.dtype == np.float32 and set(np.unique(d.x_train)) == {0.0, 1.0}
    assert d.vocab[:2] == ["<pad>", "<unk>"] and len(d.vocab) == 500 and d.mask_train is None
    assert not d.x_train[:, 0].any()                              # <pad> never present
    x, mask = d.encode(d.texts_test)
    assert mask is None and np.array_equal(x, d.x_test)
    for token in ("<num>", "<url>", "£", "!"):
        assert token in d.vocab


def test_sms_sequence_ids_mask_and_encode(sms_root):
    d = load_sms_spam(sms_root, features="sequence", vocab_size=1000, max_len=20)
    assert d.x_train.shape == (d.n_train, 20) and d.in_shape == (20,)
    assert d.x_train.dtype == np.int64 and d.mask_train.dtype == np.bool_
    assert d.x_train.max() < 1000
    lengths = d.mask_train.sum(axis=1)
    assert lengths.min() >= 1 and lengths.max() == 20                 # long messages truncated
    assert np.array_equal(d.mask_train, np.arange(20) < lengths[:, None])   # right padding
    assert not d.x_train[~d.mask_train].any() and (d.x_train[d.mask_train] > 0).all()
    x, mask = d.encode(d.texts_test)
    assert np.array_equal(x, d.x_test) and np.array_equal(mask, d.mask_test)


def test_sms_vocab_is_built_on_the_training_split_only(sms_root):
    d = load_sms_spam(sms_root, features="sequence", vocab_size=100_000)   # room for every train token
    labels, texts = read_sms(sms_root / "sms_spam" / "SMSSpamCollection")
    train, test = stratified_split(np.array([label == "spam" for label in labels]), 0.3, 0)
    assert d.texts_test == [texts[i] for i in test]
    train_tokens = {t for i in train for t in tokenize(texts[i])}
    test_tokens = {t for i in test for t in tokenize(texts[i])}
    vocab = {t for t in d.vocab if not t.startswith("<unused")} - {"<pad>", "<unk>"}
    assert vocab == train_tokens and test_tokens - train_tokens            # some test words unseen


def test_sms_is_deterministic_and_seed_changes_split(sms_root):
    a = load_sms_spam(sms_root, seed=3, vocab_size=300)
    b = load_sms_spam(sms_root, seed=3, vocab_size=300)
    c = load_sms_spam(sms_root, seed=4, vocab_size=300)
    assert np.array_equal(a.x_train, b.x_train) and a.vocab == b.vocab and a.texts_test == b.texts_test
    assert a.texts_test != c.texts_test


def test_sms_dedupe_drops_repeated_messages(sms_root):
    d = load_sms_spam(sms_root, dedupe=True)
    assert d.n_train + d.n_test == 5171                               # distinct texts per the README
    assert len(set(d.texts_test)) == d.n_test


@pytest.mark.parametrize("options, key", [({"features": "tfidf"}, "data.features"),
                                          ({"vocab_size": 2}, "data.vocab_size"),
                                          ({"max_len": 0}, "data.max_len")])
def test_sms_rejects_bad_options(sms_root, options, key):
    with pytest.raises(SpecError) as e:
        load_sms_spam(sms_root, **options)
    assert e.value.key == key


def test_tokenizer_keeps_spam_signals():
    text = "WINNER!! Call 09061701461 to claim £900 at www.win.com or http://x.co/y, cost $2. 150p"
    assert tokenize(text) == ["winner", "!", "!", "call", "<num>", "to", "claim", "£", "900", "at",
                              "<url>", "or", "<url>", "cost", "$", "2", "150p"]
    assert tokenize("Ü don\x92t know…") == ["ü", "don", "t", "know"]


def test_build_vocab_ranks_by_count_then_alphabet_and_pads_to_size():
    tokens = [["b", "a", "c", "a"], ["b", "d"]]
    assert build_vocab(tokens, 4) == ["<pad>", "<unk>", "a", "b"]
    assert build_vocab(tokens, 7) == ["<pad>", "<unk>", "a", "b", "c", "d", "<unused0>"]


# --- Spambase -------------------------------------------------------------------------------

def test_spambase_counts_split_and_standardization():
    d = load_spambase(root_with("spambase"), test_fraction=0.3, seed=0)
    y = np.concatenate([d.y_train, d.y_test])
    assert len(y) == 4601 and np.bincount(y).tolist() == [2788, 1813]
    assert np.bincount(d.y_test).tolist() == [836, 544]
    assert d.x_train.shape == (d.n_train, 57) and d.in_shape == (57,) and d.x_train.dtype == np.float32
    assert np.allclose(d.x_train.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(d.x_train.std(axis=0), 1, atol=1e-3)
    assert d.class_names == ["ham", "spam"]
    again = load_spambase(data_dir(), test_fraction=0.3, seed=0)
    assert np.array_equal(d.x_test, again.x_test)


def test_seed_must_be_a_whole_number():
    with pytest.raises(SpecError) as e:
        stratified_split(np.array([0, 1, 0, 1]), 0.5, seed=-1)
    assert e.value.key == "data.seed"
