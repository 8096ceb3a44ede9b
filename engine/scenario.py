"""Scenario files: TOML parsed once into frozen dataclasses, with one-line errors.

`load` reads a file, applies `--set` overrides to the raw TOML dict, checks every section
against the rules below (the config dataclasses carry their own rules as field metadata),
checks the model's shapes against the data's input shape, and returns a frozen `Scenario`.
Every failure is a `SpecError` whose str is `FILE[:LINE]: KEY: message`; the line is found
by a small scan of the text only when there is an error to report.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from descent.engine.errors import DescentError, SpecError
from descent.engine.toml_write import dumps as _toml_dumps

REQUIRED = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
OPTIONAL = type("Optional", (), {"__repr__": lambda self: "OPTIONAL"})()   # may be left out; no default


# --- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How one key is checked: its kind, its default and its allowed range or choices."""

    kind: str                      # "str" | "int" | "float" | "bool" | "choice"
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
                raise SpecError(key, f"must be one of {_listing(self.choices)}, got {show(v)}"
                                     f"{_did_you_mean(v, self.choices)}")
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


def _float(default=REQUIRED, **bounds) -> Rule:
    return _number("float", default, **bounds)


def _int(default=REQUIRED, **bounds) -> Rule:
    return _number("int", default, **bounds)


def _choice(default, choices: Sequence[str]) -> Rule:
    return Rule("choice", default, choices=tuple(choices))


def _bool(default) -> Rule:
    return Rule("bool", default)


def _str(default=REQUIRED) -> Rule:
    return Rule("str", default)


def _cfg(rule: Rule):
    """A dataclass field with `rule`'s default that remembers the rule."""
    return field(default=rule.default, metadata={"rule": rule})


def rules_of(cls) -> dict[str, Rule]:
    """The rules of a config dataclass, in field order."""
    return {f.name: f.metadata["rule"] for f in fields(cls)}


PANELS = ("spam", "digits", "nile", "generic")
TASKS = ("classification", "regression")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
LOSSES = ("auto", "cross_entropy", "bce", "mse")
KNOB_TYPES = ("float", "int", "choice", "bool")
SECTIONS = ("scenario", "data", "model", "training", "evaluation", "knobs")
LIVE_KEYS = tuple(f"training.{k}" for k in
                  ("lr", "momentum", "clip_norm", "batch_size", "weight_decay", "beta1", "beta2", "eps", "alpha"))

SCENARIO_RULES = {"name": _str(), "description": _str(), "panel": _choice("generic", PANELS)}


def _split(test_fraction: float) -> dict[str, Rule]:
    return {"test_fraction": _float(test_fraction, gt=0, lt=1), "seed": _int(0, ge=0)}


_TEXT = {"features": _choice("bow", ("bow", "sequence")), "vocab_size": _int(2000, ge=10),
         "max_len": _int(50, ge=1), "dedupe": _bool(False)}

# source -> its options; every key of [data] but `source` is one of these
DATA_OPTIONS: dict[str, dict[str, Rule]] = {
    "mnist": {"limit_train": _int(OPTIONAL, gt=0), "limit_test": _int(OPTIONAL, gt=0)},
    "digits8x8": {**_split(0.25), "standardize": _bool(False)},
    "sms_spam": {**_split(0.3), **_TEXT},
    "spambase": _split(0.3),
    "nile": {"gap": _int(100, ge=0, le=1000), "min_gap": _int(0, ge=0), "facts": _int(8, ge=2, le=12),
             "train_size": _int(20000, gt=0), "test_size": _int(2000, gt=0), "seed": _int(0, ge=0)},
    "csv": {"path": _str(), "label": _str(), "task": _choice("classification", TASKS),
            "delimiter": _str(OPTIONAL), **_split(0.25)},
    "text": {"path": _str(), "text_column": _str("text"), "label": _str("label"),
             "delimiter": _str(OPTIONAL), **_split(0.3), **_TEXT},
}
SOURCES = tuple(DATA_OPTIONS)

_KNOB_RULES = {"key": _str(), "label": _str(OPTIONAL), "type": _choice(REQUIRED, KNOB_TYPES),
               "min": _float(OPTIONAL), "max": _float(OPTIONAL), "log": _bool(False),
               "choices": Rule("array", OPTIONAL), "live": _bool(OPTIONAL)}

# common names people reach for -> our key; used only for "did you mean" and only where the target is allowed
ALIASES = {
    "learning_rate": "lr", "learningrate": "lr", "rate": "lr", "opt": "optimizer", "optim": "optimizer",
    "batch": "batch_size", "batchsize": "batch_size", "n_epochs": "epochs", "num_epochs": "epochs",
    "max_steps": "steps", "num_steps": "steps", "iterations": "steps", "lr_schedule": "schedule",
    "scheduler": "schedule", "warmup": "warmup_steps", "l2": "weight_decay", "wd": "weight_decay",
    "decay": "weight_decay", "grad_clip": "clip_norm", "clip": "clip_norm", "max_grad_norm": "clip_norm",
    "clip_grad_norm": "clip_norm", "epsilon": "eps", "b1": "beta1", "b2": "beta2", "rho": "alpha",
    "lr_min": "min_lr", "eta_min": "min_lr", "precision": "dtype", "engine": "backend",
    "criterion": "loss", "loss_fn": "loss", "random_seed": "seed", "eval_every": "every",
    "interval": "every", "samples": "max_samples", "train": "training", "trainer": "training",
    "optimizer_settings": "training", "eval": "evaluation", "dataset": "data", "network": "model",
    "net": "model", "meta": "scenario", "knob": "knobs", "title": "name", "desc": "description",
    "file": "path", "target": "label", "y": "label", "sep": "delimiter", "separator": "delimiter",
    "test_size": "test_fraction", "test_split": "test_fraction", "name": "label", "kind": "type",
    "values": "choices", "options": "choices", "minimum": "min", "maximum": "max", "log_scale": "log",
}


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

    def spec(self) -> list[dict]:
        """The layers as plain dicts and lists, for `engine.model.build_layers`."""
        return _thaw(self.layers)


@dataclass(frozen=True)
class TrainingConfig:
    optimizer: str = _cfg(_choice("adam", OPTIMIZERS))
    lr: float = _cfg(_float(1e-3, gt=0))
    momentum: float = _cfg(_float(0.0, ge=0, le=1))
    nesterov: bool = _cfg(_bool(False))
    beta1: float = _cfg(_float(0.9, ge=0, lt=1))
    beta2: float = _cfg(_float(0.999, ge=0, lt=1))
    eps: float = _cfg(_float(1e-8, gt=0))
    alpha: float = _cfg(_float(0.99, ge=0, lt=1))
    weight_decay: float = _cfg(_float(0.0, ge=0))
    clip_norm: float = _cfg(_float(0.0, ge=0))
    batch_size: int = _cfg(_int(64, ge=1, le=65536))
    epochs: float = _cfg(_float(5.0, gt=0))
    steps: int = _cfg(_int(0, ge=0))
    schedule: str = _cfg(_choice("constant", SCHEDULES))
    warmup_steps: int = _cfg(_int(0, ge=0))
    step_size: int = _cfg(_int(1000, gt=0))
    gamma: float = _cfg(_float(0.5, gt=0, le=1))
    min_lr: float = _cfg(_float(0.0, ge=0))
    loss: str = _cfg(_choice("auto", LOSSES))
    seed: int = _cfg(_int(0, ge=0))
    dtype: str = _cfg(_choice("float32", ("float32", "float64")))
    backend: str = _cfg(_choice("numba", ("numba", "torch")))
    log_every: int = _cfg(_int(10, ge=1))
    checkpoint_every: int = _cfg(_int(0, ge=0))
    diverge_factor: float = _cfg(_float(1e3, gt=1))


@dataclass(frozen=True)
class EvaluationConfig:
    every: int = _cfg(_int(500, ge=1))
    max_samples: int = _cfg(_int(0, ge=0))
    by_gap: bool = _cfg(_bool(True))


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
        """"classification" or "regression"."""
        return self.data.options.get("task", "classification") if self.data.source == "csv" else "classification"

    def to_dict(self) -> dict:
        """Plain nested dicts and lists, every default filled in; `loads(toml(d))` gives this back."""
        return {
            "scenario": {"name": self.name, "description": self.description, "panel": self.panel},
            "data": {"source": self.data.source, **_thaw(self.data.options)},
            "model": {"layers": _thaw(self.model.layers)},
            "training": asdict(self.training),
            "evaluation": asdict(self.evaluation),
            "knobs": [k.to_dict() for k in self.knobs],
        }


# --- public functions -----------------------------------------------------------------------


def load(path, overrides: Sequence[str] = (), check_shapes: bool = True) -> Scenario:
    """Read and check the scenario file at `path`; `overrides` are `--set KEY=VALUE` strings."""
    file = str(path)
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("", "no such file", file) from None
    except IsADirectoryError:
        raise SpecError("", "is a folder, not a scenario file", file) from None
    except UnicodeDecodeError as e:
        raise SpecError("", f"not UTF-8 text (bad byte at offset {e.start})", file) from None
    except OSError as e:
        raise SpecError("", f"cannot read: {e.strerror}", file) from None
    p = p.resolve()
    return _from_text(text, file, p.parent, p, overrides, check_shapes)


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
            set_path(raw, parts, _thaw(_plain(value)))
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
    return _toml_dumps(d)


def bundled_dir() -> Path:
    """The `scenarios/` folder that ships with descent."""
    return Path(__file__).resolve().parent.parent / "scenarios"


def user_dir() -> Path:
    """$XDG_CONFIG_HOME/descent/scenarios, else ~/.config/descent/scenarios."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "descent" / "scenarios"


def search_dirs() -> list[Path]:
    """Where scenarios are looked for, in order: bundled, ./scenarios, the user folder."""
    return [bundled_dir(), Path.cwd() / "scenarios", user_dir()]


def discover(extra: Sequence[Path] = ()) -> list[tuple[Path, Scenario | SpecError]]:
    """Every scenario file in `search_dirs()` and `extra` (files or folders), each with its
    Scenario or the SpecError it raised (shapes not checked). Each resolved path appears once."""
    found: list[tuple[Path, Scenario | SpecError]] = []
    seen: set[Path] = set()
    files = [p for d in search_dirs() if d.is_dir() for p in sorted(d.glob("*.toml"))]
    for p in map(Path, extra):
        files += sorted(p.glob("*.toml")) if p.is_dir() else [p]
    for p in files:
        resolved = p.expanduser().resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            found.append((resolved, load(p, check_shapes=False)))
        except SpecError as err:
            found.append((resolved, err))
    return found


def resolve_name(name_or_path: str) -> Path:
    """A scenario file from a path, or from a name: the stem of a file in `search_dirs()`
    (first folder first), or a unique prefix of one."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    if "/" in name_or_path or os.sep in name_or_path:
        raise DescentError(f"{name_or_path}: no such scenario file")
    name = name_or_path.removesuffix(".toml")
    by_stem: dict[str, Path] = {}
    for d in search_dirs():
        if d.is_dir():
            for q in sorted(d.glob("*.toml")):
                by_stem.setdefault(q.stem, q)
    if name in by_stem:
        return by_stem[name]
    matches = [s for s in by_stem if s.startswith(name)]
    if len(matches) == 1:
        return by_stem[matches[0]]
    if matches:
        raise DescentError(f"'{name}' matches several scenarios: {', '.join(matches)}")
    known = ", ".join(sorted(by_stem)) or "none found"
    raise DescentError(f"no scenario named '{name}' (known: {known}); or give the path of a .toml file")


# --- key paths ------------------------------------------------------------------------------

_SEGMENT = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_FIRST = re.compile(r"[A-Za-z0-9_-]+")


def parse_key(key: str) -> list[str | int]:
    """"model.layers[1].type" -> ["model", "layers", 1, "type"]."""
    m = _FIRST.match(key)
    if not m:
        raise SpecError(key, "not a key like training.lr or model.layers[1].units")
    parts: list[str | int] = [m.group()]
    pos = m.end()
    while pos < len(key):
        m = _SEGMENT.match(key, pos)
        if not m:
            raise SpecError(key, "not a key like training.lr or model.layers[1].units")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return parts


def format_key(parts: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(parts))


def set_path(raw: dict, parts: Sequence[str | int], value) -> None:
    """Set `raw[parts...] = value`, creating missing tables; errors name the key."""
    cur = raw
    for i, part in enumerate(parts):
        here = format_key(parts[:i]) or "the file"
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if not isinstance(part, int):
                raise SpecError(format_key(parts), f"{here} is an array; index it like {here}[0]")
            if part >= len(cur):
                raise SpecError(format_key(parts), f"index {part} is out of range: {here} has {len(cur)} items")
        elif isinstance(cur, dict):
            if isinstance(part, int):
                raise SpecError(format_key(parts), f"{here} is a table, not an array")
            if last:
                cur[part] = value
                return
            if part not in cur:
                cur[part] = [] if isinstance(parts[i + 1], int) else {}
        else:
            raise SpecError(format_key(parts), f"{here} is a value ({show(cur)}), not a table or array")
        if last:
            cur[part] = value
            return
        cur = cur[part]


_MISSING = object()


def get_path(raw, parts: Sequence[str | int]):
    """`raw[parts...]`, or `_MISSING`."""
    cur = raw
    for part in parts:
        if isinstance(part, int) and isinstance(cur, list) and part < len(cur):
            cur = cur[part]
        elif isinstance(part, str) and isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


def _scalar_paths(raw, prefix: str = "") -> Iterator[str]:
    if isinstance(raw, dict):
        for k, v in raw.items():
            yield from _scalar_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            yield from _scalar_paths(v, f"{prefix}[{i}]")
    else:
        yield prefix


# --- building and checking ------------------------------------------------------------------


def _from_text(text: str, file: str, base_dir: Path, path: Path | None, overrides, check_shapes) -> Scenario:
    raw = _parse(text, file)
    set_keys = _apply_overrides(raw, overrides, file)
    try:
        return _build(raw, base_dir, path, check_shapes, set_keys)
    except SpecError as err:
        raise _locate(err, file, text, set_keys) from None


def _parse(text: str, file: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg, line = str(e), None
        m = re.search(r"\s*\(at line (\d+), column \d+\)$", msg)
        if m:
            msg, line = msg[:m.start()], int(m.group(1))
        elif msg.endswith("(at end of document)"):
            msg, line = msg.removesuffix("(at end of document)").rstrip(), text.count("\n") + 1
        raise SpecError(_guess_key(text, line), f"invalid TOML: {msg}", file, line) from None


def _guess_key(text: str, line: int | None) -> str:
    """The section and key on `line` of a file that failed to parse, as well as a regex can tell."""
    if line is None:
        return ""
    lines = text.splitlines()
    section = ""
    for s in lines[:line - 1]:
        m = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]", s)
        if m:
            section = m.group(1)
    m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*=", lines[line - 1]) if line <= len(lines) else None
    if m:
        return f"{section}.{m.group(1)}" if section else m.group(1)
    return section


def _apply_overrides(raw: dict, overrides: Sequence[str], file: str) -> list[str]:
    keys = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError("", f"bad --set {item!r}: expected KEY=VALUE, like training.lr=0.01", file)
        try:
            parts = parse_key(key)
            set_path(raw, parts, _parse_value(text.strip()))
        except SpecError as err:
            raise SpecError(err.key, f"{err.message} (from --set)", file) from None
        keys.append(format_key(parts))
    return keys


def _parse_value(text: str):
    """A TOML value (0.01, true, "x", [1, 2]); anything that is not one is a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _locate(err: SpecError, file: str, text: str | None, set_keys: Sequence[str]) -> SpecError:
    """`err` with the file named and the line of its key, or "(from --set)" if an override set it."""
    if err.key and any(_related(err.key, k) for k in set_keys):
        return SpecError(err.key, f"{err.message} (from --set)", file)
    line = err.line
    if line is None and text is not None:
        line = _line_of(err.key, text)
    return SpecError(err.key, err.message, err.file or file, line)


def _related(a: str, b: str) -> bool:
    """Whether key `a` is key `b`, inside it, or holds it."""
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def _build(raw: dict, base_dir: Path, path: Path | None, check_shapes: bool,
           set_keys: Sequence[str] = ()) -> Scenario:
    """A checked Scenario from the raw TOML dict; `set_keys` were set by --set or a knob change."""
    for name, v in raw.items():
        if name not in SECTIONS:
            owner = next((s for s, rules in _SECTION_RULES.items() if name in rules), None)
            if owner and not isinstance(v, dict):
                raise SpecError(name, f"unknown top-level key '{name}' (did you mean '{owner}.{name}'? "
                                      f"keys of [{owner}] go below its header)")
            raise _unknown(name, name, SECTIONS, "section")
    head = _check_table("scenario", _section(raw, "scenario"), SCENARIO_RULES)
    for k in ("name", "description"):
        if not head[k].strip():
            raise SpecError(f"scenario.{k}", "must not be empty")
    data = _data(_section(raw, "data"), base_dir)
    model = _model(_section(raw, "model"))
    training = TrainingConfig(**_check_table("training", _section(raw, "training", False), rules_of(TrainingConfig)))
    evaluation = EvaluationConfig(**_check_table("evaluation", _section(raw, "evaluation", False),
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
        knob = _knob(i, k, resolved, data.source, set_keys)
        if knob.key in made:
            raise SpecError(f"knobs[{i}].key", f"'{knob.key}' already has a knob (knobs[{made[knob.key]}])")
        made[knob.key] = i
        out.append(knob)
    scenario = replace(scenario, knobs=tuple(out))
    if check_shapes:
        _check_shapes(scenario)
    return scenario


_SECTION_RULES = {"scenario": SCENARIO_RULES, "training": rules_of(TrainingConfig),
                  "evaluation": rules_of(EvaluationConfig)}


def _section(raw: dict, name: str, required: bool = True) -> dict:
    v = raw.get(name, _MISSING)
    if v is _MISSING:
        if required:
            raise SpecError(name, f"missing required section [{name}]")
        return {}
    if not isinstance(v, dict):
        raise SpecError(name, f"expected a [{name}] table, got {show(v)}")
    return v


def _check_table(section: str, table: dict, rules: Mapping[str, Rule], context: str = "") -> dict:
    """`table`'s values checked against `rules`, defaults filled in, in rule order."""
    for name in table:
        if name not in rules:
            raise _unknown(f"{section}.{name}", name, list(rules), "key", context)
    out = {}
    for name, rule in rules.items():
        key = f"{section}.{name}"
        if name in table:
            out[name] = rule.check(key, table[name]) if rule.kind != "array" else table[name]
        elif rule.default is REQUIRED:
            hint = f" (one of {_listing(rule.choices)})" if rule.choices else ""
            raise SpecError(key, f"missing required key{context}{hint}")
        elif rule.default is not OPTIONAL:
            out[name] = rule.default
    return out


def _data(table: dict, base_dir: Path) -> DataConfig:
    if "source" not in table:
        raise SpecError("data.source", f"missing required key (one of {_listing(SOURCES)})")
    source = _choice(REQUIRED, SOURCES).check("data.source", table["source"])
    options = {k: v for k, v in table.items() if k != "source"}
    opts = _check_table("data", options, DATA_OPTIONS[source], f' for source "{source}"')
    if "min_gap" in opts and opts["min_gap"] > opts["gap"]:
        raise SpecError("data.min_gap", f"must be at most gap ({opts['gap']}), got {opts['min_gap']}")
    if "delimiter" in opts and len(opts["delimiter"]) != 1:
        raise SpecError("data.delimiter", f"must be one character, got {show(opts['delimiter'])}")
    if "path" in opts:
        if not opts["path"].strip():
            raise SpecError("data.path", "must not be empty")
        p = Path(opts["path"]).expanduser()
        p = p if p.is_absolute() else base_dir / p
        if not p.is_file():
            raise SpecError("data.path", f"file not found: {p}")
    return DataConfig(source, FrozenDict(opts))


def _model(table: dict) -> ModelConfig:
    for name in table:
        if name != "layers":
            raise _unknown(f"model.{name}", name, ["layers"])
    if "layers" not in table:
        raise SpecError("model.layers", 'missing required key: an array like [{ type = "dense", units = 10 }]')
    _check_layer_list("model.layers", table["layers"])
    return ModelConfig(_freeze(table["layers"]))


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


def _rule_for(parts: Sequence[str | int], source: str) -> Rule | None:
    """The schema rule for a key path, where the schema has one (not for layer keys)."""
    if len(parts) != 2 or not isinstance(parts[1], str):
        return None
    section, name = parts
    if section == "data":
        return _choice(REQUIRED, SOURCES) if name == "source" else DATA_OPTIONS[source].get(name)
    return _SECTION_RULES.get(section, {}).get(name)


def _knob(i: int, raw, resolved: dict, source: str, set_keys: Sequence[str]) -> Knob:
    """One [[knobs]] table checked. A value set from outside the file (--set, a knob change) may
    lie outside the knob's range or choices: the knob then widens to include it."""
    at = f"knobs[{i}]"
    if not isinstance(raw, dict):
        raise SpecError(at, f"expected a [[knobs]] table, got {show(raw)}")
    v = _check_table(at, raw, _KNOB_RULES)
    kind = v["type"]
    try:
        parts = parse_key(v["key"])
    except SpecError as err:
        raise SpecError(f"{at}.key", f"{show(v['key'])} is {err.message}") from None
    key = format_key(parts)
    current = get_path(resolved, parts)
    if current is _MISSING:
        raise SpecError(f"{at}.key", f"'{key}' is not a key of this scenario"
                                     f"{_did_you_mean(key, list(_scalar_paths(resolved)))}")
    if isinstance(current, (dict, list)):
        raise SpecError(f"{at}.key", f"'{key}' is {show(current)}; a knob turns one value")
    outside = any(_related(key, k) for k in set_keys)
    rule = _rule_for(parts, source)
    wanted = {"int": "int", "float": "float", "bool": "bool", "str": "choice", "choice": "choice"}
    if rule is not None and wanted[rule.kind] != kind and not (kind == "choice" and rule.kind != "bool"):
        holds = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                 "choice": "a choice"}[rule.kind]
        raise SpecError(f"{at}.type", f"'{key}' holds {holds}; use type = \"{wanted[rule.kind]}\"")
    lo = hi = choices = None
    for extra, allowed in (("min", ("float", "int")), ("max", ("float", "int")), ("log", ("float", "int")),
                           ("choices", ("choice",))):
        if extra in raw and kind not in allowed:
            raise SpecError(f"{at}.{extra}", f"only for {' and '.join(allowed)} knobs, not {kind}")
    if kind in ("float", "int"):
        check = _int(OPTIONAL) if kind == "int" else _float(OPTIONAL)
        lo, hi = ((check.check(f"{at}.{b}", raw[b]) if b in raw else None) for b in ("min", "max"))
        for b, x in (("min", lo), ("max", hi)):
            if x is None:
                raise SpecError(f"{at}.{b}", f"required for a {kind} knob")
        if not lo < hi:
            raise SpecError(f"{at}.max", f"must be greater than min ({show(lo)}), got {show(hi)}")
        if v["log"] and lo <= 0:
            raise SpecError(f"{at}.min", f"must be > 0 for a log-scale knob, got {show(lo)}")
        if rule is not None:
            rule.check(f"{at}.min", lo)
            rule.check(f"{at}.max", hi)
        if isinstance(current, bool) or not isinstance(current, (int, float)) or \
                (kind == "int" and not isinstance(current, int)):
            better = "float" if isinstance(current, float) else "choice" if not isinstance(current, bool) else "bool"
            raise SpecError(f"{at}.type", f"'{key}' is {show(current)}; use type = \"{better}\"")
        if outside and not (v["log"] and current <= 0):
            lo, hi = min(lo, current), max(hi, current)
        if not lo <= current <= hi:
            raise SpecError(f"{at}.{'min' if current < lo else 'max'}",
                            f"the range {show(lo)}..{show(hi)} must include the current value {key} = {show(current)}")
    elif kind == "choice":
        if "choices" not in raw:
            raise SpecError(f"{at}.choices", "required for a choice knob")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpecError(f"{at}.choices", f"expected a non-empty array, got {show(choices)}")
        choices = list(choices)
        for j, c in enumerate(choices):
            if isinstance(c, (dict, list)) or not isinstance(c, (str, int, float, bool)):
                raise SpecError(f"{at}.choices[{j}]", f"expected a string or number, got {show(c)}")
            if rule is not None:
                choices[j] = c = rule.check(f"{at}.choices[{j}]", c)
            if any(_same(c, d) for d in choices[:j]):
                raise SpecError(f"{at}.choices[{j}]", f"{show(c)} is listed twice")
        if outside and not any(_same(c, current) for c in choices):
            choices.append(current)
        if not any(_same(c, current) for c in choices):
            raise SpecError(f"{at}.choices", f"must include the current value {key} = {show(current)}")
        choices = tuple(choices)
    elif not isinstance(current, bool):
        raise SpecError(f"{at}.type", f"'{key}' is {show(current)}, not true or false")
    live = v.get("live", key in LIVE_KEYS)
    if live and key not in LIVE_KEYS:
        raise SpecError(f"{at}.live", f"'{key}' applies only on reset; live knobs are allowed for "
                                      f"{', '.join(LIVE_KEYS)}")
    return Knob(key, v.get("label", key), kind, lo, hi, v["log"], choices, live, current)


def _same(a, b) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _check_shapes(scenario: Scenario) -> None:
    """The model built against the data's per-sample input shape (no data loaded)."""
    import numpy as np

    from descent.engine.data import input_shape, vocab_size
    from descent.engine.model import build_layers
    from descent.engine.session import fill_from_data

    options = dict(scenario.data.options)
    try:
        in_shape = input_shape(scenario.data.source, options, scenario.base_dir)
        vocab = vocab_size(scenario.data.source, options)
    except SpecError as err:
        raise err if err.key.startswith("data") else err.at("data." if err.key else "data") from None
    dtype = np.float64 if scenario.training.dtype == "float64" else np.float32
    try:
        build_layers(fill_from_data(scenario.model.spec(), vocab), tuple(in_shape), dtype=dtype)
    except SpecError as err:
        raise err.at("model.layers" if err.key.startswith("[") or not err.key else "model.layers.") from None


# --- messages -------------------------------------------------------------------------------


def show(v) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _toml_dumps({"v": v})[4:-1]
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, (list, tuple)):
        return "an array"
    return str(v)


def _listing(choices: Sequence) -> str:
    return ", ".join(show(c) for c in choices)


def _closest(name: str, candidates: Sequence[str]) -> str | None:
    pool = {c: c for c in candidates}
    for alias, target in ALIASES.items():
        if target in pool:
            pool.setdefault(alias, target)
    m = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.6)
    return pool[m[0]] if m else None


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    best = _closest(name, candidates)
    return f" (did you mean '{best}'?)" if best and best != name else ""


def _unknown(key: str, name: str, allowed: Sequence[str], what: str = "key", context: str = "") -> SpecError:
    return SpecError(key, f"unknown {what} '{name}'{context}{_did_you_mean(name, allowed)}; "
                          f"allowed: {', '.join(allowed)}")


# --- plain values <-> frozen values ---------------------------------------------------------


def _freeze(v):
    if isinstance(v, Mapping):
        return FrozenDict({k: _freeze(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw(v):
    if isinstance(v, Mapping):
        return {k: _thaw(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_thaw(x) for x in v]
    return v


def _plain(v):
    """NumPy scalars (from a slider) as Python ones."""
    return v.item() if type(v).__module__ == "numpy" and hasattr(v, "item") else v


# --- line numbers ---------------------------------------------------------------------------


def _line_of(key: str, text: str) -> int | None:
    """The line where `key` (or, failing that, its nearest parent) is written in `text`."""
    if not key:
        return None
    try:
        lines = _key_lines(text)
    except Exception:   # a locating bug must never hide the real error
        return None
    while key:
        if key in lines:
            return lines[key]
        m = _LAST_PART.search(key)
        key = key[:m.start()] if m else ""
    return None


_LAST_PART = re.compile(r"(\.[^.\[]+|\[\d+\])$")
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")


def _key_lines(text: str) -> dict[str, int]:
    """Map every key path in valid TOML text ("model.layers[1].units", "knobs[0]") to its line."""
    return _Scanner(text).run()


class _Scanner:
    """Just enough of a TOML reader to know where keys are; the text has already parsed."""

    def __init__(self, text: str):
        self.s, self.i, self.line, self.out = text, 0, 1, {}

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def advance(self, n: int = 1) -> None:
        self.line += self.s.count("\n", self.i, self.i + n)
        self.i += n

    def skip(self, newlines: bool = False) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.advance((end if end >= 0 else len(self.s)) - self.i)
            else:
                return

    def record(self, path: str, line: int) -> None:
        self.out.setdefault(path, line)

    def run(self) -> dict[str, int]:
        prefix, counts = "", {}
        while True:
            self.skip(newlines=True)
            if self.i >= len(self.s):
                return self.out
            line, start = self.line, self.i
            if self.s.startswith("[[", self.i):
                self.advance(2)
                name = ".".join(self.key())
                counts[name] = counts.get(name, -1) + 1
                prefix = f"{name}[{counts[name]}]"
                self.record(prefix, line)
                self.to_line_end()
            elif self.peek() == "[":
                self.advance()
                prefix = ".".join(self.key())
                self.record(prefix, line)
                self.to_line_end()
            else:
                parts = self.key()
                path = ".".join([prefix, *parts] if prefix else parts)
                self.record(path, line)
                self.skip()
                if self.peek() == "=":
                    self.advance()
                    self.value(path)
                self.to_line_end()
            if self.i == start:
                self.advance()

    def to_line_end(self) -> None:
        end = self.s.find("\n", self.i)
        self.advance((end if end >= 0 else len(self.s)) - self.i)

    def key(self) -> list[str]:
        parts = []
        while True:
            self.skip()
            if self.peek() in ("'", '"'):
                parts.append(self.string())
            else:
                m = _BARE.match(self.s, self.i)
                if not m:
                    return parts
                parts.append(m.group())
                self.advance(len(m.group()))
            self.skip()
            if self.peek() != ".":
                return parts
            self.advance()

    def string(self) -> str:
        q, start = self.peek(), self.i
        if self.s.startswith(q * 3, self.i):
            j = self.i + 3
            while True:
                j = self.s.find(q * 3, j)
                if j < 0:
                    j = len(self.s)
                    break
                if q == '"' and _escaped(self.s, j):
                    j += 1
                    continue
                break
            while self.s.startswith(q, j + 3):        # up to two quotes may end the content
                j += 1
            self.advance(j + 3 - self.i)
            return self.s[start + 3:j]
        j = self.i + 1
        while j < len(self.s) and self.s[j] not in (q, "\n"):
            j += 2 if q == '"' and self.s[j] == "\\" else 1
        self.advance(j + 1 - self.i)
        return self.s[start + 1:j]

    def value(self, path: str) -> None:
        self.skip()
        c = self.peek()
        if c == "[":
            self.advance()
            n = 0
            while True:
                self.skip(newlines=True)
                if self.peek() in ("]", ""):
                    self.advance()
                    return
                start = self.i
                self.record(f"{path}[{n}]", self.line)
                self.value(f"{path}[{n}]")
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.advance()
                    n += 1
                elif self.i == start:
                    self.advance()
        elif c == "{":
            self.advance()
            while True:
                self.skip(newlines=True)
                if self.peek() in ("}", ""):
                    self.advance()
                    return
                start, line = self.i, self.line
                sub = f"{path}.{'.'.join(self.key())}"
                self.record(sub, line)
                self.skip()
                if self.peek() == "=":
                    self.advance()
                    self.value(sub)
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.advance()
                elif self.i == start:
                    self.advance()
        elif c in ("'", '"'):
            self.string()
        else:
            m = _SCALAR.match(self.s, self.i)
            self.advance(len(m.group()))


def _escaped(s: str, j: int) -> bool:
    """Whether s[j] is preceded by an odd number of backslashes."""
    k = j
    while k > 0 and s[k - 1] == "\\":
        k -= 1
    return (j - k) % 2 == 1
