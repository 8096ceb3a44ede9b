"""Cross-entropy with a label per time step (padding = IGNORE) and the sequence metrics."""

import numpy as np
import pytest

from descent.engine.losses import IGNORE, softmax_cross_entropy, torch_loss
from descent.engine.metrics import sequences

torch = pytest.importorskip("torch", reason="torch is the reference for the loss")


def test_per_token_cross_entropy_matches_torch_ignore_index():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 6, 9))
    labels = rng.integers(0, 9, size=(4, 6))
    labels[0, 3:] = IGNORE
    labels[2, 1:] = IGNORE
    loss, d = softmax_cross_entropy(logits, labels)
    t = torch.tensor(logits, requires_grad=True)
    ref = torch_loss("cross_entropy")(t, torch.tensor(labels))
    ref.backward()
    assert d.shape == logits.shape
    assert abs(loss - ref.item()) < 1e-12
    assert np.abs(d - t.grad.numpy()).max() < 1e-12
    assert not d[0, 3:].any() and not d[2, 1:].any()


def test_all_padding_gives_zero_loss_not_nan():
    loss, d = softmax_cross_entropy(np.ones((2, 3)), np.full(2, IGNORE))
    assert loss == 0.0 and not d.any()


def test_a_label_out_of_range_is_refused():
    with pytest.raises(ValueError, match="padding"):
        softmax_cross_entropy(np.ones((2, 3)), np.array([0, 3]))


def test_sequence_metrics_count_real_tokens_and_whole_sequences():
    labels = np.array([[1, 2, IGNORE], [0, 0, 1]])
    pred = np.array([[1, 2, 0], [0, 1, 1]])          # sample 0 exact (its padding wrong), sample 1 one token off
    logits = np.eye(3)[pred] * 5.0
    metrics, details = sequences(logits, labels)
    assert metrics["token_accuracy"] == pytest.approx(4 / 5)
    assert metrics["sequence_accuracy"] == 0.5
    assert details["correct"].tolist() == [True, False]
    ref = torch.nn.functional.cross_entropy(torch.tensor(logits).reshape(-1, 3), torch.tensor(labels).reshape(-1))
    assert metrics["loss"] == pytest.approx(ref.item())
