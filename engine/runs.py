"""The run folder's lifecycle, shared by the command line and the dashboard: where runs live,
one name for a new folder, the rule for removing one that holds nothing worth keeping, and the
listing `descent runs` prints."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

ENV = "DESCENT_RUNS"


def runs_home() -> Path:
    """Where new runs go: $DESCENT_RUNS, else $XDG_DATA_HOME/descent/runs, else
    ~/.local/share/descent/runs (the XDG spec says to ignore a relative XDG_DATA_HOME)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "descent" / "runs"


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
        _remove_empty_parent(out)
        return True
    return False


def discard(session) -> None:
    """Remove the session's folder whatever it holds (the user chose to discard the run)."""
    if session.out_dir is not None and session.out_dir.exists():
        shutil.rmtree(session.out_dir, ignore_errors=True)
        _remove_empty_parent(session.out_dir)


def _remove_empty_parent(out: Path) -> None:
    # the runs folder the dashboard or `descent run` made for this one run goes with it
    try:
        out.parent.rmdir()
    except OSError:          # not empty, or not ours to remove
        pass


def list_runs(root) -> list[dict]:
    """One row per run folder under `root`, newest first: name, scenario, steps, status and the
    last metric, from summary.json or else the tail of metrics.jsonl (a run still going, or killed)."""
    rows = []
    root = Path(root)
    if not root.is_dir():
        return rows
    for d in root.iterdir():
        if d.is_dir() and ((d / "metrics.jsonl").exists() or (d / "summary.json").exists()):
            rows.append(describe_run(d))
    rows.sort(key=lambda r: r["mtime"], reverse=True)
    return rows


def describe_run(d: Path) -> dict:
    from .runlock import LOCK_NAME, is_stale, read_lock

    row = {"name": d.name, "path": d, "scenario": "?", "steps": 0, "status": "?", "metric": "",
           "mtime": _mtime(d)}
    try:
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        row.update(scenario=summary.get("scenario", "?"), steps=summary.get("steps", 0),
                   status=summary.get("status", "?"), metric=_metric(summary.get("metrics", {})))
    except (OSError, ValueError):
        summary = None
    last_eval, last_step = _tail(d / "metrics.jsonl")
    owner = read_lock(d)
    if last_step is not None and last_step > row["steps"]:     # records past the summary
        row["steps"], row["status"] = last_step, "killed"
        if last_eval is not None:
            row["metric"] = _metric(last_eval.get("metrics", {}))
    elif summary is None:
        row["status"] = "empty"
    if owner is not None and not is_stale(owner, d / LOCK_NAME):
        row["status"] = "running"
    if row["scenario"] == "?":
        row["scenario"] = _scenario_name(d)
    return row


def _tail(path: Path, size: int = 1 << 16) -> tuple[dict | None, int | None]:
    """The last evaluation and the last step in the tail of metrics.jsonl."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None, None
    last_eval, last_step = None, None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if last_step is None and isinstance(rec.get("step"), int):
            last_step = rec["step"]
        if last_eval is None and rec.get("kind") == "evaluation":
            last_eval = rec
        if last_eval is not None and last_step is not None:
            break
    return last_eval, last_step


def _mtime(d: Path) -> float:
    try:
        return max(d.stat().st_mtime, *(f.stat().st_mtime for f in d.iterdir()))
    except OSError:          # a file went while we looked
        return 0.0


def _metric(metrics: dict) -> str:
    for key in ("accuracy", "mae", "mse", "loss"):
        if isinstance(metrics.get(key), (int, float)):
            return f"{key} {metrics[key]:.4f}"
    return ""


def _scenario_name(d: Path) -> str:
    import tomllib

    try:
        return tomllib.loads((d / "scenario.toml").read_text(encoding="utf-8"))["scenario"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return "?"
