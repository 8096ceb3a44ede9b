"""Control requests for a running session: the one format of `control.jsonl` in a run folder.

A watcher (`descent watch`, locally or over ssh) never writes run data; it only appends requests,
one JSON object per line, to RUN_DIR/control.jsonl. The session reading the folder polls the file
between steps by byte offset and acts on each request once (by id). One line is well under
PIPE_BUF, so appends from several watchers never interleave inside a line.

A request: {"id": hex, "time": unix seconds, "op": one of OPS, "key": knob key, "value": value}
(key and value only for op = "set"; key is a knob key as `--set` takes it, e.g. "training.lr").

The reading side is here too: `ControlReader` (new complete lines by byte offset, each id once)
and `Steering` (what a session does with each request, between two steps). A session starts
reading at the file's size when it opens its folder, so requests left from an earlier run of a
resumed folder are never applied again. Each request gets a `Control` record in metrics.jsonl,
ok or refused with a one-line reason; an accepted `set` is recorded as a KnobChanged too.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

FILE = "control.jsonl"
OPS = ("set", "pause", "resume", "checkpoint", "stop")
POLL_SECONDS = 0.2          # a running session stats the file at most this often (and paused, sleeps so long)
MAX_LINE = 64 * 1024        # a "line" longer than this without a newline is garbage, not a request coming


def request_line(op: str, key: str | None = None, value=None) -> str:
    """One request as its JSON line (newline included), for a local append or `ssh ... cat >>`."""
    if op not in OPS:
        raise ValueError(f"unknown control op {op!r} (known: {', '.join(OPS)})")
    if (op == "set") != (key is not None):
        raise ValueError("a 'set' request needs a key, and only a 'set' request takes one")
    req = {"id": uuid.uuid4().hex, "time": time.time(), "op": op}
    if op == "set":
        req["key"], req["value"] = key, value
    return json.dumps(req, separators=(",", ":")) + "\n"


def append_request(run_dir, op: str, key: str | None = None, value=None) -> str:
    """Append one request to run_dir/control.jsonl with a single write; returns its id."""
    line = request_line(op, key, value)
    fd = os.open(Path(run_dir) / FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return json.loads(line)["id"]


# ---- reading ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    id: str
    op: str
    key: str | None = None
    value: object = None


@dataclass(frozen=True)
class Malformed:
    """A complete line that is no request; `id` when one could be read from it."""

    reason: str
    id: str | None = None


def parse_line(raw: bytes) -> Request | Malformed:
    try:
        req = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return Malformed(f"not a JSON line ({type(e).__name__})")
    if not isinstance(req, dict):
        return Malformed("not a JSON object")
    rid = req.get("id")
    rid = rid if isinstance(rid, str) and rid else None
    op = req.get("op")
    if rid is None:
        return Malformed("no id")
    if op not in OPS:
        return Malformed(f"unknown op {op!r} (known: {', '.join(OPS)})", rid)
    if op == "set":
        if not isinstance(req.get("key"), str) or "value" not in req:
            return Malformed("a 'set' request needs a key and a value", rid)
        return Request(rid, op, req["key"], req["value"])
    return Request(rid, op)


class ControlReader:
    """The new complete lines of a control file, read by byte offset, each request id once.

    A partial last line waits until its newline comes; a file that shrank or was replaced (another
    inode) is read again from its start, and ids already seen are skipped there. `from_end` starts
    at the file's present size: what was in it before is not for this reader."""

    def __init__(self, path, from_end: bool = True):
        self.path = Path(path)
        self.offset, self.ident, self.partial = 0, None, b""
        self.seen: set[str] = set()
        if from_end:
            try:
                st = os.stat(self.path)
            except OSError:
                return
            self.offset, self.ident = st.st_size, (st.st_dev, st.st_ino)

    def poll(self) -> list[Request | Malformed]:
        try:
            st = os.stat(self.path)
        except OSError:           # not there (yet, or removed): a new file starts from 0
            self.offset, self.ident, self.partial = 0, None, b""
            return []
        ident = (st.st_dev, st.st_ino)
        if ident != self.ident or st.st_size < self.offset:
            self.offset, self.ident, self.partial = 0, ident, b""
        if st.st_size == self.offset:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(st.st_size - self.offset)
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        found: list[Request | Malformed] = []
        if len(self.partial) > MAX_LINE:
            self.partial = b""
            found.append(Malformed(f"a line over {MAX_LINE} bytes without a newline"))
        for raw in lines:
            if not raw.strip():
                continue
            item = parse_line(raw)
            if item.id is not None:
                if item.id in self.seen:
                    continue
                self.seen.add(item.id)
            found.append(item)
        return found


# ---- acting -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """What became of one control request (metrics.jsonl kind "control"): `ok`, or refused and why."""

    step: int
    id: str | None
    op: str | None
    ok: bool
    message: str


def check_set(scenario, key: str, value) -> tuple[str, object]:
    """A `set` request checked against `scenario` as the dashboard's live knobs are: the key must
    exist and be live, the value pass the key's rule. Returns (key, the checked value); raises
    SpecError with a one-line message (key and reason, no file) otherwise."""
    from .errors import SpecError
    from .names import LIVE_SETTINGS
    from .scenario import format_key, parse_key, with_values

    try:
        key = format_key(parse_key(key))
        changed = with_values(scenario, {key: value}, check_shapes=False)
    except SpecError as e:
        raise SpecError(e.key, e.message) from None
    name = key.removeprefix("training.")
    if not key.startswith("training.") or name not in LIVE_SETTINGS:
        raise SpecError(key, f"applies only on reset, not to a running session (live settings: "
                             f"{', '.join(LIVE_SETTINGS)})")
    return key, getattr(changed.training, name)


class Steering:
    """A session's side of control.jsonl. `poll` (when `due`) yields a Control record per new
    request; `pause` holds inside `poll`, reading on, until `resume`, `stop` or the stop event."""

    def __init__(self, run_dir):
        self.reader = ControlReader(Path(run_dir) / FILE)
        self.next_poll = 0.0
        self.paused = False
        self.stopped = False           # a `stop` request set the stop event (not a signal or the user)

    def due(self) -> bool:
        return time.monotonic() >= self.next_poll

    def poll(self, session, stop):
        self.next_poll = time.monotonic() + POLL_SECONDS
        for item in self.reader.poll():
            yield self._act(item, session, stop)
        while self.paused and not stop.is_set():
            stop.wait(POLL_SECONDS)
            for item in self.reader.poll():
                yield self._act(item, session, stop)
        self.paused = False

    def _act(self, item, session, stop) -> Control:
        from .errors import DescentError

        if isinstance(item, Malformed):
            return Control(session.step, item.id, None, False, f"malformed control line: {item.reason}")
        done = session.step
        if getattr(session, "world", None) is not None and item.op in ("set", "pause", "resume"):
            # only rank 0 reads this file: a change or a hold there alone would split the processes
            return Control(done, item.id, item.op, False, f"a torchrun run takes checkpoint and stop only, "
                                                          f"not {item.op}")
        try:
            if item.op == "set":
                key, value = check_set(session.scenario, item.key, item.value)
                session.set_knob(key, value)
                text = f"{key} = {value!r} applies before step {done + 1}"
            elif item.op == "pause":
                text = f"already paused at step {done}" if self.paused else f"paused at step {done}"
                self.paused = True
            elif item.op == "resume":
                text = f"resumed at step {done}" if self.paused else f"not paused (at step {done})"
                self.paused = False
            elif item.op == "checkpoint":
                path = session.save()
                text = f"{path.name} written at step {done}"
            else:
                self.stopped = True
                stop.set()
                text = f"stopping at step {done}"
        except DescentError as e:
            return Control(done, item.id, item.op, False, str(e))
        return Control(done, item.id, item.op, True, text)
