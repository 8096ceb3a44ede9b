"""Scenario files: TOML parsed once into frozen dataclasses, with one-line errors.

`load` reads a file, applies `--set` overrides to the raw TOML dict, checks every section
against the schema's rules, checks the model's shapes against the data's input shape, and
returns a frozen `Scenario`. Every failure is a `SpecError` whose str is `FILE[:LINE]: KEY:
message`; the line is found by a small scan of the text only when there is an error to report.

| module | holds |
|---|---|
| `schema.py` | `Rule`, the names and defaults, `Scenario` and its config dataclasses |
| `overrides.py` | key paths (`parse_key`, `set_path`, ...) and `--set KEY=VALUE` |
| `build.py` | `load`, `loads`, `with_values`, `dumps`: building and checking |
| `knobs.py` | `[[knobs]]` tables checked against the keys they turn |
| `locate.py` | line numbers for errors (a small TOML scanner) |
| `discovery.py` | `bundled_dir`, `user_dir`, `search_dirs`, `discover`, `resolve_name` |
| `hints.py` | `show` and "did you mean" |
"""

from .build import dumps, load, loads, with_values
from .discovery import bundled_dir, discover, resolve_name, search_dirs, user_dir
from .hints import ALIASES, show
from .overrides import MISSING, format_key, get_path, parse_key, set_path
from .schema import (BACKENDS, KNOB_RULES, KNOB_TYPES, LIVE_KEYS, LOSSES, OPTIMIZERS, OPTIONAL, PANELS,
                     REQUIRED, SCENARIO_RULES, SCHEDULES, SECTIONS, DataConfig, EvaluationConfig, FrozenDict,
                     Knob, ModelConfig, Rule, Scenario, TrainingConfig, data_options, rules_of)

__all__ = [
    "ALIASES", "BACKENDS", "DATA_OPTIONS", "KNOB_RULES", "KNOB_TYPES", "LIVE_KEYS", "LOSSES", "OPTIMIZERS",
    "OPTIONAL", "PANELS", "REQUIRED", "SCENARIO_RULES", "SCHEDULES", "SECTIONS", "SOURCES", "DataConfig",
    "EvaluationConfig", "FrozenDict", "Knob", "ModelConfig", "Rule", "Scenario", "TrainingConfig", "bundled_dir",
    "MISSING", "data_options", "discover", "dumps", "format_key", "get_path", "load", "loads", "parse_key", "resolve_name",
    "rules_of", "search_dirs", "set_path", "show", "user_dir", "with_values",
]


def __getattr__(name: str):
    # DATA_OPTIONS and SOURCES come from the loaders, which import NumPy: read on first use
    if name in ("DATA_OPTIONS", "SOURCES"):
        from . import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
