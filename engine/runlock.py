"""One run per folder: a lock file while a run writes there, and a guard against training
into a folder that already holds another run.

Two `descent run --out same` at once would interleave their records in one metrics.jsonl,
and a new run into an old folder would append to its metrics and replace its checkpoint.
The lock file is created with O_EXCL and holds the owner's pid, host and start time; a lock
whose pid is gone on this host is stale (a run killed with -9) and is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from descent.engine.errors import DescentError

LOCK_NAME = ".descent.lock"
RUN_FILES = ("metrics.jsonl", "checkpoint.npz")       # a folder holding one of these holds a run
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_UNREADABLE_GRACE_S = 10.0   # a lock file being written by its owner right now may still be empty


class RunLocked(DescentError):
    """Another live run holds the folder."""

    def __init__(self, run_dir: Path, owner: "LockInfo | None"):
        self.run_dir, self.owner = run_dir, owner
        who = (f"pid {owner.pid} on {owner.host}, since {time.strftime('%H:%M:%S', time.localtime(owner.started))}"
               if owner else "a lock file that is being written")
        super().__init__(f"{run_dir}: in use by another descent run ({who}); wait for it to end, "
                         f"or choose another folder with --out")


class RunExists(DescentError):
    """The folder holds a finished or interrupted run that a new run would overwrite."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        super().__init__(f"{run_dir}: already holds a run; continue it with `descent resume {run_dir}`, "
                         f"choose another --out, or pass --force to overwrite it")


@dataclass(frozen=True)
class LockInfo:
    pid: int
    host: str
    started: float

    @classmethod
    def mine(cls) -> "LockInfo":
        return cls(os.getpid(), socket.gethostname(), time.time())


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (one we may not signal still exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(run_dir: str | os.PathLike) -> LockInfo | None:
    """The lock's owner, or None when there is no lock or it cannot be parsed."""
    return read_lock_file(Path(run_dir) / LOCK_NAME)


def is_stale(info: LockInfo | None, lock_path: Path) -> bool:
    """A lock is stale when its owner died on this host, or when it stayed unreadable past the
    grace time. A lock from another host is never stale: we cannot see its processes."""
    if info is None:
        try:
            return time.time() - lock_path.lstat().st_mtime > _UNREADABLE_GRACE_S
        except FileNotFoundError:
            return True
    return info.host == socket.gethostname() and not pid_alive(info.pid)


class Lock:
    """A held run-folder lock; `release()` (or leaving the `with` block) removes it."""

    def __init__(self, run_dir: Path, info: LockInfo):
        self.run_dir, self.info, self.path = run_dir, info, run_dir / LOCK_NAME
        self.held = True

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if read_lock(self.run_dir) == self.info:   # never remove a lock someone else took over
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(run_dir: str | os.PathLike) -> Lock:
    """Lock `run_dir` (created if missing) for this process, taking over a stale lock.

    Raises RunLocked when a live run holds it; OSError (the caller's `io_guard`) when the folder
    cannot be written."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    info = LockInfo.mine()
    body = json.dumps({"pid": info.pid, "host": info.host, "started": info.started}).encode()
    for _ in range(3):
        try:
            fd = os.open(path, _FLAGS, 0o644)
        except FileExistsError:
            owner = read_lock(run_dir)
            if not is_stale(owner, path):
                raise RunLocked(run_dir, owner) from None
            _remove_stale(path, owner)
            continue
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        return Lock(run_dir, info)
    raise RunLocked(run_dir, read_lock(run_dir))


def _remove_stale(path: Path, owner: LockInfo | None) -> None:
    # Two runs may find the same stale lock. Moving it aside first, then checking that what was
    # moved is the stale one, keeps the slower of them from deleting the faster one's new lock.
    aside = path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = read_lock_file(aside)
    if owner is not None and moved != owner:
        try:
            os.link(aside, path)     # put the live lock back; fails if a third run holds it now
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def read_lock_file(path: Path) -> LockInfo | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return LockInfo(int(raw["pid"]), str(raw["host"]), float(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holds_run(run_dir: str | os.PathLike) -> bool:
    """Whether `run_dir` holds a run's records (metrics or a checkpoint)."""
    run_dir = Path(run_dir)
    return any((run_dir / name).exists() for name in RUN_FILES)


def refuse_existing_run(run_dir: str | os.PathLike, force: bool = False) -> None:
    """For `descent run --out DIR`: a folder holding a run is `descent resume`'s, unless --force."""
    if not force and holds_run(run_dir):
        raise RunExists(Path(run_dir))
