"""How a loader declares the options a scenario's [data] table may give it.

Each loader module lists, next to the loader, an `Option` per keyword argument: its kind and
bounds. The default is the loader's own keyword default (no default: required; None: may be
left out), so the scenario schema (`descent.engine.scenario.schema.data_options`) and
`sources.load_dataset` both read one definition.
"""

from __future__ import annotations

from typing import NamedTuple


class Option(NamedTuple):
    kind: str                      # "str" | "int" | "float" | "bool" | "choice" | "array" | "any" (loader checks)
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple = ()


SPLIT = {"test_fraction": Option("float", gt=0, lt=1), "seed": Option("int", ge=0)}
