"""`descent control RUN_DIR OP [KEY=VALUE...]`: steer a running session from another terminal.

The request goes into RUN_DIR/control.jsonl (engine.control, the format `descent watch` writes
too); the session acts on it between two steps and records the outcome in metrics.jsonl, which
this command then waits for (`--wait` seconds) and prints. A `set` is checked here first against
the run folder's scenario.toml, so a bad key or value fails at once (exit 2) and never reaches the run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
WAIT_SECONDS = 10.0


def add_parser(sub) -> None:
    from descent.engine.control import OPS

    c = sub.add_parser("control", help="steer a running run: set a live knob, pause, resume, checkpoint, stop")
    c.add_argument("run_dir", metavar="RUN_DIR")
    c.add_argument("op", choices=OPS, metavar="OP", help=f"one of: {', '.join(OPS)}")
    c.add_argument("assignments", nargs="*", metavar="KEY=VALUE",
                   help="for set: a live setting and its value, e.g. training.lr=0.01 (several allowed)")
    c.add_argument("--wait", type=float, default=WAIT_SECONDS, metavar="SECONDS",
                   help=f"wait this long for the run's answer (default {WAIT_SECONDS:g}; 0: do not wait)")


def cmd_control(args) -> int:
    from descent.engine.control import append_request, check_set
    from descent.engine.errors import DescentError, SpecError
    from descent.engine.rundir import METRICS, SCENARIO

    run_dir = Path(args.run_dir)
    if not (run_dir / SCENARIO).is_file():
        what = "no such folder" if not run_dir.exists() else "not a run folder (no scenario.toml in it)"
        raise DescentError(f"{run_dir}: {what}")
    if (args.op == "set") != bool(args.assignments):
        raise DescentError("control: 'set' takes KEY=VALUE (e.g. training.lr=0.01), and only 'set' takes one")
    sets = []
    if args.assignments:
        scenario = _scenario(run_dir)
        for item in args.assignments:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise DescentError(f"control: bad {item!r}: expected KEY=VALUE, like training.lr=0.01")
            try:
                key, _ = check_set(scenario, key.strip(), _value(text.strip()))
            except SpecError as e:
                raise DescentError(f"{run_dir}: {e}") from None
            sets.append((key, _value(text.strip())))
    if not _running(run_dir):
        return _fail(f"{run_dir}: no descent run is training there now; a session reads only the requests "
                     f"sent while it runs (continue the run with `descent resume {run_dir}`)", EXIT_FAILED)
    metrics = run_dir / METRICS
    start = metrics.stat().st_size if metrics.exists() else 0
    ids = [append_request(run_dir, "set", k, v) for k, v in sets] if sets else [append_request(run_dir, args.op)]
    if args.wait <= 0:
        print(f"descent: sent {args.op} to {run_dir}")
        return EXIT_OK
    answers = _answers(metrics, start, ids, args.wait)
    refused = False
    for rid in ids:
        rec = answers.get(rid)
        if rec is None:
            print(f"descent: sent {args.op} to {run_dir}; no answer within {args.wait:g} s "
                  f"(its outcome will be in {metrics})")
        elif rec.get("ok"):
            print(f"descent: {rec.get('message')}")
        else:
            refused = True
            print(f"descent: refused: {rec.get('message')}", file=sys.stderr)
    return EXIT_FAILED if refused else EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"descent: {message}", file=sys.stderr)
    return code


def _scenario(run_dir: Path):
    from descent.engine.scenario import loads

    path = run_dir / "scenario.toml"
    return loads(path.read_text(encoding="utf-8"), name=str(path), base_dir=run_dir, check_shapes=False)


def _value(text: str):
    from descent.engine.scenario.overrides import _parse_value

    return _parse_value(text)


def _running(run_dir: Path) -> bool:
    from descent.engine import runlock

    owner = runlock.read_lock(run_dir)
    return owner is not None and not runlock.is_stale(owner, run_dir / runlock.LOCK_NAME)


def _answers(metrics: Path, start: int, ids: list[str], wait: float) -> dict[str, dict]:
    """The control records for `ids` that the run writes into metrics.jsonl after byte `start`."""
    found: dict[str, dict] = {}
    deadline = time.monotonic() + wait
    offset, partial = start, b""
    while len(found) < len(ids) and time.monotonic() < deadline:
        try:
            with open(metrics, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            data = b""
        offset += len(data)
        *lines, partial = (partial + data).split(b"\n")
        for raw in lines:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("kind") == "control" and rec.get("id") in ids:
                found[rec["id"]] = rec
        if len(found) < len(ids):
            time.sleep(0.05)
    return found
