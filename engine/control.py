"""Control requests for a running session: the one format of `control.jsonl` in a run folder.

A watcher (`descent watch`, locally or over ssh) never writes run data; it only appends requests,
one JSON object per line, to RUN_DIR/control.jsonl. The session reading the folder polls the file
between steps by byte offset and acts on each request once (by id). One line is well under
PIPE_BUF, so appends from several watchers never interleave inside a line.

A request: {"id": hex, "time": unix seconds, "op": one of OPS, "key": knob key, "value": value}
(key and value only for op = "set"; key is a knob key as `--set` takes it, e.g. "training.lr").
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

FILE = "control.jsonl"
OPS = ("set", "pause", "resume", "checkpoint", "stop")


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
