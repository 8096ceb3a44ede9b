"""Crash reports for bugs (not bad input): the traceback, written where only the user writes.

A fixed name in a shared folder (`/tmp/descent-error.txt`) lets anyone plant a symlink there
and have us overwrite the file it points to. So the report goes into the run folder or the
user's state folder (`$XDG_STATE_HOME/descent`, default `~/.local/state/descent`), under a
fresh name, created with O_EXCL and O_NOFOLLOW through a folder opened without following links.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def state_dir() -> Path:
    """`$XDG_STATE_HOME/descent`; the XDG spec says to ignore a relative value."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "descent"


def report_text(exc: BaseException | None = None) -> str:
    """The report: versions and the command line first, then the traceback."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("descent")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    tb = "".join(traceback.format_exception(exc)) if exc is not None else traceback.format_exc()
    return (f"descent {version}, Python {platform.python_version()}, {platform.platform()}\n"
            f"command: {' '.join(sys.argv)}\ntime: {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n\n{tb}")


def write_crash_report(text: str, run_dir: str | os.PathLike | None = None) -> Path:
    """Write `text` to a new file and return its path: in `run_dir` when given and writable,
    else in `state_dir()`, else a private temporary file. Never overwrites, never follows a link."""
    folders = ([Path(run_dir)] if run_dir is not None else []) + [state_dir()]
    for folder in folders:
        try:
            return _write_new(folder, text)
        except OSError:
            continue
    fd, name = tempfile.mkstemp(prefix="descent-crash-", suffix=".txt")   # O_EXCL, mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)


def _write_new(folder: Path, text: str) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    dir_fd = os.open(folder, _DIR_FLAGS)       # ELOOP when the folder itself is a planted link
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(100):
            name = f"crash-{stamp}-{os.getpid()}" + (f"-{n}" if n else "") + ".txt"
            try:
                fd = os.open(name, _FLAGS, 0o600, dir_fd=dir_fd)
            except FileExistsError:            # a name taken, by us earlier or by a planted link
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            return folder / name
        raise FileExistsError(f"no free crash report name in {folder}")
    finally:
        os.close(dir_fd)


def crash_report(exc: BaseException | None = None, run_dir: str | os.PathLike | None = None) -> Path:
    """`write_crash_report(report_text(exc), run_dir)`: the one call the CLI and the TUI make."""
    return write_crash_report(report_text(exc), run_dir)
