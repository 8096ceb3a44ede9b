"""Issue 9, items 5, 6, 7: a run folder is self-contained (predict reads it alone, for every kind
of data), its checkpoint loads strictly into PyTorch from the folder alone, and `validate` goes
on past any error and reads the data unless told not to."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from descent.engine import checkpoint
from descent.engine.data import DATASETS, data_dir
from descent.engine.errors import DescentError, SpecError
from descent.engine.scenario import bundled_dir, loads
from descent.tui.cli import main

DATA = Path(__file__).resolve().parent / "data"
BUNDLED = sorted(p.stem for p in bundled_dir().glob("*.toml"))


def run(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def needs_data(name: str) -> None:
    source = tomllib.loads((bundled_dir() / f"{name}.toml").read_text(encoding="utf-8"))["data"]["source"]
    if source in DATASETS:
        root = data_dir(None)
        if not all((root / source / f).exists() for f in DATASETS[source].needed):
            pytest.skip(f"{source} is not in the data folder {root} (descent data fetch {source})")


@pytest.mark.parametrize("name", BUNDLED)
def test_a_real_run_folder_loads_strictly_into_torch(name, tmp_path, capsys, torch):
    from descent.engine.torch_backend import build_torch_model

    needs_data(name)
    out = tmp_path / name
    rc, text = run(capsys, "run", name, "--steps", 2, "--out", out)
    assert rc == 0, text
    # the folder alone: no scenario file, no data
    spec = tomllib.loads((out / "scenario.toml").read_text(encoding="utf-8"))
    in_shape = tuple(json.loads((out / "data.json").read_text(encoding="utf-8"))["in_shape"])
    model = build_torch_model(spec["model"]["layers"], in_shape, spec["training"]["dtype"])
    state = checkpoint.torch_state_dict(out / checkpoint_name())
    model.load_state_dict(state, strict=True)
    arrays, _ = checkpoint.load(out / checkpoint_name())
    assert "session.perm" in arrays and not any(k.startswith(("session.", "optim.")) for k in state)


def test_scenario_toml_records_the_command_lines_backend_and_seed(tmp_path, capsys, torch):
    """--backend and --seed are how the run trained: scenario.toml says so, not the file's values."""
    out = tmp_path / "run"
    rc, text = run(capsys, "run", "digits8x8", "--steps", 2, "--backend", "torch", "--seed", 7, "--out", out)
    assert rc == 0, text
    training = tomllib.loads((out / "scenario.toml").read_text(encoding="utf-8"))["training"]
    assert training["backend"] == "torch" and training["seed"] == 7


def checkpoint_name() -> str:
    from descent.engine.rundir import CHECKPOINT

    return CHECKPOINT


def text_scenario(folder: Path, tsv: Path) -> Path:
    (folder / "msgs.tsv").write_text(tsv.read_text(encoding="utf-8"), encoding="utf-8")
    p = folder / "text.toml"
    p.write_text('[scenario]\nname = "t"\ndescription = "d"\n[data]\nsource = "text"\npath = "msgs.tsv"\ntext_column = "message"\n'
                 'vocab_size = 20\n[model]\nlayers = [{ type = "dense", units = 2 }]\n[training]\nsteps = 30\n'
                 'lr = 0.1\n', encoding="utf-8")
    return p


def test_predict_ignores_a_changed_or_moved_training_file(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    scenario = text_scenario(src, DATA / "data_messages.tsv")
    out = tmp_path / "run"
    assert run(capsys, "run", scenario, "--out", out)[0] == 0
    texts = ["win a free prize now", "see you at lunch"]
    rc, before = run(capsys, "predict", out, *texts)
    assert rc == 0 and before.count("P(") == 4, before
    with open(src / "msgs.tsv", "a", encoding="utf-8") as f:     # new rows change a rebuilt vocabulary
        for i in range(40):
            f.write(f"zebra{i} quokka{i} yak{i} prize free win\tham\n")
    assert run(capsys, "predict", out, *texts) == (0, before)
    shutil.rmtree(src)
    assert run(capsys, "predict", out, *texts) == (0, before)


def test_resume_refuses_data_that_changed_since_the_run_began(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    scenario = text_scenario(src, DATA / "data_messages.tsv")
    out = tmp_path / "run"
    assert run(capsys, "run", scenario, "--steps", 5, "--out", out)[0] == 0
    with open(src / "msgs.tsv", "a", encoding="utf-8") as f:
        for i in range(40):
            f.write(f"zebra{i} quokka{i} yak{i}\tham\n")
    rc, text = run(capsys, "resume", out, "--steps", 5)
    assert rc == 2 and "data.json" in text and "changed" in text and "Traceback" not in text, text


def test_force_over_a_run_of_other_data_trains_and_records_its_own(tmp_path, capsys):
    """`run --force` into a folder holding a run of another scenario: the old run's data.json
    went with it (it was kept, and the new run refused it as "the data changed")."""
    out = tmp_path / "run"
    assert run(capsys, "run", houses(tmp_path), "--steps", 5, "--out", out)[0] == 0
    rc, text = run(capsys, "run", "digits8x8", "--steps", 5, "--out", out, "--force")
    assert rc == 0, text
    record = json.loads((out / "data.json").read_text(encoding="utf-8"))
    assert record["source"] == "digits8x8" and record["in_shape"] == [1, 8, 8]
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["steps"] == 5
    rc, text = run(capsys, "resume", out, "--steps", 5)
    assert rc == 0, text


def test_a_word_language_model_predicts_the_next_word(tmp_path, capsys):
    """sms_lm (a label per time step) crashed `descent predict` (IndexError: the per-step
    outputs were taken as one distribution over T x V), and `sample` called it no language model."""
    needs_data("sms_lm")
    out = tmp_path / "lm"
    assert run(capsys, "run", "sms_lm", "--steps", 3, "--out", out)[0] == 0
    rc, text = run(capsys, "predict", out, "call me when you", "i will be")
    assert rc == 0, text
    lines = text.splitlines()
    assert [ln.rsplit("  ", 1)[1] for ln in lines] == ["call me when you", "i will be"]
    probs = [float(v) for v in re.findall(r"P\([^)]*\)=([0-9.]+)", lines[0])]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    rc, text = run(capsys, "sample", out)
    assert rc == 2 and "guesses the next word" in text and "descent predict" in text, text
    np.save(tmp_path / "ids.npy", np.full((1, 40), 5, np.int64))         # it was an internal error
    rc, text = run(capsys, "predict", out, "--npy", tmp_path / "ids.npy")
    assert rc == 2 and "ids.npy: this run's model reads text" in text and "Traceback" not in text, text
    rc, text = run(capsys, "predict", out, "--csv", tmp_path / "rows.csv")
    assert rc == 2 and "rows.csv: this run's data (sms_words) is not a table; give texts" in text, text


def test_an_encoder_decoder_run_answers_sentences(tmp_path, capsys):
    """seq2seq: `descent predict RUN --npy FILE` crashed (IndexError), and texts were "not text"."""
    out = tmp_path / "s2s"
    rc, text = run(capsys, "run", "seq2seq", "--steps", 500, "--set", "data.max_len=6", "--out", out)
    assert rc == 0, text
    rc, text = run(capsys, "predict", out, "red fox runs", "big cat sees small dog", "zebra cat")
    assert rc == 0, text
    lines = text.splitlines()
    assert lines[0] == "runs fox red  <-  red fox runs"
    assert lines[1] == "dog small sees cat big  <-  big cat sees small dog"
    assert lines[2].endswith("<-  zebra cat   (not in its vocabulary: zebra)")
    np.save(tmp_path / "ids.npy", np.ones((1, 13), np.int64))
    rc, text = run(capsys, "predict", out, "--npy", tmp_path / "ids.npy")
    assert rc == 2 and "reads sentences" in text and "Traceback" not in text, text
    rc, text = run(capsys, "predict", out, "fox " * 7)
    assert rc == 2 and "7 words; this model reads at most 6" in text, text


def test_predict_sends_a_character_model_to_sample(tmp_path, capsys):
    needs_data("textgen")
    out = tmp_path / "tg"
    assert run(capsys, "run", "textgen", "--steps", 2, "--out", out)[0] == 0
    np.save(tmp_path / "ids.npy", np.full((1, 64), 5, np.int64))
    for args in (["ROMEO"], ["--npy", tmp_path / "ids.npy"]):
        rc, text = run(capsys, "predict", out, *args)
        assert rc == 2 and "character language model" in text and "descent sample" in text, text
    assert "ids.npy: this run is a character language model" in text, text


def houses(tmp_path: Path, standardize: bool = True) -> Path:
    rows = ["x,y"] + [f"{x},{x}" for x in range(20)]
    (tmp_path / "line.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    p = tmp_path / "line.toml"
    p.write_text('[scenario]\nname = "y = x"\ndescription = "d"\n[data]\nsource = "csv"\npath = "line.csv"\n'
                 f'label = "y"\ntask = "regression"\nstandardize = {str(standardize).lower()}\n'
                 '[model]\nlayers = [{ type = "dense", units = 1 }]\n[training]\nsteps = 400\nlr = 0.1\n'
                 'optimizer = "adam"\n', encoding="utf-8")
    return p


def test_a_csv_run_predicts_rows_with_the_saved_statistics(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "run", houses(tmp_path), "--out", out)[0] == 0
    prep = json.loads((out / "data.json").read_text(encoding="utf-8"))["prep"]
    assert prep["columns"] == ["x"] and len(prep["mean"]) == 1 and prep["std"][0] > 1
    (tmp_path / "new.csv").write_text("x\n3\n30\n", encoding="utf-8")
    (tmp_path / "line.csv").unlink()
    rc, text = run(capsys, "predict", out, "--csv", tmp_path / "new.csv")
    values = [float(line.split()[0]) for line in text.splitlines()]
    assert rc == 0 and values == pytest.approx([3, 30], abs=0.5), text


def test_standardize_false_keeps_raw_units(tmp_path):
    from descent.engine.data import load_csv

    houses(tmp_path, standardize=False)
    ds = load_csv(tmp_path / "line.csv", "y", "regression", standardize=False)
    assert set(ds.x_train[:, 0]) <= set(range(20)) and "mean" not in ds.prep
    assert loads((tmp_path / "line.toml").read_text(), base_dir=tmp_path).data.options["standardize"] is False


def test_an_image_run_predicts_an_npy_array(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "run", "digits8x8", "--steps", 30, "--out", out)[0] == 0
    from sklearn.datasets import load_digits

    d = load_digits()
    np.save(tmp_path / "four.npy", d.images[:4].astype(np.uint8))       # raw 0..16 pixels, (N, 8, 8)
    rc, text = run(capsys, "predict", out, "--npy", tmp_path / "four.npy")
    assert rc == 0 and len(text.splitlines()) == 4 and text.count("P(") == 40, text
    rc, text = run(capsys, "predict", out, "some text")
    assert rc == 2 and "not text" in text, text


def test_predict_on_a_missing_folder_names_it(tmp_path, capsys):
    rc, text = run(capsys, "predict", tmp_path / "nope", "hello")
    assert rc == 2 and "no such run folder" in text and "resume" not in text, text


# ---- validate ---------------------------------------------------------------------------------
def test_validate_goes_on_after_an_error_that_is_not_a_spec_error(tmp_path, capsys, monkeypatch):
    from descent.engine.scenario import build

    real = build.load

    def flaky(path, *a, **k):
        if Path(path).name == "first.toml":
            raise DescentError("first.toml: something else went wrong")
        return real(path, *a, **k)

    monkeypatch.setattr("descent.engine.scenario.load", flaky)
    good = DATA / "broken" / "good_digits.toml"
    (tmp_path / "first.toml").write_text("", encoding="utf-8")
    rc, text = run(capsys, "validate", tmp_path / "first.toml", good)
    assert rc == 2 and "something else went wrong" in text and f"{good}: ok" in text, text


def test_validate_no_data_skips_reading_the_data_file(capsys):
    bad = DATA / "broken" / "data_nonnumeric.toml"
    assert run(capsys, "validate", bad)[0] == 2
    rc, text = run(capsys, "validate", "--no-data", bad)
    assert rc == 0 and ": ok" in text, text


def test_33_nested_residual_blocks_are_refused_by_key():
    layers = '{ type = "dense", units = 10 }'
    for _ in range(33):
        layers = f'{{ type = "residual", layers = [{layers}] }}'
    text = ('[scenario]\nname = "n"\ndescription = "d"\n[data]\nsource = "digits8x8"\n[model]\n'
            f'layers = [{{ type = "flatten" }}, {{ type = "dense", units = 10 }}, {layers}]\n')
    with pytest.raises(SpecError, match="nest 33 levels deep") as e:
        loads(text)
    assert e.value.key.startswith("model.layers[2].layers")


def test_weights_are_reported_in_raw_units(tmp_path, capsys):
    """The classic one-neuron y = x: standardized inputs train w = std, b = mean; --weights says
    w = 1, b = 0 in the CSV's own units."""
    out = tmp_path / "run"
    assert run(capsys, "run", houses(tmp_path), "--steps", 1500, "--out", out)[0] == 0
    rc, text = run(capsys, "predict", out, "--weights")
    assert rc == 0 and "*x" in text and "raw units" in text, text
    from descent.engine.predict import Predictor

    w, b, names = Predictor(out).raw_linear()
    assert names == ["x"] and w[0, 0] == pytest.approx(1, abs=0.02) and b[0] == pytest.approx(0, abs=0.2)


def test_a_folder_that_takes_no_writes_is_refused_before_loading(tmp_path, monkeypatch, capsys):
    """The nearest existing folder of --out refuses writes (read-only, another user's): a one-line
    error naming the path, exit 2, before the data loads and the kernels compile (root passes
    os.access on a chmod 555 folder, so os.access says no here for that folder)."""
    import os

    from descent.engine import rundir

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(rundir.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    rc = main(["run", "digits8x8", "--steps", "5", "--out", str(locked / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert str(locked / "run") in err and "Permission denied" in err
    assert "compiling" not in err and "loading" not in err
    assert not (locked / "run").exists()
    # a folder that does take writes is used as before
    assert rundir._not_a_folder(tmp_path / "fine" / "run") is None
