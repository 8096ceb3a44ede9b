"""A run folder while a session writes into it: locked, never mixing two runs, and every OS error
on it an `IOFailure` (one line naming the path, exit 2) rather than an internal error.

    folder = RunFolder(path)
    folder.preflight(resume=False, force=False)     # cheap checks, before any data is loaded
    folder.open(scenario_toml, resume_step=None)    # lock, clean up, scenario.toml, metrics.jsonl
    folder.record(line); folder.write_text("summary.json", text); folder.save_checkpoint(a, m)
    folder.close()                                  # metrics closed, lock released

A fresh run refuses a folder that holds a run unless forced (then the old run's files go); a
resumed run first removes what a killed write left (`.*.tmp`) and the metrics records past its
checkpoint, so the steps in metrics.jsonl stay strictly increasing.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

from . import checkpoint, runlock
from .errors import DescentError
from .ioerrors import IOFailure, io_guard

FORMAT = 1                  # the run-folder format this descent writes and the newest it reads
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
SCENARIO = "scenario.toml"
DATA = "data.json"          # what turns raw inputs into model inputs (engine/predict.py)


def check_format(found, where) -> None:
    """Refuse a run folder written by a newer descent: its files may mean something else."""
    if isinstance(found, int) and found > FORMAT:
        raise DescentError(f"{where}: written by a newer descent (run format {found}; this one reads "
                           f"up to {FORMAT}); upgrade descent to continue it")


def _not_a_folder(path: Path) -> OSError | None:
    """Why `path` cannot be a run folder: it, or a folder above it, is a file, or the nearest
    folder that exists takes no writes (read-only, or not this user's)."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                return OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(p))
            if os.access(p, os.W_OK | os.X_OK):
                return None
            try:
                code = errno.EROFS if os.statvfs(p).f_flag & os.ST_RDONLY else errno.EACCES
            except OSError:
                code = errno.EACCES
            return OSError(code, os.strerror(code), str(p))
    return None


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock: runlock.Lock | None = None
        self._metrics = None

    def preflight(self, *, resume: bool = False, force: bool = False) -> None:
        """What can be told before minutes of loading: a path that cannot be a folder, a folder
        in use, a folder holding another run. `open` checks again, under the lock."""
        err = _not_a_folder(self.path)
        if err is not None:
            raise IOFailure(self.path, "use as the run folder", err)
        owner = runlock.read_lock(self.path)
        if owner is not None and not runlock.is_stale(owner, self.path / runlock.LOCK_NAME):
            raise runlock.RunLocked(self.path, owner)
        if not resume:
            runlock.refuse_existing_run(self.path, force)

    def open(self, scenario_toml: str, *, resume_step: int | None = None, force: bool = False) -> None:
        self.preflight(resume=resume_step is not None, force=force)
        with io_guard(self.path, "create the run folder"):
            self.lock = runlock.acquire(self.path)
        try:
            if resume_step is None:      # again under the lock: a run may have ended here meanwhile
                runlock.refuse_existing_run(self.path, force)
            with io_guard(self.path, "prepare the run folder"):
                self._clean(resume_step, force)
                scenario = self.path / SCENARIO
                if resume_step is None or not scenario.exists():
                    checkpoint.atomic_write_text(scenario, scenario_toml)
                self._metrics = open(self.path / METRICS, "w" if resume_step is None else "a", encoding="utf-8")
        except BaseException:
            self.lock.release()
            raise

    def _clean(self, resume_step: int | None, force: bool) -> None:
        if resume_step is None:
            # a fresh run records its own data: one left here (a forced-over run's, or a run that
            # stopped before its first record) would be checked as if this run were resuming it
            (self.path / DATA).unlink(missing_ok=True)
            if force:        # --force: the old run goes, so nothing of it is mistaken for this one
                for name in (CHECKPOINT, SUMMARY):
                    (self.path / name).unlink(missing_ok=True)
            return
        for debris in self.path.glob(".*.tmp"):       # checkpoint.atomic_write's temp files
            debris.unlink(missing_ok=True)
        metrics = self.path / METRICS
        if metrics.exists():
            lines = metrics.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [ln for ln in lines if _step_of(ln) <= resume_step]
            if len(kept) != len(lines):
                checkpoint.atomic_write_text(metrics, "".join(kept))

    def _check_alive(self, target: Path) -> None:
        # a folder removed mid-run: the open metrics file still takes writes, to nowhere
        gone = not self.path.is_dir() or (self._metrics is not None and os.fstat(self._metrics.fileno()).st_nlink == 0)
        if gone:             # said outright: the folder may still be half-removed right now
            err = IOFailure(target, "write", OSError(errno.ENOENT, os.strerror(errno.ENOENT), str(target)))
            err.args = (f"cannot write {target}: {os.strerror(errno.ENOENT)} (the run folder {self.path} "
                        f"was removed)",)
            raise err

    def record(self, line: str) -> None:
        target = self.path / METRICS
        self._check_alive(target)
        with io_guard(target, "write"):
            self._metrics.write(line)
            self._metrics.flush()

    def write_text(self, name: str, text: str) -> None:
        target = self.path / name
        self._check_alive(target)
        with io_guard(target, "write"):
            checkpoint.atomic_write_text(target, text)

    def save_checkpoint(self, path, arrays: dict, meta: dict) -> None:
        path = Path(path)
        if path.parent == self.path:
            self._check_alive(path)
        with io_guard(path, "write"):
            checkpoint.save(path, arrays, {**meta, "format": FORMAT})

    def close(self) -> None:
        if self._metrics is not None:
            try:
                self._metrics.close()
            except OSError:      # the last flush failed (full disk): what was written stays
                pass
            self._metrics = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _step_of(line: str) -> float:
    """A record's step; a line torn by a kill -9 mid-write counts as past every checkpoint."""
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError, TypeError):
        return math.inf


def versions() -> dict:
    """What made a run, for summary.json; torch's version from its metadata (importing it costs seconds)."""
    import importlib.metadata

    found = {}
    for name in ("descent", "numpy", "numba", "torch"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found
