"""Evaluation: what a session measures on its test split, by task, for the records and panels.

    record = evaluate(session)       # Session.evaluate calls this; an Evaluation record

Classification gives accuracy and the confusion (plus accuracy by gap for the Nile test and the
spam model's worst mistakes), regression the errors and the lessons' extras, `sequence` a label
per time step, seq2seq (classification with a label per output step) exact sequences by length,
a language model its loss in nats and bits per character. Fine-tuning adds the scratch
baseline, and a model with an LSTM, GRU or attention the inside-the-cell curves.
"""

from __future__ import annotations

import numpy as np

from .data.text_lm import is_lm
from .inside import inside_the_cell, sample_index
from .lesson_metrics import lesson_extras
from .metrics import accuracy_by_group, classification, regression, sequences_batched
from .records import Evaluation

INSIDE_BATCH = 64                 # test samples the gate and attention curves average over


def evaluate(session) -> Evaluation:
    """The session's test split now: metrics by task, the panels' details, fine-tuning's scratch
    baseline and the inside-the-cell curves, as one Evaluation record."""
    ds, ev = session.dataset, session.scenario.evaluation
    if is_lm(ds):
        from .lm_session import lm_evaluation

        return lm_evaluation(session)
    n = len(session.x_test) if not ev.max_samples else min(ev.max_samples, len(session.x_test))
    x, y = session.x_test[:n], ds.y_test[:n]
    mask = None if ds.mask_test is None else ds.mask_test[:n]
    if session.scenario.task == "classification" and ds.y_test.ndim == 2:   # a class per output step (seq2seq)
        from .seq2seq_eval import evaluate_seq2seq

        metrics, details = evaluate_seq2seq(session, x, y, mask)
    elif session.scenario.task == "regression":
        with session._lock:
            out = session.trainer.predict(x, mask)
        metrics, details = regression(out, y)
        more, extra = lesson_extras(session.scenario.data.source, ds, out, n, session.trainer, session.base_lr)
        metrics, details = metrics | more, details | extra
    elif session.scenario.task == "sequence":
        with session._lock:
            metrics, details = sequences_batched(session.trainer.predict, x, y, mask)
        details.pop("correct")
    else:
        probs = session.predict_proba(x, mask)
        metrics, details = classification(probs, y, ds.class_names)
        pred = probs.argmax(axis=1)
        if "gap" in ds.extra_test and ev.by_gap:
            details["by_gap"] = accuracy_by_group(pred == y, ds.extra_test["gap"][:n])
            details["chance"] = 1.0 / ds.n_classes
        if ds.texts_test is not None and probs.shape[1] == 2:
            wrong = np.flatnonzero(pred != y)
            worst = wrong[np.argsort(-np.abs(probs[wrong, 1] - 0.5))][:8]
            details["mistakes"] = [{"text": ds.texts_test[i], "label": ds.class_names[int(y[i])],
                                    "p_positive": float(probs[i, 1])} for i in worst]
    scratch, tuned_loss = session.transfer.evaluate(x, y, mask)
    if scratch:
        details["scratch"] = scratch
        if tuned_loss is not None:
            metrics["train_loss"] = tuned_loss
    inside = inside_curves(session, x, mask)
    if inside:
        details["inside"] = inside
    return Evaluation(session.step, round(session.epoch, 4), "test", metrics, details)


def inside_curves(session, x, mask) -> dict:
    """{"layers": engine.inside curves on the first INSIDE_BATCH test samples, "words": the chosen
    sentence, "gap": its gap (Nile)}; {} without an LSTM, GRU or attention layer, or with the
    torch backend."""
    net = getattr(session.trainer, "net", None)
    if net is None or not isinstance(x, np.ndarray) or x.dtype.kind not in "iu":
        return {}
    xs, ms = x[:INSIDE_BATCH], None if mask is None else mask[:INSIDE_BATCH]
    with session._lock:
        layers = inside_the_cell(net, xs, ms)
    if not layers:
        return {}
    found = {"layers": layers}
    vocab = session.dataset.vocab
    if vocab:
        pick = sample_index(ms, len(xs))
        ids = xs[pick] if ms is None else xs[pick][ms[pick]]
        found["words"] = [vocab[int(i)] if 0 <= i < len(vocab) else "?" for i in ids]
        gaps = session.dataset.extra_test.get("gap")
        if gaps is not None:
            found["gap"] = int(gaps[pick])
    return found
