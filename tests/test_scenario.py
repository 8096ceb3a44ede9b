"""Scenario files: parsing, defaults, one-line errors that name file, line and key, overrides,
the TOML round trip, knob changes, discovery and name resolution."""

from __future__ import annotations

import dataclasses
import pickle
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from descent.engine import scenario as S
from descent.engine.errors import DescentError, SpecError

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent

# file -> (key, line or None, a piece of the message)
BAD = {
    "bad_syntax.toml": ("training.lr", 6, "invalid TOML"),
    "bad_syntax_eof.toml": ("scenario.name", 2, "invalid TOML"),
    "bad_unknown_section.toml": ("trainer", 11, "did you mean 'training'?"),
    "bad_unknown_key.toml": ("training.lerning_rate", 13, "unknown key 'lerning_rate' (did you mean 'lr'?)"),
    "bad_top_level_key.toml": ("name", 1, "did you mean 'scenario.name'?"),
    "bad_wrong_type.toml": ("training.batch_size", 13, "expected an integer, got true"),
    "bad_out_of_range.toml": ("training.gamma", 14, "must be > 0 and <= 1, got 1.5"),
    "bad_choice.toml": ("training.optimizer", 12, 'must be one of "sgd", "rmsprop", "adam", "adamw"'),
    "bad_missing_required.toml": ("scenario.description", 1, "missing required key"),
    "bad_missing_section.toml": ("model", None, "missing required section [model]"),
    "bad_missing_csv.toml": ("data.path", 7, f"file not found: {DATA / 'no_such_file.csv'}"),
    "bad_data_option.toml": ("data.gapp", 8, "(did you mean 'gap'?)"),
    "bad_min_gap.toml": ("data.min_gap", 9, "must be at most gap (100)"),
    "bad_nesterov.toml": ("training.nesterov", 13, "needs momentum > 0"),
    "bad_layers_empty.toml": ("model.layers", 9, "at least one layer"),
    "bad_residual.toml": ("model.layers[1].layers[1].type", 11, "missing required key"),
    "bad_knob_key.toml": ("knobs[0].key", 12, "(did you mean 'training.lr'?)"),
    "bad_knob_live.toml": ("knobs[1].live", 22, "applies only on reset"),
    "bad_knob_range.toml": ("knobs[0].min", 14, "must include the current value training.lr = 0.001"),
    "bad_knob_choice.toml": ("knobs[0].choices", 19, 'current value model.layers[1].type = "lstm"'),
    "bad_knob_type.toml": ("knobs[0].type", 13, 'use type = "int"'),
    "bad_layer_key.toml": ("model.layers[1]", 11, "unit"),
    "bad_shape.toml": ("model.layers[0]", 10, ""),
}


def test_every_bad_fixture_has_an_expectation():
    assert sorted(p.name for p in DATA.glob("bad_*.toml")) == sorted(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_names_file_key_and_line(name):
    key, line, fragment = BAD[name]
    path = DATA / name
    with pytest.raises(SpecError) as info:
        S.load(path)
    err = info.value
    text = str(err)
    assert "\n" not in text
    assert err.key.startswith(key), text
    assert err.line == line, text
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert text.startswith(where + err.key), text
    assert fragment in text


def test_defaults():
    s = S.load(DATA / "good_minimal.toml")
    assert s.training == S.TrainingConfig()
    assert s.training.optimizer == "adam" and s.training.lr == 1e-3 and s.training.batch_size == 64
    assert s.training.epochs == 5.0 and isinstance(s.training.epochs, float)
    assert s.evaluation == S.EvaluationConfig(every=500, max_samples=0, by_gap=True)
    assert s.panel == "generic" and s.knobs == () and s.task == "classification"
    assert dict(s.data.options) == {"test_fraction": 0.25, "seed": 0, "standardize": False}
    assert s.path == (DATA / "good_minimal.toml").resolve() and s.base_dir == DATA.resolve()
    assert [f.name for f in dataclasses.fields(S.TrainingConfig)] == list(S.rules_of(S.TrainingConfig))


def test_values_are_frozen_and_picklable():
    s = S.load(DATA / "good_nile.toml", check_shapes=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.training.lr = 1.0
    with pytest.raises(TypeError):
        s.data.options["gap"] = 3
    with pytest.raises(TypeError):
        s.model.layers[0]["dim"] = 3
    assert s.model.spec()[1] == {"type": "lstm", "hidden": 32}
    assert pickle.loads(pickle.dumps(s)) == s
    assert hash(s) == hash(dataclasses.replace(s))


def test_ints_widen_to_floats_but_floats_do_not_narrow():
    base = (DATA / "good_minimal.toml").read_text()
    s = S.loads(base + "\n[training]\nlr = 1\nepochs = 2\n", check_shapes=False)
    assert s.training.lr == 1.0 and isinstance(s.training.lr, float)
    with pytest.raises(SpecError, match="steps: expected an integer, got 10.0"):
        S.loads(base + "\n[training]\nsteps = 10.0\n", check_shapes=False)
    with pytest.raises(SpecError, match="must be a finite number"):
        S.loads(base + "\n[training]\nlr = inf\n", check_shapes=False)


@pytest.mark.parametrize("name", ["good_minimal.toml", "good_nile.toml", "good_spam.toml"])
def test_good_files_load_with_shapes(name):
    s = S.load(DATA / name)
    assert s.name and s.description


@pytest.mark.parametrize("name", ["good_minimal.toml", "good_nile.toml", "good_spam.toml"])
def test_dumps_loads_round_trip(name):
    s = S.load(DATA / name, check_shapes=False)
    text = S.dumps(s)
    back = S.loads(text, base_dir=s.base_dir, check_shapes=False)
    assert back == dataclasses.replace(s, path=None)
    assert back.to_dict() == s.to_dict() == tomllib.loads(text) | {"knobs": s.to_dict()["knobs"]}
    assert S.dumps(back) == text


def test_dumps_writes_quotes_small_floats_and_nested_layers():
    layers = [{"type": "flatten"},
              {"type": "residual", "layers": [{"type": "dense", "units": 64, "activation": "relu"},
                                              {"type": "dropout", "p": 0.1}]},
              {"type": "dense", "units": 10}]
    s = S.with_values(S.load(DATA / "good_minimal.toml", check_shapes=False),
                      {"scenario.description": 'say "hi" \\ tab\t nl\n bell \x07 ü', "training.lr": 1e-3,
                       "training.eps": 1e-8, "training.epochs": 1e16, "model.layers": layers}, check_shapes=False)
    text = S.dumps(s)
    assert "lr = 0.001\n" in text and "eps = 1e-08\n" in text
    back = S.loads(text, base_dir=s.base_dir, check_shapes=False)
    assert back == dataclasses.replace(s, path=None) and back.model.spec() == layers
    assert back.description == 'say "hi" \\ tab\t nl\n bell \x07 ü'
    assert (S.show('a "q"'), S.show(1e-3), S.show(True), S.show([1])) == ('"a \\"q\\""', "0.001", "true", "an array")


def test_overrides():
    path = DATA / "good_nile.toml"
    s = S.load(path, ["training.lr=0.05", "training.nesterov=false", "model.layers[1].type=gru",
                      'scenario.name="Renamed"', "data.gap = 60", "evaluation.every=7"], check_shapes=False)
    assert s.training.lr == 0.05 and s.model.layers[1]["type"] == "gru" and s.name == "Renamed"
    assert s.data.options["gap"] == 60 and s.evaluation.every == 7
    assert {k.key: k.default for k in s.knobs}["model.layers[1].type"] == "gru"
    s = S.load(DATA / "good_minimal.toml", ["training.steps=10", "scenario.description=plain words"],
               check_shapes=False)
    assert s.training.steps == 10 and s.description == "plain words"


@pytest.mark.parametrize("override, key, fragment", [
    ("training.lr=-1", "training.lr", "must be > 0"),
    ("training.lerning_rate=0.1", "training.lerning_rate", "did you mean 'lr'?"),
    ("data.gap=abc", "data.gap", 'expected an integer, got "abc"'),
    ("model.layers[9].type=gru", "model.layers[9].type", "out of range"),
    ("training.lr.x=1", "training.lr.x", "not a table"),
    ("training..lr=1", "training..lr", "not a key"),
])
def test_bad_override_names_key_and_says_from_set(override, key, fragment):
    path = DATA / "good_nile.toml"
    with pytest.raises(SpecError) as info:
        S.load(path, [override], check_shapes=False)
    err = info.value
    assert err.key == key and err.line is None
    assert str(err).startswith(f"{path}: {key}: ") and str(err).endswith("(from --set)")
    assert fragment in str(err)


def test_override_outside_a_knob_range_widens_the_knob():
    s = S.load(DATA / "good_nile.toml", ["training.lr=5", "model.layers[1].type=transformer",
                                                 "data.min_gap=0", "data.gap=2"],
               check_shapes=False)
    knobs = {k.key: k for k in s.knobs}
    assert (knobs["training.lr"].min, knobs["training.lr"].max, knobs["training.lr"].default) == (1e-5, 5.0, 5.0)
    assert knobs["model.layers[1].type"].choices == ("rnn", "lstm", "gru", "attention", "transformer")
    assert (knobs["data.gap"].min, knobs["data.gap"].default) == (2, 2)
    t = S.with_values(s, {"training.batch_size": 4096}, check_shapes=False)
    assert {k.key: k.max for k in t.knobs}["training.batch_size"] == 4096


def test_malformed_override():
    with pytest.raises(SpecError, match=r"bad --set 'training\.lr': expected KEY=VALUE"):
        S.load(DATA / "good_nile.toml", ["training.lr"], check_shapes=False)


def test_knobs():
    s = S.load(DATA / "good_nile.toml", check_shapes=False)
    knobs = {k.key: k for k in s.knobs}
    lr = knobs["training.lr"]
    assert (lr.label, lr.type, lr.min, lr.max, lr.log, lr.live, lr.default) == \
        ("learning rate", "float", 1e-5, 1.0, True, True, 3e-3)
    assert knobs["training.batch_size"].live and knobs["training.batch_size"].min == 1
    cell = knobs["model.layers[1].type"]
    assert cell.choices == ("rnn", "lstm", "gru", "attention") and not cell.live and cell.default == "lstm"
    assert cell.min is None and cell.label == "memory cell"
    gap = knobs["data.gap"]
    assert gap.type == "int" and gap.default == 40 and not gap.live
    spam = S.load(DATA / "good_spam.toml", check_shapes=False)
    assert spam.knobs[0].label == "training.momentum" and spam.knobs[0].live
    assert spam.knobs[1].label == "dropout" and spam.knobs[1].default == 0.2 and not spam.knobs[1].live


def test_knob_on_a_default_key_resolves():
    base = (DATA / "good_minimal.toml").read_text()
    s = S.loads(base + '\n[[knobs]]\nkey = "training.clip_norm"\ntype = "float"\nmin = 0\nmax = 10\n',
                check_shapes=False)
    assert s.knobs[0].default == 0.0 and s.knobs[0].live
    with pytest.raises(SpecError, match=r"knobs\[0\]\.min: must be > 0, got 0\.0"):
        S.loads(base + '\n[[knobs]]\nkey = "training.lr"\ntype = "float"\nmin = 0\nmax = 1\n', check_shapes=False)


def test_with_values():
    s = S.load(DATA / "good_nile.toml", check_shapes=False)
    t = S.with_values(s, {"model.layers[1].type": "gru", "training.lr": np.float64(0.01),
                          "data.gap": np.int64(80)}, check_shapes=False)
    assert t.model.layers[1]["type"] == "gru" and t.training.lr == 0.01 and t.data.options["gap"] == 80
    assert {k.key: k.default for k in t.knobs}["training.lr"] == 0.01
    assert s.model.layers[1]["type"] == "lstm" and t.path == s.path
    assert S.with_values(t, {"model.layers[1].type": "lstm", "training.lr": 3e-3, "data.gap": 40},
                         check_shapes=False) == s
    with pytest.raises(SpecError) as info:
        S.with_values(s, {"training.batch_size": 0}, check_shapes=False)
    assert str(info.value) == f"{s.path}: training.batch_size: must be between 1 and 65536, got 0"


def test_csv_scenario(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "houses.csv").write_text("rooms,area,price\n3,70,200\n4,90,260\n2,50,150\n5,120,330\n")
    text = """
[scenario]
name = "House prices"
description = "Regression on my own table."

[data]
source = "csv"
path = "data/houses.csv"
label = "price"
task = "regression"

[model]
layers = [{ type = "dense", units = 16, activation = "relu" }, { type = "dense", units = 1 }]
"""
    (tmp_path / "houses.toml").write_text(text)
    s = S.load(tmp_path / "houses.toml")           # real engine.data.input_shape reads the header
    assert s.task == "regression" and s.data.options["path"] == "data/houses.csv"
    assert "delimiter" not in s.data.options and s.data.options["test_fraction"] == 0.25
    with pytest.raises(SpecError, match=r"houses\.toml: training\.loss: \"bce\" needs a classification task"):
        S.load(tmp_path / "houses.toml", ["training.loss=bce"], check_shapes=False)
    with pytest.raises(SpecError, match=r"data\.delimiter: must be one character"):
        S.load(tmp_path / "houses.toml", ["data.delimiter=;;"], check_shapes=False)
    with pytest.raises(SpecError, match=r"data\.label: missing required key for source \"csv\""):
        S.loads(text.replace('label = "price"', ""), base_dir=tmp_path, check_shapes=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(SpecError, match=re.escape(str(elsewhere / "data" / "houses.csv"))):
        S.loads(text, name="x.toml", base_dir=elsewhere, check_shapes=False)


def test_shape_errors_come_keyed_and_located(monkeypatch):
    import descent.engine.data
    import descent.engine.model
    seen = {}

    def fake_input_shape(source, options, base_dir):
        seen["data"] = (source, options, base_dir)
        return (64,)

    def fake_build_layers(spec, in_shape, dtype=np.float32):
        seen["model"] = (spec, in_shape, dtype)
        raise SpecError("[1].units", "dense expects a flat input")

    monkeypatch.setattr(descent.engine.data, "input_shape", fake_input_shape)
    monkeypatch.setattr(descent.engine.model, "build_layers", fake_build_layers)
    path = DATA / "good_spam.toml"
    with pytest.raises(SpecError) as info:
        S.load(path, ["training.dtype=float64"])
    assert str(info.value) == f"{path}:16: model.layers[1].units: dense expects a flat input"
    assert seen["data"] == ("sms_spam", {"test_fraction": 0.3, "seed": 0, "features": "sequence",
                                         "vocab_size": 3000, "max_len": 40, "dedupe": True, "labelled": 0}, DATA.resolve())
    # embeddings without `vocab` take the data's vocabulary size before the shape check
    expected = S.load(path, check_shapes=False).model.spec()
    expected[0]["vocab"] = 3000
    assert seen["model"] == (expected, (64,), np.float64)


def test_load_failures_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        S.load(tmp_path / "nope.toml")
    with pytest.raises(SpecError, match="is a folder"):
        S.load(tmp_path)
    (tmp_path / "latin1.toml").write_bytes(b'[scenario]\nname = "caf\xe9"\n')
    with pytest.raises(SpecError, match="not UTF-8"):
        S.load(tmp_path / "latin1.toml")
    with pytest.raises(SpecError, match=r"^my-name: scenario: missing required section"):
        S.loads("", name="my-name")


def test_discover(tmp_path, monkeypatch):
    good = (DATA / "good_minimal.toml").read_text()
    bad = (DATA / "bad_choice.toml").read_text()
    bundled, work, config, extra = (tmp_path / d for d in ("bundled", "work", "config", "extra"))
    for folder, files in ((bundled, {"a.toml": good}), (work / "scenarios", {"b.toml": good, "c.toml": bad}),
                          (config / "descent" / "scenarios", {"d.toml": bad, "notes.txt": "x"}),
                          (extra, {"e.toml": good})):
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    monkeypatch.setattr(S, "bundled_dir", lambda: bundled)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.chdir(work)
    found = S.discover([extra, work / "scenarios" / "b.toml", Path("scenarios/c.toml")])
    names = [(p.name, type(r).__name__) for p, r in found]
    assert names == [("a.toml", "Scenario"), ("b.toml", "Scenario"), ("c.toml", "SpecError"),
                     ("d.toml", "SpecError"), ("e.toml", "Scenario")]
    assert all(p.is_absolute() for p, _ in found)
    assert "training.optimizer" in str(dict(found)[config / "descent" / "scenarios" / "d.toml"])


def test_user_dir_without_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert S.user_dir() == tmp_path / ".config" / "descent" / "scenarios"


def test_resolve_name(tmp_path, monkeypatch):
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    for name in ("digits.toml", "nile_memory.toml", "spam_bow.toml", "spam_gru.toml"):
        (bundled / name).write_text("")
    monkeypatch.setattr(S, "bundled_dir", lambda: bundled)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    assert S.resolve_name("digits") == bundled / "digits.toml"
    assert S.resolve_name("digits.toml") == bundled / "digits.toml"
    assert S.resolve_name("nile") == bundled / "nile_memory.toml"
    (tmp_path / "mine.toml").write_text("")
    assert S.resolve_name("mine.toml") == Path("mine.toml")
    with pytest.raises(DescentError, match="matches several scenarios: spam_bow, spam_gru"):
        S.resolve_name("spam")
    with pytest.raises(DescentError, match=r"no scenario named 'mnist' \(known: digits, nile_memory"):
        S.resolve_name("mnist")
    with pytest.raises(DescentError, match="no such scenario file"):
        S.resolve_name("sub/missing.toml")


def test_bundled_scenarios_are_valid():
    files = sorted(S.bundled_dir().glob("*.toml"))
    assert len(files) >= 6
    for path in files:
        s = S.load(path)                              # the model built against the data's shapes
        assert s.name.strip() and s.description.strip(), path.name
        assert s.knobs, f"{path.name} offers no knobs"
        raw = s.to_dict()
        for knob in s.knobs:
            assert S.get_path(raw, S.parse_key(knob.key)) is not S.MISSING, f"{path.name}: knob {knob.key}"


def test_docs_name_every_key():
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    keys = {*S.SCENARIO_RULES, *S.rules_of(S.TrainingConfig), *S.rules_of(S.EvaluationConfig),
            *S.KNOB_RULES, *S.SOURCES, *(k for rules in S.DATA_OPTIONS.values() for k in rules)}
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"docs/scenarios.md does not mention {missing}"


def test_importing_scenario_stays_light():
    """The model and data modules (and NumPy) load only when shapes are checked."""
    code = "import sys, descent.engine.scenario; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"descent.engine.model", "descent.engine.data", "numpy", "textual", "descent.tui"}


def test_data_options_are_the_loaders_own():
    """Each loader declares one option per keyword argument, in its order; defaults are its own."""
    import inspect

    from descent.engine.data import sources

    assert S.SOURCES == sources.SOURCES
    for source, (loader, mode, declared) in sources._LOADERS.items():
        params = list(inspect.signature(loader).parameters.values())[1 if mode == "root" else 0:]
        assert [p.name for p in params] == list(declared) == list(S.DATA_OPTIONS[source]), source
        for p in params:
            rule = S.DATA_OPTIONS[source][p.name]
            want = {inspect.Parameter.empty: S.REQUIRED, None: S.OPTIONAL}.get(p.default, p.default)
            assert rule.default is want or rule.default == want, (source, p.name)
            assert rule.kind == declared[p.name].kind, (source, p.name)


def test_docs_example_loads(tmp_path):
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    example = next(b for b in re.findall(r"```toml\n(.*?)```", doc, re.S) if "My flowers" in b)
    (tmp_path / "data").mkdir()
    rows = ["5.1,3.5,1.4,0.2,setosa", "7.0,3.2,4.7,1.4,versicolor", "6.3,3.3,6.0,2.5,virginica"] * 4
    header = "sepal_length,sepal_width,petal_length,petal_width,species"
    (tmp_path / "data" / "flowers.csv").write_text("\n".join([header, *rows]) + "\n")
    (tmp_path / "flowers.toml").write_text(example)
    s = S.load(tmp_path / "flowers.toml", check_shapes=False)
    assert [k.live for k in s.knobs] == [True, False] and s.training.nesterov
    S.load(tmp_path / "flowers.toml")
