"""OS errors on the user's files as one-line errors (exit 2) that name the path and the cause.

A full disk, a read-only folder, a file-size limit or an `--out` under a file is the user's
to fix, not a bug: `io_guard` turns the OSError into an `IOFailure`, which the CLI prints as
`descent: cannot write runs/x/checkpoint.npz: No space left on device`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from descent.engine.errors import DescentError


class IOFailure(DescentError):
    """Reading or writing a user's file failed for an OS reason; `str()` is the whole line."""

    exit_code = 2

    def __init__(self, path: str | os.PathLike, action: str, err: OSError):
        self.path, self.action, self.errno = str(path), action, err.errno
        super().__init__(describe(err, path, action))


def describe(err: OSError, path: str | os.PathLike | None = None, action: str = "write") -> str:
    """`cannot ACTION PATH: REASON`, the reason from `os.strerror` (no errno numbers, no repr)."""
    where = str(path if path is not None else (err.filename or "?"))
    reason = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    return f"cannot {action} {where}: {reason}{_hint(err, where)}"


def _hint(err: OSError, where: str) -> str:
    # ENOTDIR alone does not say which part of the path is the file in the way
    if err.errno == errno.ENOTDIR:
        for parent in Path(where).parents:
            if parent.exists() and not parent.is_dir():
                return f" ({parent} is a file, not a folder)"
    if err.errno == errno.ENOENT and not Path(where).parent.exists():
        return f" (the folder {Path(where).parent} does not exist, or was removed)"
    return ""


@contextmanager
def io_guard(path: str | os.PathLike, action: str = "write") -> Iterator[None]:
    """Inside, an OSError on `path` becomes an IOFailure naming it. A closed pipe is left alone:
    the CLI treats a reader that went away as no error."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise IOFailure(path, action, e) from e
