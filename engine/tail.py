"""Follow a run folder while another process writes it: `descent watch`, locally or over ssh.

    transport = LocalTransport(run_dir)          # or engine.remote.SshTransport(host, run_dir)
    watched = WatchedRun(transport)
    restarted, records = watched.poll()          # the records appended since the last poll

A `Transport` reads a run folder's files; `Tailer` keeps the byte offset into metrics.jsonl,
holds a partial last line back until its newline arrives, and starts over from byte 0 when the
file was truncated (shorter than the offset: a fresh `descent run --force` into the folder) or
replaced (another inode: a resume rewrites the file atomically without the records past its
checkpoint). `WatchedRun` turns lines into `engine.records` records and keeps what a snapshot
shows (newest step and evaluation, knob changes, state). Nothing here writes run data; the only
write is `Transport.append` of control requests (engine.control).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

from . import control
from .errors import DescentError
from .records import Alarm, Compiling, Diverged, Evaluation, Finished, KnobChanged, Step, Stopped

# engine.rundir's names, not imported from there: it loads NumPy, and `watch --once` needs none
METRICS, SCENARIO, SUMMARY = "metrics.jsonl", "scenario.toml", "summary.json"

CHUNK = 4 << 20             # at most this many bytes a poll: a huge metrics file is read in slices
KINDS = {cls.__name__.lower(): cls for cls in (Compiling, Step, Evaluation, KnobChanged, Alarm, Diverged,
                                               Finished, Stopped, control.Control)}


class WatchError(DescentError):
    """A run folder that cannot be watched (missing, not a run folder, host unreachable)."""


@dataclass(frozen=True)
class FileState:
    """What tells one file from another at the same path, and how long it is now."""

    ident: str          # "device:inode"
    size: int


class Transport(Protocol):
    """Reads one run folder (local or remote); `label` names it in messages and legends."""

    label: str
    remote: bool            # a round trip per call (poll less often)

    def check(self) -> None:
        """Raise WatchError unless the folder is there and holds a run (scenario or metrics)."""

    def read_new(self, name: str, offset: int, limit: int = CHUNK) -> tuple[FileState | None, bytes]:
        """The file's state now and up to `limit` bytes from `offset` (none when the file is
        shorter than `offset`); (None, b"") when the file is not there (yet)."""

    def read_text(self, name: str) -> str | None:
        """A small file whole, or None when it is not there."""

    def append(self, name: str, text: str) -> None:
        """Append `text` with one write (control requests)."""

    def close(self) -> None:
        """Let go of connections."""


class LocalTransport:
    remote = False

    def __init__(self, run_dir) -> None:
        self.path = Path(run_dir)
        self.label = str(run_dir)

    def check(self) -> None:
        check_local(self.path)

    def read_new(self, name: str, offset: int, limit: int = CHUNK) -> tuple[FileState | None, bytes]:
        try:
            with open(self.path / name, "rb") as f:
                st = os.fstat(f.fileno())
                state = FileState(f"{st.st_dev}:{st.st_ino}", st.st_size)
                if st.st_size < offset:
                    return state, b""
                f.seek(offset)
                return state, f.read(limit)
        except FileNotFoundError:
            return None, b""
        except OSError as e:
            raise WatchError(f"{self.path / name}: cannot read ({e.strerror or e})") from None

    def read_text(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise WatchError(f"{self.path / name}: cannot read ({getattr(e, 'strerror', None) or e})") from None

    def append(self, name: str, text: str) -> None:
        fd = os.open(self.path / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing held open between polls."""


def check_local(path: Path) -> None:
    if not path.exists():
        raise WatchError(f"{path}: no such run folder")
    if not path.is_dir():
        raise WatchError(f"{path}: is a file, not a run folder")
    if not ((path / SCENARIO).exists() or (path / METRICS).exists()):
        raise WatchError(f"{path}: not a run folder (no {SCENARIO} or {METRICS} in it)")


class Tailer:
    """The complete lines appended to one file since the last poll, by byte offset."""

    def __init__(self, transport: Transport, name: str = METRICS) -> None:
        self.transport, self.name = transport, name
        self.offset = 0
        self.ident: str | None = None
        self.partial = b""          # a last line whose newline has not been written yet
        self.last_read = 0          # bytes the last poll read: at its limit, more is waiting

    def poll(self, limit: int = CHUNK) -> tuple[bool, list[str]]:
        """(restarted, lines): `restarted` when the file was truncated or replaced since the last
        poll; then `lines` are the new file's from its start, and what came before is void."""
        state, data = self.transport.read_new(self.name, self.offset, limit)
        restarted = False
        if state is None:                       # removed (or not written yet)
            restarted = self.ident is not None
            self._reset(None)
            return restarted, []
        if self.ident is not None and (state.ident != self.ident or state.size < self.offset):
            restarted = True
            self._reset(state.ident)
            state, data = self.transport.read_new(self.name, 0, limit)
            if state is None:
                return True, []
        self.ident = state.ident
        self.offset += len(data)
        self.last_read = len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return restarted, [line.decode("utf-8", "replace") for line in lines if line.strip()]

    def _reset(self, ident: str | None) -> None:
        self.offset, self.partial, self.ident, self.last_read = 0, b"", ident, 0


def record_of(line: str):
    """A metrics.jsonl line as its engine.records record; None for a line that is no record
    (torn by a kill, or a kind this descent does not know: a newer writer's)."""
    try:
        d = json.loads(line)
    except ValueError:
        return None
    cls = KINDS.get(d.get("kind")) if isinstance(d, dict) else None
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except TypeError:               # a field missing
        return None


class WatchedRun:
    """One run folder followed: its scenario, records and what a snapshot says about it."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.label = transport.label
        self.tailer = Tailer(transport)
        self.scenario_text: str | None = None
        self._clear()

    def _clear(self) -> None:
        self.last_step: Step | None = None
        self.last_eval: Evaluation | None = None
        self.knob_changes: list[KnobChanged] = []
        self.alarms: list[Alarm] = []
        self.end = None             # the newest Finished / Stopped / Diverged, unless steps came after
        self.paused = False         # the run answered a pause request and no resume since
        self.answers: list[control.Control] = []
        self.count = 0
        self._grown: int | None = None     # summary.json's total_steps: read on demand, again after an end

    def open(self) -> None:
        """Check the folder and read its scenario (raises WatchError)."""
        self.transport.check()
        self.scenario_text = self.transport.read_text(SCENARIO)

    def poll(self, limit: int = CHUNK) -> tuple[bool, list]:
        restarted, lines = self.tailer.poll(limit)
        if restarted:
            self._clear()
            self.scenario_text = self.transport.read_text(SCENARIO) or self.scenario_text
        records = [r for r in map(record_of, lines) if r is not None]
        for r in records:
            self.count += 1
            if isinstance(r, Step):
                self.last_step, self.end = r, None
            elif isinstance(r, Evaluation):
                self.last_eval = r
            elif isinstance(r, KnobChanged):
                self.knob_changes.append(r)
            elif isinstance(r, Alarm):
                self.alarms.append(r)
            elif isinstance(r, (Finished, Stopped, Diverged)):
                self.end, self.paused, self._grown = r, False, None      # a summary was just written
            elif isinstance(r, control.Control):
                self.answers.append(r)
                if r.ok and r.op in ("pause", "resume"):
                    self.paused = r.op == "pause"
        return restarted, records

    def catch_up(self) -> None:
        """Poll until everything written so far is read (the snapshot of `--once`)."""
        self.poll()
        while self.tailer.last_read >= CHUNK:
            self.poll()

    @property
    def state(self) -> str:
        if isinstance(self.end, Finished):
            return "finished"
        if isinstance(self.end, Diverged):
            return "diverged"
        if isinstance(self.end, Stopped):
            return "stopped"
        if self.paused:
            return "paused"
        return "running" if self.last_step is not None else "starting"

    def summary(self) -> dict | None:
        text = self.transport.read_text(SUMMARY)
        try:
            return json.loads(text) if text else None
        except ValueError:          # being replaced right now: it is written atomically, so rarely
            return None

    def total_steps(self) -> int | None:
        """The run's budget: its scenario's steps, or more where a resume trained past them
        (summary.json's total_steps, once a sitting of the run has ended); None when neither
        gives it in steps (a budget in epochs needs the data)."""
        try:
            steps = tomllib.loads(self.scenario_text or "").get("training", {}).get("steps", 0)
        except tomllib.TOMLDecodeError:
            steps = 0
        if self._grown is None:     # once, not per poll: over ssh each read is a round trip
            grown = (self.summary() or {}).get("total_steps", 0)
            self._grown = grown if isinstance(grown, int) else 0
        return max(steps if isinstance(steps, int) else 0, self._grown) or None

    def request(self, op: str, key: str | None = None, value=None) -> str:
        """Append a control request to the run folder's control.jsonl; returns its id."""
        line = control.request_line(op, key, value)
        self.transport.append(control.FILE, line)
        return json.loads(line)["id"]

    def close(self) -> None:
        self.transport.close()
