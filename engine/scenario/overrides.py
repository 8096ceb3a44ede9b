"""Key paths ("model.layers[1].units") and `--set KEY=VALUE` overrides on the raw TOML dict."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Sequence

from descent.engine.errors import SpecError

from .hints import show

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


MISSING = object()


def get_path(raw, parts: Sequence[str | int]):
    """`raw[parts...]`, or `MISSING`."""
    cur = raw
    for part in parts:
        if isinstance(part, int) and isinstance(cur, list) and part < len(cur):
            cur = cur[part]
        elif isinstance(part, str) and isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return MISSING
    return cur


def scalar_paths(raw, prefix: str = "") -> Iterator[str]:
    if isinstance(raw, dict):
        for k, v in raw.items():
            yield from scalar_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            yield from scalar_paths(v, f"{prefix}[{i}]")
    else:
        yield prefix


def apply_overrides(raw: dict, overrides: Sequence[str], file: str) -> list[str]:
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


def related(a: str, b: str) -> bool:
    """Whether key `a` is key `b`, inside it, or holds it."""
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))

