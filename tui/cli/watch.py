"""`descent watch RUN_DIR|[user@]host:RUN_DIR ...`: the dashboard on run folders another process
writes (engine.tail, engine.remote), or with `--once` a text snapshot of them for logs.

Imports stay light at module level: the parser imports this module for every command.
Watching never writes run data: steering from the view appends requests to the folder's
control.jsonl (engine.control), which the running session reads.
"""

from __future__ import annotations

EXIT_OK = 0


def add_parser(sub) -> None:
    w = sub.add_parser("watch", help="watch run folders that headless runs write, here or over ssh")
    w.add_argument("targets", nargs="+", metavar="RUN_DIR",
                   help="a run folder, or [user@]host:RUN_DIR on another machine (read through ssh); "
                        "several are overlaid like pinned runs")
    w.add_argument("--once", action="store_true",
                   help="print a text snapshot (step, loss, metrics, steps/s, state) and exit")
    w.add_argument("-o", "--ssh-option", dest="ssh_options", action="append", default=[], metavar="KEY=VALUE",
                   help="an ssh option for remote folders, e.g. -o Port=2222 (repeatable; "
                        "$DESCENT_SSH_OPTIONS adds ssh arguments too, e.g. \"-p 2222 -i KEY\")")


def open_runs(targets: list[str], ssh_options: list[str] = ()) -> list:
    """Every target checked and opened, or WatchError for the first that cannot be (the ones
    opened before it are closed again)."""
    from descent.engine.remote import SshTransport, env_options, parse_target
    from descent.engine.tail import LocalTransport, WatchedRun

    extra = [*env_options(), *(arg for opt in ssh_options for arg in ("-o", opt))]
    runs = []
    try:
        for target in targets:
            remote = parse_target(target)
            transport = SshTransport(*remote, options=extra) if remote else LocalTransport(target)
            run = WatchedRun(transport)
            runs.append(run)
            run.open()
    except BaseException:
        for run in runs:
            run.close()
        raise
    return runs


def cmd_watch(args) -> int:
    runs = open_runs(args.targets, args.ssh_options)
    try:
        if args.once:
            for run in runs:
                run.catch_up()
            print("\n".join(snapshot(run) for run in runs), flush=True)
            return EXIT_OK
        from descent.tui.app.watch import make_watch_app     # the one path here that loads Textual

        app = make_watch_app(runs)
        app.run()
        return app.return_code or EXIT_OK
    finally:
        for run in runs:
            run.close()


def snapshot(run) -> str:
    """A few lines about one run: state, newest step, newest evaluation, knob changes, alarms."""
    summary = run.summary() or {}
    name = summary.get("scenario") or scenario_name(run.scenario_text) or "?"
    lines = [f"{run.label}: {name} [{run.state}]"]
    s = run.last_step
    if s is None:
        lines.append("  no step logged yet")
    else:
        total = run.total_steps() or summary.get("steps")
        lines.append(f"  step {s.step:,}" + (f"/{total:,}" if total else "") + f"  epoch {s.epoch:.2f}  "
                     f"loss {s.loss:.4f}  lr {s.lr:.3g}  {s.steps_per_s:,.0f} steps/s  elapsed {s.elapsed:.1f} s")
    if run.last_eval is not None:
        e = run.last_eval
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in e.metrics.items() if isinstance(v, (int, float)))
        lines.append(f"  eval at step {e.step:,} ({e.split}): {metrics}")
    for k in run.knob_changes[-5:]:
        lines.append(f"  knob {k.key} = {k.value} from step {k.step:,}")
    for a in run.alarms[-3:]:
        lines.append(f"  alarm at step {a.step:,}: {a.what}")
    if run.state == "diverged":
        lines.append(f"  diverged: {run.end.reason}")
    return "\n".join(lines)


def scenario_name(text: str | None) -> str | None:
    import tomllib

    try:
        return tomllib.loads(text or "").get("scenario", {}).get("name")
    except tomllib.TOMLDecodeError:
        return None

