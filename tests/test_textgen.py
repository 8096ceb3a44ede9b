"""The character language model end to end: data windows, the session's evaluation, sampling, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from descent.engine.data import data_dir
from descent.engine.data.text_lm import ALPHABETS, CharCodec, load_text_lm, unigram_entropy
from descent.engine.errors import DescentError
from descent.engine.generate import generate, pick, stepped
from descent.engine.layer import Context
from descent.engine.model import Net
from descent.engine.scenario import load, with_values
from descent.engine.session import Session

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--set", "data.max_chars=100000", "--set", "evaluation.max_samples=240"]


def need(folder: str, name: str) -> Path:
    path = data_dir(None) / folder / name
    if not path.is_file():
        pytest.skip(f"{path} not found (set $DESCENT_DATA to the shared data folder)")
    return path


def test_windows_are_shifted_views_of_the_90_10_split():
    text = need("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
    ds = load_text_lm(data_dir(None), "shakespeare", context=8)
    cut = int(len(text) * 0.9)
    assert len(ds.x_train) == cut - 8 and len(ds.x_test) == len(text) - cut - 8
    codec = CharCodec(ds.vocab)
    assert codec.decode(ds.x_train[5]) == text[5:13] and codec.decode(ds.y_train[5]) == text[6:14]
    assert codec.decode(ds.x_test[0]) == text[cut:cut + 8]
    assert "".join(ds.vocab) == ALPHABETS["shakespeare"] == "".join(sorted(set(text)))
    assert 3.2 < ds.extra_test["unigram_entropy"] < 3.4


def test_sms_corpus_keeps_the_classifier_test_split_out():
    need("sms_spam", "SMSSpamCollection")
    from descent.engine.data import load_sms_spam

    ds = load_text_lm(data_dir(None), "sms", context=16)
    sms = load_sms_spam(data_dir(None))
    codec = CharCodec(ds.vocab)
    train = codec.decode(np.r_[ds.x_train[0], ds.x_train[16::16][:, 0]])[:2000]
    held_out = max(sms.texts_test, key=len)
    assert held_out[:60] not in train
    assert ds.vocab[-1] == "\ufffd" and len(ds.vocab) == 98
    assert codec.decode(codec.encode("é£")) == "\ufffd£"


def test_unigram_entropy_of_a_fair_coin():
    assert abs(unigram_entropy(np.array([0, 1] * 50), 2) - np.log(2)) < 1e-12


def test_pick_greedy_top_k_and_seeded():
    logits = np.array([0.0, 3.0, 1.0, 2.0])
    assert pick(logits, 0.0, None, np.random.default_rng(0)) == 1
    draws = [pick(logits, 5.0, 2, np.random.default_rng(s)) for s in range(200)]
    assert set(draws) == {1, 3}
    a = [pick(logits, 1.0, None, np.random.default_rng(7)) for _ in range(3)]
    assert a == [pick(logits, 1.0, None, np.random.default_rng(7)) for _ in range(3)]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stepped_generation_equals_the_full_forward(cell):
    """Carrying the state char by char gives the logits the whole sequence gives (float64)."""
    vocab = list("abcdefg")
    spec = [{"type": "embedding", "dim": 5, "vocab": 7}, {"type": cell, "hidden": 6, "layers": 2, "output": "all"},
            {"type": "dense", "units": 7}]
    net = Net(spec, (9,), np.float64, seed=4)
    assert stepped(net)
    text = generate(net, CharCodec(vocab), "abc", 6, temperature=0.0)
    ids = np.array([CharCodec(vocab).encode("abc" + text)])
    full = net.forward(ids, Context(train=False, want_time_grads=False))
    assert CharCodec(vocab).decode(full[0, 2:-1].argmax(axis=-1)) == text


def test_transformer_generation_is_seeded_and_windowed():
    vocab = list("abcdefg")
    net = Net([{"type": "transformer", "vocab": 7, "layers": 1, "dim": 8, "heads": 2}], (5,), np.float64, seed=1)
    assert not stepped(net)
    codec = CharCodec(vocab)
    one = generate(net, codec, "ab", 20, temperature=1.0, seed=3)
    assert one == generate(net, codec, "ab", 20, temperature=1.0, seed=3) and len(one) == 20
    assert set(one) <= set(vocab)
    with pytest.raises(DescentError, match="alphabet lacks"):
        generate(net, codec, "xyz", 3)
    with pytest.raises(DescentError, match="temperature"):
        generate(net, codec, "ab", 3, temperature=-1.0)


@pytest.mark.parametrize("name, layers", [
    ("textgen", None),
    ("textgen_transformer", [{"type": "transformer", "layers": 2, "dim": 32, "heads": 2}]),
])
def test_small_budget_beats_the_unigram_entropy(tmp_path, name, layers):
    need("tinyshakespeare", "input.txt")
    sc = load(ROOT / "scenarios" / f"{name}.toml", ["data.max_chars=100000", "evaluation.max_samples=240",
                                                      "training.steps=150", "training.warmup_steps=10",
                                                      "evaluation.every=1000"])
    if layers is not None:
        sc = with_values(sc, {"model.layers": layers, "training.lr": 0.003})
    else:
        sc = with_values(sc, {"model.layers[1].hidden": 64, "model.layers[0].dim": 16})
    s = Session(sc, out_dir=tmp_path / "run")
    list(s.prepare())
    records = list(s.run())
    final = [r for r in records if type(r).__name__ == "Evaluation"][-1]
    entropy = final.details["unigram_entropy"]
    assert final.metrics["loss"] < entropy - 0.1, (final.metrics, entropy)
    assert abs(final.metrics["bits_per_char"] - final.metrics["loss"] / np.log(2)) < 1e-12
    assert len(final.details["sample"]) == 240
    again = s.generate("ROMEO:", 50, temperature=0.5, seed=2)
    assert again == s.generate("ROMEO:", 50, temperature=0.5, seed=2) and len(again) == 50
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert "".join(data["prep"]["vocab"]) == ALPHABETS["shakespeare"]


def descent(*args):
    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=300)


def test_cli_sample_from_a_run_folder(tmp_path):
    need("tinyshakespeare", "input.txt")
    run = tmp_path / "run"
    p = descent("run", "textgen", "--steps", "20", "--out", run, *SMALL, "--set", "model.layers[1].hidden=32")
    assert p.returncode == 0, p.stderr
    p = descent("sample", run, "--prompt", "KING:", "--chars", "30", "--seed", "5", "--temperature", "0.9")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("KING:") and len(p.stdout.rstrip("\n")) >= 5 + 29
    same = descent("sample", run, "--prompt", "KING:", "--chars", "30", "--seed", "5", "--temperature", "0.9")
    assert same.stdout == p.stdout
    for bad in (["--chars", "-3"], ["--temperature", "-1"], ["--prompt", "\u00e9t\u00e9"], ["--top-k", "-2"]):
        p = descent("sample", run, *bad)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, bad
    p = descent("sample", tmp_path / "nowhere")
    assert p.returncode == 2 and "no such run folder" in p.stderr
