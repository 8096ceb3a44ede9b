"""Issue 9: the scenario loader, fed mutated bundled scenarios, either returns a Scenario or
raises a DescentError; never another exception (which the CLI would show as an internal error).

Bounded and derandomized, so CI sees the same examples on every run.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from descent.engine.errors import DescentError
from descent.engine.scenario import Scenario, loads

BUNDLED = Path(__file__).resolve().parents[1] / "scenarios"
TEXTS = {p.name: p.read_text(encoding="utf-8") for p in sorted(BUNDLED.glob("*.toml"))}
RAW = {name: tomllib.loads(text) for name, text in TEXTS.items()}
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

RHS = ["1", "-1", "0.0", "nan", '"x"', "[]", "{}", "true", "[[1]]"]


def _keys(v):
    if isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from _keys(x)
    elif isinstance(v, list):
        for x in v:
            yield from _keys(x)


# the names the bundled scenarios use, so that random keys often hit a real rule
NAMES = sorted({k for raw in RAW.values() for k in _keys(raw)} | {"units", "type", "hidden", "layers"})
scalars = st.one_of(
    st.integers(-(2 ** 63), 2 ** 63 - 1), st.sampled_from([0, 1, -1, 2, 10 ** 9]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 1.0, -0.0, 1e-300, 1e300]),
    st.booleans(), st.text(max_size=12), st.sampled_from(NAMES),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(NAMES) | st.text(min_size=1, max_size=6),
                                                 inner, max_size=4)), max_leaves=12)


def slots(v):
    """Every (container, key) pair inside the raw TOML tree, tables and arrays alike."""
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        yield v, k
        yield from slots(x)


def check(text: str) -> None:
    try:
        got = loads(text, name="fuzz.toml", base_dir=BUNDLED)
    except DescentError as e:
        assert str(e) and "\n" not in str(e).strip(), repr(str(e))
    else:
        assert isinstance(got, Scenario)


@FUZZ
@given(name=st.sampled_from(sorted(RAW)), data=st.data())
def test_mutated_tree_loads_or_raises_descent_error(name, data):
    raw = copy.deepcopy(RAW[name])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        spots = list(slots(raw))
        if not spots:
            break
        container, key = data.draw(st.sampled_from(spots), label="where")
        op = data.draw(st.sampled_from(["drop", "set", "add", "nest", "retype"]), label="op")
        if op == "drop":
            del container[key]
        elif op == "set":
            container[key] = data.draw(values, label="value")
        elif op == "add" and isinstance(container, dict):
            container[data.draw(st.sampled_from(NAMES) | st.text(min_size=1, max_size=8), label="key")] = \
                data.draw(values, label="value")
        elif op == "nest":
            depth = data.draw(st.integers(1, 40), label="depth")
            v = container[key]
            for _ in range(depth):
                v = data.draw(st.sampled_from([[v], {"type": "residual", "layers": [v]}, {"x": v}]), label="wrap")
            container[key] = v
        elif op == "retype":
            v = container[key]
            container[key] = str(v) if not isinstance(v, str) else (len(v) if v else 0.5)
    try:
        text = tomli_w.dumps(raw)
    except (TypeError, ValueError):   # a tree TOML cannot hold (an array of tables in an array, say)
        return
    check(text)


@FUZZ
@given(name=st.sampled_from(sorted(TEXTS)), data=st.data())
def test_mutated_text_loads_or_raises_descent_error(name, data):
    lines = TEXTS[name].splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        op = data.draw(st.sampled_from(["drop", "dup", "cut", "insert", "swap"]), label="op")
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])), label="at")]
        elif op == "insert":
            key = data.draw(st.sampled_from(NAMES), label="key")
            lines.insert(i, f"{key} = {data.draw(st.sampled_from(RHS), label='value')}\n")
        elif op == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
    check("".join(lines))


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_every_bundled_scenario_loads_unmutated(name):
    # the fuzz starts from these; a bundled file that no longer loads would make it test nothing
    assert math.isfinite(loads(TEXTS[name], name=name, base_dir=BUNDLED).training.lr)
