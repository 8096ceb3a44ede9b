"""The user's CSV files (tables and texts), and the `load_dataset` / `input_shape` entry point."""

from pathlib import Path

import numpy as np
import pytest

from descent.engine.data import data_dir, input_shape, load_csv, load_dataset, load_text_csv, require
from descent.engine.data.tables import read_table
from descent.engine.errors import DataMissing, DescentError, SpecError

FIXTURES = Path(__file__).parent / "data"


# --- load_csv -------------------------------------------------------------------------------

def test_csv_classification_with_string_labels():
    d = load_csv(FIXTURES / "data_flowers.csv", label="species", test_fraction=0.25, seed=0)
    assert d.class_names == ["setosa", "versicolor", "virginica"] and d.n_classes == 3
    assert d.in_shape == (4,) and d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert np.bincount(d.y_test).tolist() == [3, 2, 2]               # 12, 9, 6 rows: exact per class
    assert np.bincount(d.y_train).tolist() == [9, 7, 4]
    assert np.allclose(d.x_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(d.x_train.std(axis=0), 1, atol=1e-4)
    assert d.name == "data_flowers" and d.task == "classification"


def test_csv_numeric_labels_sort_numerically(tmp_path):
    path = tmp_path / "n.csv"
    grades = [10, 2, 10, 2, 9, 9, 2, 10]
    path.write_text("a,b,grade\n" + "".join(f"{i},{i % 3},{g}\n" for i, g in enumerate(grades)))
    d = load_csv(path, label="grade", test_fraction=0.4)
    assert d.class_names == ["2", "9", "10"]


def test_csv_regression():
    d = load_csv(FIXTURES / "data_houses.csv", label="price", task="regression", test_fraction=0.25)
    assert d.task == "regression" and d.n_classes == 0 and d.class_names == []
    assert d.y_train.shape == (15, 1) and d.y_test.shape == (5, 1) and d.y_train.dtype == np.float32
    assert d.in_shape == (2,)
    assert 150 < np.concatenate([d.y_train, d.y_test]).mean() < 450     # prices are not standardized


def test_csv_value_that_is_not_a_number_names_file_line_and_column():
    with pytest.raises(DescentError) as e:
        load_csv(FIXTURES / "data_bad_value.csv", label="kind")
    path = FIXTURES / "data_bad_value.csv"
    assert str(e.value) == f"{path}: line 4, column 'weight': 'heavy' is not a number"


def test_csv_missing_label_column_names_file_and_columns():
    with pytest.raises(SpecError) as e:
        load_csv(FIXTURES / "data_flowers.csv", label="class")
    assert e.value.key == "data.label"
    assert "'class'" in str(e.value) and "data_flowers.csv" in str(e.value) and "species" in str(e.value)


def test_csv_ragged_row_and_missing_file():
    with pytest.raises(DescentError, match=r"data_ragged.csv: line 4 has 2 fields, the header has 3"):
        load_csv(FIXTURES / "data_ragged.csv", label="label")
    with pytest.raises(DescentError, match=r"nope.csv: file not found"):
        load_csv(FIXTURES / "nope.csv", label="label")


def test_csv_regression_target_must_be_numeric():
    with pytest.raises(DescentError, match=r"line 2, column 'species': 'setosa' is not a number"):
        load_csv(FIXTURES / "data_flowers.csv", label="species", task="regression")
    with pytest.raises(SpecError, match="data.task"):
        load_csv(FIXTURES / "data_flowers.csv", label="species", task="ranking")


# --- load_text_csv --------------------------------------------------------------------------

def test_text_tsv_bow_and_encode():
    d = load_text_csv(FIXTURES / "data_messages.tsv", text_column="message", label="label",
                      test_fraction=0.2, vocab_size=40, seed=1)
    assert d.class_names == ["ham", "spam"] and d.n_train + d.n_test == 15
    assert np.bincount(d.y_test).tolist() == [2, 1]
    assert d.x_train.shape == (12, 40) and d.in_shape == (40,)
    x, mask = d.encode(["claim your free prize now!"])
    assert mask is None and x[0, d.vocab.index("!")] == 1.0
    assert np.array_equal(d.encode(d.texts_test)[0], d.x_test)


def test_text_csv_quoted_fields_and_sequences():
    header, rows, lines = read_table(FIXTURES / "data_reviews.csv", None)
    assert header == ["id", "review", "sentiment"] and len(rows) == 8
    assert rows[2][1] == 'Works fine, "best" purchase this year'
    assert rows[3][1] == "Stopped working\nafter two days" and lines[3:5] == [6, 7]
    d = load_text_csv(FIXTURES / "data_reviews.csv", text_column="review", label="sentiment",
                      features="sequence", max_len=6, test_fraction=0.25)
    assert d.class_names == ["negative", "positive"] and d.x_test.shape == (2, 6) and d.n_train == 6
    assert np.bincount(d.y_test).tolist() == [1, 1]
    x, mask = d.encode(["Bad, bad, bad", ""])
    bad = d.vocab.index("bad") if "bad" in d.vocab else 1
    assert x[0, :3].tolist() == [bad] * 3 and mask[0].tolist() == [True] * 3 + [False] * 3
    assert x[1, 0] == 1 and mask[1].sum() == 1                         # no tokens: one <unk>


def test_text_csv_missing_text_column():
    with pytest.raises(SpecError) as e:
        load_text_csv(FIXTURES / "data_messages.tsv", text_column="body", label="label")
    assert e.value.key == "data.text_column" and "data_messages.tsv" in str(e.value)


# --- load_dataset and input_shape -----------------------------------------------------------

CHEAP = [
    ("nile", {"gap": 12, "facts": 4, "train_size": 40, "test_size": 8}),
    ("digits8x8", {"test_fraction": 0.2}),
    ("csv", {"path": "data_flowers.csv", "label": "species"}),
    ("csv", {"path": "data_houses.csv", "label": "price", "task": "regression"}),
    ("text", {"path": "data_messages.tsv", "text_column": "message", "label": "label", "vocab_size": 64}),
    ("text", {"path": "data_reviews.csv", "text_column": "review", "label": "sentiment",
              "features": "sequence", "max_len": 9}),
]
NEEDS_FILES = [
    ("mnist", {"limit_train": 50, "limit_test": 10}),
    ("spambase", {}),
    ("sms_spam", {"vocab_size": 300}),
    ("sms_spam", {"features": "sequence", "max_len": 12}),
]


@pytest.mark.parametrize("source, options", CHEAP + NEEDS_FILES)
def test_input_shape_matches_the_loaded_data(source, options):
    root = data_dir()
    if source in ("mnist", "spambase", "sms_spam"):
        try:
            require(source, root)
        except DataMissing:
            pytest.skip(f"{source} not found in {root}")
    shape = input_shape(source, options, FIXTURES)
    d = load_dataset(source, options, root, FIXTURES)
    assert shape == d.in_shape == d.x_train.shape[1:]


def test_input_shape_reads_nothing_big(tmp_path):
    empty = tmp_path / "no-data"
    assert input_shape("mnist", {}, tmp_path) == (1, 28, 28)
    assert input_shape("sms_spam", {"features": "sequence", "max_len": 30}, tmp_path) == (30,)
    assert input_shape("sms_spam", {}, tmp_path) == (2000,)
    assert input_shape("nile", {}, tmp_path) == (107,)
    assert input_shape("spambase", {}, tmp_path) == (57,)
    with pytest.raises(DataMissing, match="descent data fetch mnist"):
        load_dataset("mnist", {}, empty, tmp_path)


def test_load_dataset_rejects_unknown_sources_and_options(tmp_path):
    with pytest.raises(SpecError) as e:
        load_dataset("cifar10", {}, tmp_path, tmp_path)
    assert e.value.key == "data.source" and "mnist" in str(e.value)
    with pytest.raises(SpecError) as e:
        input_shape("nile", {"gaps": 10}, tmp_path)
    assert e.value.key == "data.gaps"
    with pytest.raises(SpecError) as e:
        load_dataset("csv", {"path": "data_flowers.csv"}, tmp_path, FIXTURES)
    assert e.value.key == "data.label" and "required" in str(e.value)
    with pytest.raises(SpecError) as e:
        input_shape("csv", {"path": "data_flowers.csv", "label": "kind"}, FIXTURES)
    assert e.value.key == "data.label"
    with pytest.raises(SpecError) as e:
        input_shape("text", {"path": "x.csv", "text_column": "t", "label": "l", "features": "chars"},
                    FIXTURES)
    assert e.value.key == "data.features"
