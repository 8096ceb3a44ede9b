"""What a training session does differently for a character language model (data/text_lm.py).

- the output check: logits per time step, (context, vocabulary);
- the evaluation: the validation loss on fixed random windows (nanoGPT's estimate_loss: 200
  batches of the training batch size), in nats and bits per character, the next-character
  accuracy, and a fresh sample of text;
- `generate` for the session: the dashboard's prompt box and `descent sample`.
Session calls these through small hooks, so its own code stays the classifier's.
"""

from __future__ import annotations

import numpy as np

from .data.text_lm import BITS, EVAL_BATCHES, CharCodec, eval_windows
from .errors import DescentError, SpecError
from .generate import generate
from .losses import softmax_cross_entropy
from .records import Evaluation

SAMPLE_CHARS = 240            # the evaluation's sample, about four lines of a play
SAMPLE_SEED = 1337            # one seed for every evaluation: the text changes with the model only
TEMPERATURE = 0.8             # nanoGPT's sample.py default; the panel turns it live
EVAL_CHUNK = 256              # windows per forward pass at evaluation


def check_lm_output(out_shape: tuple, ds, loss_name: str, last_layer_key: str, file=None) -> str:
    """The loss for a language model whose last layer gives `out_shape` per window."""
    want = (ds.in_shape[0], len(ds.vocab))
    if loss_name not in ("auto", "cross_entropy"):
        raise SpecError("training.loss", f'a language model predicts characters: use "cross_entropy" or "auto", '
                                         f'not {loss_name!r}', file)
    if tuple(out_shape) != want:
        raise SpecError(last_layer_key, f"the model gives {tuple(out_shape)} per window; a language model over "
                                        f"{want[1]} characters needs {want} (end with a dense layer of "
                                        f'units = "vocab", or a transformer layer)', file)
    return "cross_entropy"


def validation_windows(session) -> np.ndarray:
    ev = session.scenario.evaluation
    count = ev.max_samples or EVAL_BATCHES * session.scenario.training.batch_size
    return eval_windows(len(session.x_test), count, session.seed)


def lm_evaluation(session) -> Evaluation:
    """The validation figures and a sample, as one Evaluation record."""
    ds = session.dataset
    idx = getattr(session, "_lm_windows", None)
    if idx is None:
        idx = session._lm_windows = validation_windows(session)
    total, hits, count = 0.0, 0, 0
    for lo in range(0, len(idx), EVAL_CHUNK):
        x, y = session.x_test[idx[lo:lo + EVAL_CHUNK]], ds.y_test[idx[lo:lo + EVAL_CHUNK]]
        with session._lock:
            logits = session.trainer.predict(x, None, batch_size=EVAL_CHUNK)
        loss, _ = softmax_cross_entropy(logits, y)
        total += loss * y.size
        hits += int((logits.argmax(axis=-1) == y).sum())
        count += y.size
    loss = total / max(1, count)
    accuracy = hits / max(1, count)
    metrics = {"loss": loss, "bits_per_char": loss * BITS, "accuracy": accuracy, "error": 1.0 - accuracy}
    details = {"unigram_entropy": ds.extra_test.get("unigram_entropy"), "windows": int(len(idx))}
    temperature = getattr(session, "sample_temperature", TEMPERATURE)
    try:
        details["sample"] = session_generate(session, "", SAMPLE_CHARS, temperature, None, SAMPLE_SEED)
        details["sample_temperature"] = temperature
    except DescentError:            # the torch backend: no sample, the figures still stand
        pass
    return Evaluation(session.step, round(session.epoch, 4), "validation", metrics, details)


def session_generate(session, prompt: str, chars: int, temperature: float = TEMPERATURE,
                     top_k: int | None = None, seed: int = 0, stop=None) -> str:
    net = getattr(session.trainer, "net", None)
    if net is None:
        raise DescentError("sampling needs the numba backend (this run trains with torch)")
    codec = CharCodec(session.dataset.vocab)
    return generate(net, codec, prompt, chars, temperature, top_k, seed, session.dataset.in_shape[0],
                    lock=session._lock, stop=stop)
