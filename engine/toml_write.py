"""A small TOML writer for what scenario files hold (there is no tomli_w in our dependencies).

Tables become `[a.b]` sections; a list of tables at the top level becomes `[[name]]` blocks,
deeper down a multi-line array of inline tables (the `[model] layers` style). Floats are
written with `repr`, so `tomllib.loads(dumps(d)) == d` for these types: str, int, float, bool,
lists or tuples, and mappings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def dumps(data: Mapping) -> str:
    """`data` as TOML text, ending in one newline."""
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip("\n") + "\n"


def _table(lines: list[str], path: list[str], table: Mapping) -> None:
    later = []                                   # sub-tables go after this table's own keys
    for k, v in table.items():
        if isinstance(v, Mapping) or (not path and _is_table_list(v)):
            later.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_value(v, top=True)}")
    for k, v in later:
        name = ".".join(_key(p) for p in [*path, k])
        if isinstance(v, Mapping):
            lines += ["", f"[{name}]"]
            _table(lines, [*path, k], v)
        else:
            for item in v:
                lines += ["", f"[[{name}]]"]
                _table(lines, [*path, k], item)


def _is_table_list(v) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _value(v, top: bool = False) -> str:
    """One value; `top` = directly after `key =` in a table, where a list of tables may span lines."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        if top and _is_table_list(v):
            return "[\n" + "".join(f"  {_value(x)},\n" for x in v) + "]"
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML: {v!r}")


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
