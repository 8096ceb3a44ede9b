"""A run folder on its own: `data.json` (what turns raw inputs into model inputs) and `Predictor`,
which answers for new inputs from scenario.toml, data.json and checkpoint.npz alone, never the
training data (adding rows to the training CSV, or moving it, must not change a prediction).

data.json holds the source, task, input shape, classes, the loss, and the dataset's `prep`:
CSV column names and standardization mean/std (raw = scaled * std + mean), the text
vocabulary and encoder settings, the Nile vocabulary and length, the raw pixel scale.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np

from . import checkpoint
from .errors import DescentError
from .rundir import DATA

FORMAT = 1


def data_record(ds, loss: str, source: str) -> dict:
    return {"format": FORMAT, "source": source, "task": ds.task, "in_shape": list(ds.in_shape),
            "n_classes": ds.n_classes, "class_names": list(ds.class_names), "loss": loss, "prep": ds.prep}


def write_or_check(run_dir: Path, ds, loss: str, source: str) -> None:
    """Write data.json on a run's first start; on a resume, refuse data that no longer gives the
    inputs the model was trained on (a grown CSV changes the vocabulary or the statistics)."""
    path = Path(run_dir) / DATA
    record = json.loads(json.dumps(data_record(ds, loss, source)))
    if not path.exists():
        checkpoint.atomic_write_text(path, json.dumps(record) + "\n")
        return
    saved = read_data_record(path.parent)
    for key in ("in_shape", "class_names", "prep"):
        if saved.get(key) != record[key]:
            what = {"prep": "vocabulary or feature statistics"}.get(key, key.replace("_", " "))
            raise DescentError(f"{path}: the data changed since this run began (its {what} differ); "
                               f"the checkpoint was trained on the data recorded there")


def read_data_record(run_dir: Path) -> dict:
    path = Path(run_dir) / DATA
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DescentError(f"{path}: not found; this run folder was written before runs recorded their data "
                           f"(train it again to use `descent predict`)") from None
    except (OSError, ValueError) as e:
        raise DescentError(f"{path}: not readable ({e})") from None


class Predictor:
    """The model of a run folder, with its data record, ready for raw inputs."""

    def __init__(self, run_dir):
        from .backend import Trainer
        from .model import fill_from_data

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DescentError(f"{run_dir}: no such run folder")
        for name in ("scenario.toml", "checkpoint.npz"):
            if not (run_dir / name).is_file():
                raise DescentError(f"{run_dir}: no {name} in it; `descent predict` needs a run folder "
                                   f"written by `descent run`")
        self.data = read_data_record(run_dir)
        raw = tomllib.loads((run_dir / "scenario.toml").read_text(encoding="utf-8"))
        prep = self.data["prep"]
        self.layers = fill_from_data(raw["model"]["layers"], len(prep["vocab"]) if "vocab" in prep else None)
        self.dtype = np.dtype(raw.get("training", {}).get("dtype", "float32"))
        self.in_shape = tuple(self.data["in_shape"])
        self.trainer = Trainer(self.layers, self.in_shape, self.data["loss"], dtype=self.dtype)
        arrays, _ = checkpoint.load(run_dir / "checkpoint.npz")
        self.trainer.load_state_dict(checkpoint.parameters(arrays))

    @property
    def class_names(self) -> list[str]:
        return self.data["class_names"]

    def predict(self, x, mask=None) -> np.ndarray:
        """Probabilities (N, K) for classification, (N, T, K) for a label per time step (a
        language model's next word); values (N, width) for regression."""
        from .metrics import probabilities, softmax

        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            x = x.astype(self.dtype, copy=False)
        out = self.trainer.predict(x, mask)
        if self.data["task"] == "sequence":
            return softmax(np.asarray(out, np.float64))
        return out if self.data["task"] == "regression" else probabilities(out)

    def raw_linear(self) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        """For a model that is one dense layer: (weight (out, in), bias (out,), column names) in the
        data's raw units, undoing the standardization (z = W (x - mean) / std + b); else None."""
        if len(self.layers) != 1 or self.layers[0].get("type") != "dense":
            return None
        state = self.trainer.state_dict()
        w, b = np.asarray(state["0.weight"], np.float64), np.asarray(state["0.bias"], np.float64)
        prep = self.data["prep"]
        names = prep.get("columns") or [f"x{j}" for j in range(w.shape[1])]
        if "mean" in prep and "pixel_max" not in prep:
            mean, std = np.array(prep["mean"]), np.array(prep["std"])
            w, b = w / std, b - (w / std) @ mean
        return w, b, names

    def seq2seq(self):
        """The run's encoder-decoder layer, or None."""
        from .seq2seq_eval import seq2seq_layer

        return seq2seq_layer(self.trainer)

    def translate(self, texts: list[str]) -> list[tuple[list[str], list[str]]]:
        """An encoder-decoder run's answer to each text, greedily decoded: (the words it did not
        learn, its output words up to the end token)."""
        from .seq2seq_eval import words_of

        layer, vocab = self.seq2seq(), self.data["prep"]["vocab"]
        S, index = layer.S, {w: i for i, w in enumerate(vocab)}
        x = np.zeros((len(texts), S + layer.T), np.int64)
        mask = np.zeros(x.shape, bool)
        unknown = []
        for i, text in enumerate(texts):
            words = text.lower().split()
            if len(words) > S:
                raise DescentError(f"text {i + 1}: {len(words)} words; this model reads at most {S}")
            x[i, :len(words)] = [index.get(w, 1) for w in words]            # 1: <unk>
            mask[i, :len(words)] = True
            x[i, S] = vocab.index("<s>")
            unknown.append([w for w in words if w not in index])
        tokens, _, _ = layer.decode(x, mask)
        return [(u, words_of(t, vocab)) for u, t in zip(unknown, tokens)]

    # ---- raw inputs -> model inputs -----------------------------------------------------------
    def encode_texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        from .data.text import TextEncoder

        prep = self.data["prep"]
        if "features" in prep:
            return TextEncoder(prep["vocab"], prep["features"], prep["max_len"])(list(texts))
        self._refuse_char_lm()
        if "length" not in prep:
            raise DescentError(f"this run's data ({self.data['source']}) is not text; "
                               f"give --csv FILE or --npy FILE")
        index = {w: i for i, w in enumerate(prep["vocab"])}
        t = prep["length"]
        x = np.zeros((len(texts), t), np.int64)
        mask = np.zeros((len(texts), t), bool)
        for i, text in enumerate(texts):
            words = text.lower().replace("?", " ? ").split()
            if not words or words[-1] != "?":
                words.append("?")     # the model answers at the question mark
            ids = [index.get(w, 1) for w in words][:t]
            x[i, :len(ids)], mask[i, :len(ids)] = ids, True
        return x, mask

    def encode_rows(self, path) -> tuple[np.ndarray, list[str]]:
        """A CSV of rows with the training CSV's feature columns (others, e.g. the label, ignored),
        scaled with the saved statistics; also a name per row ("line N")."""
        from .data.tables import read_table

        prep = self.data["prep"]
        if "columns" not in prep:
            raise DescentError(f"{path}: this run's data ({self.data['source']}) is not a table; "
                               f"give {'texts' if 'vocab' in prep else '--npy FILE'}")
        path = Path(path)
        header, rows, lines = read_table(path, None)
        missing = [c for c in prep["columns"] if c not in header]
        if missing:
            raise DescentError(f"{path}: missing the feature column(s) {', '.join(missing)}")
        cols = [header.index(c) for c in prep["columns"]]
        x = np.empty((len(rows), len(cols)), np.float64)
        for i, (row, line) in enumerate(zip(rows, lines)):
            for k, j in enumerate(cols):
                try:
                    x[i, k] = float(row[j])
                except ValueError:
                    raise DescentError(f"{path}: line {line}, column {header[j]!r}: {row[j]!r} is not a number") from None
        return self._scale(x), [f"line {n}" for n in lines]

    def encode_array(self, path) -> np.ndarray:
        """An .npy of images (N, H, W) or (N, C, H, W); integer pixels are scaled like the training data."""
        prep = self.data["prep"]
        if "vocab" in prep:              # token ids in float32 reached the embedding: an internal error
            self._refuse_char_lm(path)
            raise DescentError(f"{path}: this run's model reads text ({self.data['source']}), not arrays; "
                               f"give the texts themselves")
        try:
            x = np.load(Path(path), allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DescentError(f"{path}: not a readable .npy array ({e})") from None
        if x.dtype.kind in "ui" and "pixel_max" in prep:
            x = x / np.float32(prep["pixel_max"])
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.in_shape and x.shape[1:] == self.in_shape[1:]:
            x = x[:, None]
        if x.shape[1:] != self.in_shape:
            raise DescentError(f"{path}: arrays of shape {x.shape[1:]} per sample; this model takes {self.in_shape}")
        return self._scale(x)

    def _refuse_char_lm(self, path=None) -> None:
        if self.data["prep"].get("kind") == "char_lm":
            raise DescentError(f"{f'{path}: ' if path else ''}this run is a character language model ({self.data['source']}): it continues "
                               f"a text, `descent sample RUN --prompt TEXT`, rather than classifying one")

    def _scale(self, x: np.ndarray) -> np.ndarray:
        prep = self.data["prep"]
        if "mean" not in prep:
            return np.asarray(x, np.float32)
        if "pixel_max" in prep:        # digits8x8's own float32 standardization
            mean, std = np.array(prep["mean"], np.float32), np.array(prep["std"], np.float32)
            return ((x - mean) / std).astype(np.float32)
        from .data.split import scaled

        return scaled(x, np.array(prep["mean"]), np.array(prep["std"]))
