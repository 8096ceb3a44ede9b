"""[[knobs]] tables: each checked against the key it turns and that key's rule."""

from __future__ import annotations

from collections.abc import Sequence

from descent.engine.errors import SpecError

from .hints import did_you_mean, show
from .overrides import MISSING, format_key, get_path, parse_key, related, scalar_paths
from .schema import KNOB_RULES, LIVE_KEYS, OPTIONAL, Knob, float_rule, int_rule, check_table, rule_for

def check_knob(i: int, raw, resolved: dict, source: str, set_keys: Sequence[str]) -> Knob:
    """One [[knobs]] table checked. A value set from outside the file (--set, a knob change) may
    lie outside the knob's range or choices: the knob then widens to include it."""
    at = f"knobs[{i}]"
    if not isinstance(raw, dict):
        raise SpecError(at, f"expected a [[knobs]] table, got {show(raw)}")
    v = check_table(at, raw, KNOB_RULES)
    kind = v["type"]
    try:
        parts = parse_key(v["key"])
    except SpecError as err:
        raise SpecError(f"{at}.key", f"{show(v['key'])} is {err.message}") from None
    key = format_key(parts)
    current = get_path(resolved, parts)
    if current is MISSING:
        raise SpecError(f"{at}.key", f"'{key}' is not a key of this scenario"
                                     f"{did_you_mean(key, list(scalar_paths(resolved)))}")
    if isinstance(current, (dict, list)):
        raise SpecError(f"{at}.key", f"'{key}' is {show(current)}; a knob turns one value")
    outside = any(related(key, k) for k in set_keys)
    rule = rule_for(parts, source)
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
        check = int_rule(OPTIONAL) if kind == "int" else float_rule(OPTIONAL)
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

