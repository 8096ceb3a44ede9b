"""The scenario schema: each key's rule (kind, default, range), the frozen config dataclasses
that carry those rules as field metadata, and the names a scenario may choose from.

The engine-level names (optimizers, backends, schedules, live settings) come from where the
engine defines them; this module is their one place in the file format.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from descent.engine.errors import SpecError
from descent.engine.names import BACKENDS, DEVICES, LIVE_SETTINGS, OPTIMIZERS
from descent.engine.schedules import SCHEDULES

from .hints import did_you_mean, listing, show, unknown

REQUIRED = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
OPTIONAL = type("Optional", (), {"__repr__": lambda self: "OPTIONAL"})()   # may be left out; no default


# --- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How one key is checked: its kind, its default and its allowed range or choices."""

    kind: str                      # "str" | "int" | "float" | "bool" | "choice" | "array" | "any" (loader checks)
    default: object = REQUIRED     # REQUIRED, OPTIONAL or the value used when the key is absent
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False          # lo itself is not allowed
    hi_open: bool = False
    choices: tuple = ()

    def check(self, key: str, v):
        """`v` if it is allowed (ints widened to float for float keys), else a SpecError on `key`."""
        if self.kind == "bool":
            if not isinstance(v, bool):
                raise SpecError(key, f"expected true or false, got {show(v)}")
            return v
        if self.kind in ("str", "choice"):
            if not isinstance(v, str):
                raise SpecError(key, f"expected a string, got {show(v)}")
            if self.kind == "choice" and v not in self.choices:
                raise SpecError(key, f"must be one of {listing(self.choices)}, got {show(v)}"
                                     f"{did_you_mean(v, self.choices)}")
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (self.kind == "int" and isinstance(v, float)):
            raise SpecError(key, f"expected {'an integer' if self.kind == 'int' else 'a number'}, got {show(v)}")
        if self.kind == "float":
            v = float(v)
            if not math.isfinite(v):
                raise SpecError(key, f"must be a finite number, got {show(v)}")
        below = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        above = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
        if below or above:
            raise SpecError(key, f"must be {self.range_text()}, got {show(v)}")
        return v

    def range_text(self) -> str:
        if self.lo is not None and self.hi is not None and not (self.lo_open or self.hi_open):
            return f"between {show(self.lo)} and {show(self.hi)}"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {show(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {show(self.hi)}")
        return " and ".join(parts)


def _number(kind, default, gt=None, ge=None, lt=None, le=None) -> Rule:
    return Rule(kind, default, lo=ge if gt is None else gt, hi=le if lt is None else lt,
                lo_open=gt is not None, hi_open=lt is not None)


def float_rule(default=REQUIRED, **bounds) -> Rule:
    return _number("float", default, **bounds)


def int_rule(default=REQUIRED, **bounds) -> Rule:
    return _number("int", default, **bounds)


def choice_rule(default, choices: Sequence[str]) -> Rule:
    return Rule("choice", default, choices=tuple(choices))


@dataclass(frozen=True)
class DeviceRule(Rule):
    """training.device: one of DEVICES, or "cuda:N" for one GPU of several."""

    def check(self, key: str, v):
        if isinstance(v, str) and v.startswith("cuda:") and v[5:].isdigit():
            return v
        try:
            return super().check(key, v)
        except SpecError as e:
            raise SpecError(key, e.message.replace(", got", ' or "cuda:N", got', 1)) from None


def bool_rule(default) -> Rule:
    return Rule("bool", default)


def str_rule(default=REQUIRED) -> Rule:
    return Rule("str", default)


def _cfg(rule: Rule):
    """A dataclass field with `rule`'s default that remembers the rule."""
    return field(default=rule.default, metadata={"rule": rule})


def rules_of(cls) -> dict[str, Rule]:
    """The rules of a config dataclass, in field order."""
    return {f.name: f.metadata["rule"] for f in fields(cls)}



PANELS = ("spam", "digits", "nile", "generic", "neuron", "activations", "exploding", "weather", "finetune", "textgen", "seq2seq")
LOSSES = ("auto", "cross_entropy", "bce", "mse")
DECAY_ON = ("all", "matrices")     # weight decay on every tensor, or on those of 2+ dimensions only (nanoGPT)
KNOB_TYPES = ("float", "int", "choice", "bool")
SECTIONS = ("scenario", "data", "model", "training", "evaluation", "knobs")
LIVE_KEYS = tuple(f"training.{k}" for k in LIVE_SETTINGS)

SCENARIO_RULES = {"name": str_rule(), "description": str_rule(), "panel": choice_rule("generic", PANELS)}


@functools.cache
def data_options() -> dict[str, dict[str, Rule]]:
    """source -> the rules of its options, in the loader's order: each loader declares its options'
    kinds and bounds beside it, and its keyword defaults are the defaults (no default: required;
    None: may be left out). Reading them imports the loaders (and NumPy), so it waits until a
    scenario is checked."""
    import inspect

    from descent.engine.data.sources import SOURCES, declared_options

    def rule(option, default) -> Rule:
        default = REQUIRED if default is inspect.Parameter.empty else OPTIONAL if default is None else default
        if option.kind == "choice":
            return choice_rule(default, option.choices)
        if option.kind in ("int", "float"):
            return _number(option.kind, default, option.gt, option.ge, option.lt, option.le)
        return Rule(option.kind, default)

    return {source: {name: rule(*declared) for name, declared in declared_options(source).items()}
            for source in SOURCES}


def __getattr__(name: str):
    # DATA_OPTIONS and SOURCES as names, read from the loaders on first use
    if name == "DATA_OPTIONS":
        return data_options()
    if name == "SOURCES":
        return tuple(data_options())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

KNOB_RULES = {"key": str_rule(), "label": str_rule(OPTIONAL), "type": choice_rule(REQUIRED, KNOB_TYPES),
               "min": float_rule(OPTIONAL), "max": float_rule(OPTIONAL), "log": bool_rule(False),
               "choices": Rule("array", OPTIONAL), "live": bool_rule(OPTIONAL)}


# --- the dataclasses ------------------------------------------------------------------------


class FrozenDict(Mapping):
    """A read-only dict (hashable, picklable, equal to a dict with the same items)."""

    __slots__ = ("_d",)

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_d", dict(*args, **kwargs))

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self) -> Iterator:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(frozenset(self._d.items()))

    def __setattr__(self, name, value):
        raise AttributeError("FrozenDict is read-only")

    def __reduce__(self):
        return (FrozenDict, (self._d,))

    def __repr__(self) -> str:
        return f"FrozenDict({self._d!r})"


@dataclass(frozen=True)
class Knob:
    """A value the dashboard lets the user turn; `default` is its value in the file."""

    key: str
    label: str
    type: str                      # "float" | "int" | "choice" | "bool"
    min: float | None
    max: float | None
    log: bool
    choices: tuple | None
    live: bool                     # applies at the next step; else on reset
    default: object

    def to_dict(self) -> dict:
        d = {"key": self.key, "label": self.label, "type": self.type}
        if self.type in ("float", "int"):
            d.update(min=self.min, max=self.max, log=self.log)
        if self.choices is not None:
            d["choices"] = list(self.choices)
        d["live"] = self.live
        return d


@dataclass(frozen=True)
class DataConfig:
    source: str
    options: Mapping               # the loader's options, defaults filled in (read-only)


@dataclass(frozen=True)
class ModelConfig:
    layers: tuple                  # read-only layer mappings; a residual's `layers` likewise
    # transfer (engine/transfer.py): start from another run's tensors, keep layers fixed, and
    # train the same model from scratch beside it for comparison
    init_from: str = _cfg(str_rule(""))
    freeze: tuple = _cfg(Rule("array", ()))
    compare: str = _cfg(choice_rule("none", ("none", "scratch")))

    def spec(self) -> list[dict]:
        """The layers as plain dicts and lists, for `engine.model.build_layers`."""
        return thaw(self.layers)


@dataclass(frozen=True)
class TrainingConfig:
    optimizer: str = _cfg(choice_rule("adam", OPTIMIZERS))
    lr: float = _cfg(float_rule(1e-3, gt=0))
    momentum: float = _cfg(float_rule(0.0, ge=0, le=1))
    nesterov: bool = _cfg(bool_rule(False))
    beta1: float = _cfg(float_rule(0.9, ge=0, lt=1))
    beta2: float = _cfg(float_rule(0.999, ge=0, lt=1))
    eps: float = _cfg(float_rule(1e-8, gt=0))
    alpha: float = _cfg(float_rule(0.99, ge=0, lt=1))
    weight_decay: float = _cfg(float_rule(0.0, ge=0))
    decay_on: str = _cfg(choice_rule("all", DECAY_ON))
    clip_norm: float = _cfg(float_rule(0.0, ge=0))
    batch_size: int = _cfg(int_rule(64, ge=1, le=65536))
    epochs: float = _cfg(float_rule(5.0, gt=0))
    steps: int = _cfg(int_rule(0, ge=0))
    schedule: str = _cfg(choice_rule("constant", SCHEDULES))
    warmup_steps: int = _cfg(int_rule(0, ge=0))
    step_size: int = _cfg(int_rule(1000, gt=0))
    gamma: float = _cfg(float_rule(0.5, gt=0, le=1))
    min_lr: float = _cfg(float_rule(0.0, ge=0))
    loss: str = _cfg(choice_rule("auto", LOSSES))
    seed: int = _cfg(int_rule(0, ge=0))
    dtype: str = _cfg(choice_rule("float32", ("float32", "float64")))
    backend: str = _cfg(choice_rule("numba", BACKENDS))
    # cpu by default, so a file that names no device trains exactly where it did before
    device: str = _cfg(DeviceRule("choice", "cpu", choices=DEVICES))
    log_every: int = _cfg(int_rule(10, ge=1))
    checkpoint_every: int = _cfg(int_rule(0, ge=0))
    diverge_factor: float = _cfg(float_rule(1e3, gt=1))


@dataclass(frozen=True)
class EvaluationConfig:
    every: int = _cfg(int_rule(500, ge=1))
    max_samples: int = _cfg(int_rule(0, ge=0))
    by_gap: bool = _cfg(bool_rule(True))


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    panel: str
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig
    evaluation: EvaluationConfig
    knobs: tuple[Knob, ...] = ()
    path: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)   # relative data paths resolve against it

    @property
    def task(self) -> str:
        """"classification", "regression" or "sequence" (a class per time step)."""
        from descent.engine.data.sources import REGRESSION_SOURCES, SEQUENCE_SOURCES

        if self.data.source in REGRESSION_SOURCES:
            return "regression"
        if self.data.source in SEQUENCE_SOURCES:
            return "sequence"
        return self.data.options.get("task", "classification") if self.data.source == "csv" else "classification"

    def to_dict(self) -> dict:
        """Plain nested dicts and lists, every default filled in; `loads(toml(d))` gives this back."""
        return {
            "scenario": {"name": self.name, "description": self.description, "panel": self.panel},
            "data": {"source": self.data.source, **thaw(self.data.options)},
            "model": {"layers": thaw(self.model.layers),
                      **{k: thaw(getattr(self.model, k)) for k in MODEL_KEYS if getattr(self.model, k) != MODEL_DEFAULTS[k]}},
            "training": asdict(self.training),
            "evaluation": asdict(self.evaluation),
            "knobs": [k.to_dict() for k in self.knobs],
        }



MODEL_RULES = {f.name: f.metadata["rule"] for f in fields(ModelConfig) if "rule" in f.metadata}
MODEL_KEYS = tuple(MODEL_RULES)
MODEL_DEFAULTS = {k: r.default for k, r in MODEL_RULES.items()}

SECTION_RULES = {"scenario": SCENARIO_RULES, "model": MODEL_RULES, "training": rules_of(TrainingConfig),
                  "evaluation": rules_of(EvaluationConfig)}



def check_table(section: str, table: dict, rules: Mapping[str, Rule], context: str = "") -> dict:
    """`table`'s values checked against `rules`, defaults filled in, in rule order."""
    for name in table:
        if name not in rules:
            raise unknown(f"{section}.{name}", name, list(rules), "key", context)
    out = {}
    for name, rule in rules.items():
        key = f"{section}.{name}"
        if name in table:
            out[name] = rule.check(key, table[name]) if rule.kind not in ("array", "any") else table[name]
        elif rule.default is REQUIRED:
            hint = f" (one of {listing(rule.choices)})" if rule.choices else ""
            raise SpecError(key, f"missing required key{context}{hint}")
        elif rule.default is not OPTIONAL:
            out[name] = rule.default
    return out



def rule_for(parts: Sequence[str | int], source: str) -> Rule | None:
    """The schema rule for a key path, where the schema has one (not for layer keys)."""
    if len(parts) != 2 or not isinstance(parts[1], str):
        return None
    section, name = parts
    if section == "data":
        return choice_rule(REQUIRED, tuple(data_options())) if name == "source" else data_options()[source].get(name)
    return SECTION_RULES.get(section, {}).get(name)



# --- plain values <-> frozen values ---------------------------------------------------------


def freeze(v):
    if isinstance(v, Mapping):
        return FrozenDict({k: freeze(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    return v


def thaw(v):
    if isinstance(v, Mapping):
        return {k: thaw(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [thaw(x) for x in v]
    return v


def plain(v):
    """NumPy scalars (from a slider) as Python ones."""
    return v.item() if type(v).__module__ == "numpy" and hasattr(v, "item") else v

