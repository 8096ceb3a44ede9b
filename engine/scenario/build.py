"""Building a Scenario: the raw TOML dict (overrides applied) checked section by section,
then the model's shapes against the data's input shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import tomli_w

from descent.engine.checks import (check_nesting, check_output_fits, check_panel, check_regular_file, data_classes,
                                   output_layer_key)
from descent.engine.errors import DescentError, SpecError

from .hints import listing, show, unknown
from .knobs import check_knob
from .locate import locate, parse_toml
from .overrides import MISSING, apply_overrides, format_key, parse_key, set_path
from .schema import (MODEL_RULES, REQUIRED, SCENARIO_RULES, SECTION_RULES, SECTIONS, DataConfig,
                     EvaluationConfig, FrozenDict, ModelConfig, Scenario, TrainingConfig, choice_rule,
                     check_table, data_options, freeze, plain, rules_of, thaw)

def load(path, overrides: Sequence[str] = (), check_shapes: bool = True, check_data: bool = False) -> Scenario:
    """Read and check the scenario file at `path`; `overrides` are `--set KEY=VALUE` strings.
    `check_data` also reads the user's data file (csv, text sources) as training would, so that
    its errors name the scenario file and its data.* key, and counts its classes for the output."""
    file = str(path)
    p = Path(path).expanduser()
    try:
        check_regular_file(p, "", file)     # a folder, /dev/zero or a pipe: say so, never read it
    except SpecError as err:
        message = "no such file" if err.message.startswith("file not found") else err.message.replace(f"{p} ", "", 1)
        raise SpecError("", message, file) from None
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("", "no such file", file) from None
    except UnicodeDecodeError as e:
        raise SpecError("", f"not UTF-8 text (bad byte at offset {e.start})", file) from None
    except OSError as e:
        raise SpecError("", f"cannot read: {e.strerror}", file) from None
    p = p.resolve()
    return _from_text(text, file, p.parent, p, overrides, check_shapes, check_data)


def loads(text: str, name: str = "<string>", base_dir=None, overrides: Sequence[str] = (),
          check_shapes: bool = True) -> Scenario:
    """Like `load`, for TOML text; `name` stands for the file in errors, `base_dir` defaults to the cwd."""
    base = Path(base_dir if base_dir is not None else Path.cwd()).resolve()
    return _from_text(text, name, base, None, overrides, check_shapes)


def with_values(scenario: Scenario, changes: Mapping[str, object], check_shapes: bool = True) -> Scenario:
    """`scenario` with the dotted keys in `changes` set (knob changes), checked again."""
    raw = scenario.to_dict()
    file = str(scenario.path) if scenario.path is not None else "<string>"
    set_keys = []
    for key, value in changes.items():
        try:
            parts = parse_key(key)
            set_path(raw, parts, thaw(plain(value)))
        except SpecError as err:
            raise SpecError(err.key, err.message, file) from None
        set_keys.append(format_key(parts))
    try:
        return _build(raw, scenario.base_dir, scenario.path, check_shapes, set_keys)
    except SpecError as err:
        raise SpecError(err.key, err.message, file) from None


def dumps(scenario: Scenario) -> str:
    """The fully resolved scenario (every default written out) as TOML text."""
    d = scenario.to_dict()
    if not d["knobs"]:
        del d["knobs"]
    return tomli_w.dumps(d)


def _from_text(text: str, file: str, base_dir: Path, path: Path | None, overrides, check_shapes,
               check_data: bool = False) -> Scenario:
    raw = parse_toml(text, file)
    set_keys = apply_overrides(raw, overrides, file)
    try:
        return _build(raw, base_dir, path, check_shapes, set_keys, check_data)
    except SpecError as err:
        raise locate(err, file, text, set_keys) from None



def _build(raw: dict, base_dir: Path, path: Path | None, check_shapes: bool,
           set_keys: Sequence[str] = (), check_data: bool = False) -> Scenario:
    """A checked Scenario from the raw TOML dict; `set_keys` were set by --set or a knob change."""
    for name, v in raw.items():
        if name not in SECTIONS:
            owner = next((s for s, rules in SECTION_RULES.items() if name in rules), None)
            if owner and not isinstance(v, dict):
                raise SpecError(name, f"unknown top-level key '{name}' (did you mean '{owner}.{name}'? "
                                      f"keys of [{owner}] go below its header)")
            raise unknown(name, name, SECTIONS, "section")
    head = check_table("scenario", _section(raw, "scenario"), SCENARIO_RULES)
    for k in ("name", "description"):
        if not head[k].strip():
            raise SpecError(f"scenario.{k}", "must not be empty")
    data = _data(_section(raw, "data"), base_dir)
    model = _model(_section(raw, "model"))
    training = TrainingConfig(**check_table("training", _section(raw, "training", False), rules_of(TrainingConfig)))
    evaluation = EvaluationConfig(**check_table("evaluation", _section(raw, "evaluation", False),
                                                 rules_of(EvaluationConfig)))
    scenario = Scenario(**head, data=data, model=model, training=training, evaluation=evaluation,
                        path=path, base_dir=base_dir)
    if training.optimizer == "sgd" and training.nesterov and training.momentum == 0:
        raise SpecError("training.nesterov", "needs momentum > 0")
    if scenario.task == "regression" and training.loss in ("cross_entropy", "bce"):
        raise SpecError("training.loss", f'"{training.loss}" needs a classification task; use "mse" or "auto"')
    knobs = raw.get("knobs", [])
    if not isinstance(knobs, list):
        raise SpecError("knobs", f"expected [[knobs]] tables, got {show(knobs)}")
    resolved = scenario.to_dict()
    made: dict[str, int] = {}
    out = []
    for i, k in enumerate(knobs):
        knob = check_knob(i, k, resolved, data.source, set_keys)
        if knob.key in made:
            raise SpecError(f"knobs[{i}].key", f"'{knob.key}' already has a knob (knobs[{made[knob.key]}])")
        made[knob.key] = i
        out.append(knob)
    scenario = replace(scenario, knobs=tuple(out))
    check_panel(scenario.panel, data.source, scenario.task)
    if check_shapes:
        _check_shapes(scenario, check_data)
    return scenario



def _section(raw: dict, name: str, required: bool = True) -> dict:
    v = raw.get(name, MISSING)
    if v is MISSING:
        if required:
            raise SpecError(name, f"missing required section [{name}]")
        return {}
    if not isinstance(v, dict):
        raise SpecError(name, f"expected a [{name}] table, got {show(v)}")
    return v



def _data(table: dict, base_dir: Path) -> DataConfig:
    if "source" not in table:
        raise SpecError("data.source", f"missing required key (one of {listing(data_options())})")
    source = choice_rule(REQUIRED, tuple(data_options())).check("data.source", table["source"])
    options = {k: v for k, v in table.items() if k != "source"}
    opts = check_table("data", options, data_options()[source], f' for source "{source}"')
    if "min_gap" in opts and opts["min_gap"] > opts["gap"]:
        raise SpecError("data.min_gap", f"must be at most gap ({opts['gap']}), got {opts['min_gap']}")
    if "delimiter" in opts and len(opts["delimiter"]) != 1:
        raise SpecError("data.delimiter", f"must be one character, got {show(opts['delimiter'])}")
    if "path" in opts:
        if not opts["path"].strip():
            raise SpecError("data.path", "must not be empty")
        p = Path(opts["path"]).expanduser()
        if not opts["path"].startswith("data:"):          # a data-folder path is checked on load
            check_regular_file(p if p.is_absolute() else base_dir / p, "data.path")
    return DataConfig(source, FrozenDict(opts))


def _model(table: dict) -> ModelConfig:
    for name in table:
        if name != "layers" and name not in MODEL_RULES:
            raise unknown(f"model.{name}", name, ["layers", *MODEL_RULES])
    if "layers" not in table:
        raise SpecError("model.layers", 'missing required key: an array like [{ type = "dense", units = 10 }]')
    check_nesting(table["layers"])          # before anything that recurses into the layers
    _check_layer_list("model.layers", table["layers"])
    rest = check_table("model", {k: v for k, v in table.items() if k != "layers"}, MODEL_RULES)
    layers = table["layers"]
    ok = isinstance(rest["freeze"], (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(layers) for v in rest["freeze"])
    if not ok:
        raise SpecError("model.freeze", f"must be an array of positions in model.layers (0 to {len(layers) - 1}), "
                                        f"got {show(rest['freeze'])}")
    if rest["compare"] != "none" and not rest["init_from"]:
        raise SpecError("model.compare", '"scratch" compares against a pretrained start: set model.init_from too')
    return ModelConfig(freeze(layers), rest["init_from"], tuple(rest["freeze"]), rest["compare"])


def _check_layer_list(key: str, layers) -> None:
    """The structure only; `engine.model.build_layers` checks each layer's keys and shapes."""
    if not isinstance(layers, list):
        raise SpecError(key, f'expected an array of layer tables like [{{ type = "dense", units = 10 }}], '
                             f"got {show(layers)}")
    if not layers:
        raise SpecError(key, "needs at least one layer")
    for i, layer in enumerate(layers):
        at = f"{key}[{i}]"
        if not isinstance(layer, dict):
            raise SpecError(at, f'expected a table like {{ type = "dense", units = 10 }}, got {show(layer)}')
        if "type" not in layer:
            raise SpecError(f"{at}.type", "missing required key")
        if not isinstance(layer["type"], str):
            raise SpecError(f"{at}.type", f"expected a string, got {show(layer['type'])}")
        if layer["type"] == "residual" and "layers" in layer:
            _check_layer_list(f"{at}.layers", layer["layers"])



def _check_shapes(scenario: Scenario, check_data: bool = False) -> None:
    """The model built against the data's per-sample input shape, and its output against the
    task and classes (the user's data file read only with `check_data`)."""
    import numpy as np

    from descent.engine.data import class_count, input_shape, vocab_size
    from descent.engine.model import build_layers
    from descent.engine.model import fill_from_data

    options = dict(scenario.data.options)
    try:
        in_shape = input_shape(scenario.data.source, options, scenario.base_dir)
        vocab = vocab_size(scenario.data.source, options)
        classes = class_count(scenario.data.source, options)
        if check_data and classes is None:
            classes = data_classes(scenario.data.source, options, scenario.base_dir) or None
    except SpecError as err:
        raise err if err.key.startswith("data") else err.at("data." if err.key else "data") from None
    except DescentError as err:     # the data file's content (bad UTF-8, no header): its key is data.path
        raise SpecError("data.path", str(err)) from None
    dtype = np.float64 if scenario.training.dtype == "float64" else np.float32
    spec = fill_from_data(scenario.model.spec(), vocab)
    try:
        out_shape = build_layers(spec, tuple(in_shape), dtype=dtype)[-1].out_shape
    except SpecError as err:
        raise err.at("model.layers" if err.key.startswith("[") or not err.key else "model.layers.") from None
    task, loss = scenario.task, scenario.training.loss
    if task == "regression" or classes is not None:
        from descent.engine.data.sources import PER_TOKEN_SOURCES

        check_output_fits(out_shape, task, classes or 0, loss, output_layer_key(spec),
                          per_token=scenario.data.source in PER_TOKEN_SOURCES)
    elif loss == "mse":     # the user's classes are counted when the data is read; mse never fits them
        raise SpecError("training.loss", '"mse" is for regression, and this is a classification task; '
                                         'use "cross_entropy" or "auto" (or data.task = "regression")')

