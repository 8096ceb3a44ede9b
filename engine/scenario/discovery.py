"""Where scenario files are found: the bundled ones, ./scenarios and the user's folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from descent.engine.errors import DescentError, SpecError

from .build import load
from .schema import Scenario


def _package():
    """The package `descent.engine.scenario`: callers and tests may replace its `bundled_dir` or
    `search_dirs`, and discovery must see the replacement."""
    return sys.modules[__package__]


def bundled_dir() -> Path:
    """The `scenarios/` folder that ships with descent (the `descent.scenarios` package)."""
    return Path(str(resources.files("descent.scenarios")))


def user_dir() -> Path:
    """$XDG_CONFIG_HOME/descent/scenarios, else ~/.config/descent/scenarios."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "descent" / "scenarios"


def search_dirs() -> list[Path]:
    """Where scenarios are looked for, in order: bundled, ./scenarios, the user folder."""
    return [_package().bundled_dir(), Path.cwd() / "scenarios", user_dir()]


def discover(extra: Sequence[Path] = ()) -> list[tuple[Path, Scenario | SpecError]]:
    """Every scenario file in `search_dirs()` and `extra` (files or folders), each with its
    Scenario or the SpecError it raised (shapes not checked). Each resolved path appears once."""
    found: list[tuple[Path, Scenario | SpecError]] = []
    seen: set[Path] = set()
    files = [p for d in _package().search_dirs() if d.is_dir() for p in sorted(d.glob("*.toml"))]
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
    as_path = "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith(".toml")
    if as_path and p.exists():      # a folder or a device: `load` says what it is, not "no such file"
        return p
    if "/" in name_or_path or os.sep in name_or_path:
        raise DescentError(f"{name_or_path}: no such scenario file")
    name = name_or_path.removesuffix(".toml")
    by_stem: dict[str, Path] = {}
    for d in _package().search_dirs():
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

