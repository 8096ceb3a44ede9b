"""The run folder's lifecycle, shared by the command line and the dashboard: one name for a new
folder, and the rule for removing one that holds nothing worth keeping."""

from __future__ import annotations

import shutil
import time
from pathlib import Path


def run_dir_for(scenario, root) -> Path:
    """`root/<scenario-stem>-<YYYYmmdd-HHMMSS>`, with `-2`, `-3`... when two runs start in one second."""
    stem = scenario.path.stem if scenario.path else "".join(c if c.isalnum() else "-" for c in scenario.name.lower())
    base = Path(root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def remove_if_empty(session, kept: bool = False) -> bool:
    """Remove the session's folder when it holds only what prepare() wrote: no step trained and
    nothing the user saved or exported into it (`kept`). Returns whether it was removed."""
    out = session.out_dir
    if session.step == 0 and not kept and out is not None and out.is_dir():
        shutil.rmtree(out, ignore_errors=True)
        return True
    return False


def discard(session) -> None:
    """Remove the session's folder whatever it holds (the user chose to discard the run)."""
    if session.out_dir is not None and session.out_dir.exists():
        shutil.rmtree(session.out_dir, ignore_errors=True)
