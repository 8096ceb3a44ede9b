"""The `descent` command line: the parser and its commands (the dashboard, headless runs,
validation and data). The headless runner and its progress printer are in `headless`.

Imports stay light at module level (argparse only): `descent --help` loads none of numba, torch
or textual; each command imports what it needs, and nothing here imports Textual but `tui`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"descent: {message}", file=sys.stderr)
    return code


def build_parser() -> Parser:
    p = Parser(prog="descent", description="Train neural networks in the terminal and watch them learn.")
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    def common(sp, scenario=True):
        if scenario:
            sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a scenario key, e.g. --set training.lr=0.01 (repeatable)")
            sp.add_argument("--seed", type=int, help="seed for init, data order and dropout")
            sp.add_argument("--backend", choices=["numba", "torch"], help="engine backend (default: the scenario's)")
        sp.add_argument("--data", metavar="DIR", help="data folder (default: $DESCENT_DATA or ~/.local/share/descent/data)")

    t = sub.add_parser("tui", help="open the dashboard (the default command)")
    t.add_argument("scenario", nargs="?", help="bundled name (spam, digits, nile) or a .toml file")
    common(t)

    r = sub.add_parser("run", help="train headless and write metrics, checkpoint and summary")
    r.add_argument("scenario", help="bundled name (spam, digits, nile) or a .toml file")
    budget = r.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="train this many steps (overrides the scenario)")
    budget.add_argument("--epochs", type=float, help="train this many epochs (overrides the scenario)")
    r.add_argument("--out", metavar="DIR", help="output folder (default: runs/<scenario>-<time>)")
    common(r)

    sn = sub.add_parser("snapshot", help="train N steps, then write the dashboard as an SVG picture")
    sn.add_argument("scenario", help="bundled name (spam, digits, nile) or a .toml file")
    sn.add_argument("--steps", type=int, help="train this many steps first (default 200)")
    sn.add_argument("--view", metavar="NAME", help="the tab to show: grads, time (recurrent models), panel")
    sn.add_argument("--size", default="120x40", metavar="COLSxROWS", help="terminal size (default 120x40)")
    sn.add_argument("--out", required=True, metavar="FILE.svg", help="the SVG file to write")
    common(sn)

    rs = sub.add_parser("resume", help="continue a headless run from its folder")
    rs.add_argument("run_dir", metavar="DIR")
    rs.add_argument("--steps", type=int, help="train this many more steps (default: to the run's budget)")
    common(rs, scenario=False)

    pr = sub.add_parser("predict", help="class probabilities for texts, with a run's checkpoint (spam: P(spam))")
    pr.add_argument("run_dir", metavar="DIR")
    pr.add_argument("texts", nargs="+", metavar="TEXT")
    pr.add_argument("--data", metavar="DIR")

    v = sub.add_parser("validate", help="check scenario files; prints one line per file")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    sub.add_parser("list", help="list bundled and user scenarios")

    d = sub.add_parser("data", help="datasets: where they are looked for, and download")
    dsub = d.add_subparsers(dest="data_command", parser_class=Parser, metavar="ACTION", required=True)
    f = dsub.add_parser("fetch", help="download a dataset with checksum checks")
    f.add_argument("name", choices=["mnist", "sms_spam", "spambase", "all"])
    f.add_argument("--data", metavar="DIR", help="data folder to download into")
    w = dsub.add_parser("where", help="print the data folder and which datasets it holds")
    w.add_argument("--data", metavar="DIR")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "tui"
    from descent.engine.errors import DescentError

    try:
        if command == "tui":
            return cmd_tui(args)
        return {"run": cmd_run, "resume": cmd_resume, "predict": cmd_predict, "validate": cmd_validate, "list": cmd_list,
                "data": cmd_data, "snapshot": cmd_snapshot}[command](args)
    except DescentError as e:
        return fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:   # output piped into `head` and the reader left: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:  # a bug, not bad input: keep the one-line contract, keep the details
        import tempfile
        import traceback

        log = Path(tempfile.gettempdir()) / "descent-error.txt"
        log.write_text(traceback.format_exc(), encoding="utf-8")
        return fail(f"internal error: {type(e).__name__}: {e} (traceback in {log}; please report it)",
                    EXIT_FAILED)


# ---- commands -----------------------------------------------------------------------------------
def cmd_tui(args) -> int:
    from descent.engine.scenario import load, resolve_name

    name = getattr(args, "scenario", None)
    overrides = getattr(args, "overrides", [])
    scenario = load(resolve_name(name), overrides=overrides) if name else None
    from descent.tui.app import make_app        # the one command that loads Textual

    app = make_app(scenario=scenario, data_dir=getattr(args, "data", None),
                   backend=getattr(args, "backend", None), seed=getattr(args, "seed", None))
    app.run()
    return app.return_code or EXIT_OK


def cmd_run(args) -> int:
    from descent.engine.scenario import load, resolve_name

    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"training.steps={args.steps}")
    if args.epochs is not None:
        overrides += [f"training.epochs={args.epochs}", "training.steps=0"]
    path = resolve_name(args.scenario)
    scenario = load(path, overrides=overrides)
    from descent.engine.runs import run_dir_for
    from descent.engine.session import Session

    out = Path(args.out) if args.out else run_dir_for(scenario, "runs")
    session = Session(scenario, data_root=args.data, out_dir=out, backend=args.backend, seed=args.seed)
    from .headless import drive

    return drive(session, steps=None, own_folder=args.out is None)


def cmd_snapshot(args) -> int:
    from descent.engine.scenario import load, resolve_name
    from descent.tui.app.snapshot import check_out, parse_size

    size = parse_size(args.size)            # bad input fails before anything loads or trains
    check_out(args.out)
    scenario = load(resolve_name(args.scenario), overrides=args.overrides)
    from descent.tui.app.snapshot import snapshot

    out = snapshot(scenario, args.out, steps=args.steps, view=args.view, size=size, data_dir=args.data,
                   backend=args.backend, seed=args.seed)
    print(f"descent: wrote {out}")
    return EXIT_OK


def cmd_resume(args) -> int:
    from descent.engine.session import Session

    from .headless import drive

    session = Session.resume(args.run_dir, data_root=args.data)
    return drive(session, steps=args.steps)


def cmd_predict(args) -> int:
    from descent.engine.session import Session

    session = Session.resume(args.run_dir, data_root=args.data)
    for _ in session.prepare():
        pass
    probs = session.predict_texts(args.texts)
    names = session.dataset.class_names
    for text, row in zip(args.texts, probs):
        best = int(row.argmax())
        detail = " ".join(f"P({n})={p:.4f}" for n, p in zip(names, row))
        print(f"{names[best]:<6} {detail}  {text}")
    return EXIT_OK


def cmd_validate(args) -> int:
    from descent.engine.errors import SpecError
    from descent.engine.scenario import load

    bad = 0
    for f in args.files:
        try:
            sc = load(Path(f), overrides=args.overrides)
            print(f"{f}: ok ({sc.name})")
        except SpecError as e:
            print(str(e), file=sys.stderr)
            bad += 1
    return EXIT_BAD_INPUT if bad else EXIT_OK


def cmd_list(args) -> int:
    from descent.engine.scenario import discover

    for path, sc in discover():
        if isinstance(sc, Exception):
            print(f"{path}\n    broken: {sc}")
        else:
            print(f"{path.stem:<16} {sc.name}\n{'':<16} {path}")
    return EXIT_OK


def cmd_data(args) -> int:
    from descent.engine.data import DATASETS, data_dir, fetch

    root = data_dir(args.data)
    if args.data_command == "where":
        print(root)
        for name, info in DATASETS.items():
            present = all((root / name / f).exists() for f in info.needed)
            print(f"  {name:<10} {'present' if present else 'missing: descent data fetch ' + name}")
        return EXIT_OK
    names = list(DATASETS) if args.name == "all" else [args.name]
    for name in names:
        def progress(fname, done, total, _name=name):
            if sys.stderr.isatty():
                pct = f"{100 * done / total:5.1f}%" if total else f"{done >> 10} KiB"
                print(f"\r{_name}/{fname} {pct}", end="", file=sys.stderr, flush=True)
        where = fetch(name, root, progress)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(f"{name}: ok in {where}")
    return EXIT_OK
