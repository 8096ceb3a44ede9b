"""The `descent` command line: the parser and its commands (the dashboard, headless runs,
validation and data). The headless runner and its progress printer are in `headless`, the
`control` command (steering a running run) in `control`.

Imports stay light at module level (argparse only): `descent --help` loads none of numba, torch
or textual; each command imports what it needs, and nothing here imports Textual but `tui`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# not the names themselves: listing them would load the scenario folders for every --help
SCENARIO_HELP = "a scenario's name (`descent list` shows them all, e.g. digits8x8 or nile) or a .toml file"


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"descent: {message}", file=sys.stderr)
    return code


def checked_seed(seed: int | None, scenario_file) -> int | None:
    """--seed against the scenario it is for: NumPy seeds are whole numbers >= 0."""
    from descent.engine.errors import SpecError

    if seed is not None and seed < 0:
        raise SpecError("--seed", f"must be a whole number >= 0, got {seed}", str(scenario_file) if scenario_file else None)
    return seed


def positive(kind):
    """An argparse type: a number above 0 (`--steps 0` would silently mean "train by epochs")."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def device_arg(text: str) -> str:
    """An argparse type: a training.device value (the schema checks it again in the scenario)."""
    from descent.engine.names import DEVICES

    if text in DEVICES or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICES)} or cuda:N, got {text!r}")


def torchrun_world():
    """The World torchrun started this process in, or None (a plain run)."""
    if "WORLD_SIZE" not in os.environ:
        return None
    from descent.engine.distributed import World

    return World.from_env()


def drive_here(session, world, **how) -> int:
    """`headless.drive`, as one of torchrun's processes when `world` is given."""
    from .headless import drive

    if world is None:
        return drive(session, **how)
    from descent.engine.distributed import leave, start

    try:
        start(world, session)
        return drive(session, quiet=world.rank != 0, **how)
    finally:
        leave()


def build_parser() -> Parser:
    p = Parser(prog="descent", description="Train neural networks in the terminal and watch them learn. "
               "`descent SCENARIO` is short for `descent tui SCENARIO`.")
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    def common(sp, scenario=True):
        if scenario:
            sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a scenario key, e.g. --set training.lr=0.01 (repeatable)")
            sp.add_argument("--seed", type=int, help="seed for init, data order and dropout")
            sp.add_argument("--backend", choices=["numba", "torch"], help="engine backend (default: the scenario's)")
        sp.add_argument("--device", type=device_arg, help="where the torch backend trains: cpu, cuda, cuda:N, mps "
                                                          "or auto (default: the scenario's training.device)")
        sp.add_argument("--data", metavar="DIR", help="data folder (default: $DESCENT_DATA or ~/.local/share/descent/data)")

    runs_help = "folder of run folders (default: $DESCENT_RUNS or ~/.local/share/descent/runs)"
    t = sub.add_parser("tui", help="open the dashboard (the default command)")
    t.add_argument("scenario", nargs="?", help=SCENARIO_HELP)
    t.add_argument("--resume", metavar="RUN_DIR", help="reopen a run folder and continue training it")
    t.add_argument("--runs", metavar="DIR", help=runs_help)
    common(t)

    r = sub.add_parser("run", help="train headless and write metrics, checkpoint and summary")
    r.add_argument("scenario", help=SCENARIO_HELP)
    budget = r.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="train this many steps (overrides the scenario)")
    budget.add_argument("--epochs", type=float, help="train this many epochs (overrides the scenario)")
    r.add_argument("--out", metavar="DIR", help="output folder (default: <runs folder>/<scenario>-<time>, "
                                                 "the runs folder as for `descent runs`)")
    r.add_argument("--force", action="store_true", help="train into an --out that holds a run, replacing it")
    common(r)

    sn = sub.add_parser("snapshot", help="train N steps, then write the dashboard as an SVG picture")
    sn.add_argument("scenario", help=SCENARIO_HELP)
    sn.add_argument("--steps", type=int, help="train this many steps first (default 200)")
    sn.add_argument("--view", metavar="NAME", help="the tab to show: grads, time (recurrent models), panel")
    sn.add_argument("--size", default="120x40", metavar="COLSxROWS", help="terminal size (default 120x40)")
    sn.add_argument("--out", required=True, metavar="FILE.svg", help="the SVG file to write")
    common(sn)

    rs = sub.add_parser("resume", help="continue a headless run from its folder")
    rs.add_argument("run_dir", metavar="DIR")
    rs.add_argument("--steps", type=positive(int), help="train this many more steps (default: to the run's budget)")
    rs.add_argument("--tui", action="store_true", help="continue in the dashboard")
    common(rs, scenario=False)

    from .control import add_parser as add_control

    add_control(sub)

    ls = sub.add_parser("runs", help="list run folders: scenario, steps, status, last metric")
    ls.add_argument("--runs", metavar="DIR", help=runs_help)

    pr = sub.add_parser("predict", help="a run's predictions for new inputs, from its folder alone")
    pr.add_argument("run_dir", metavar="DIR")
    pr.add_argument("texts", nargs="*", metavar="TEXT", help="messages or Nile sentences (text and nile runs)")
    given = pr.add_mutually_exclusive_group()
    given.add_argument("--csv", metavar="FILE", help="rows with the training CSV's feature columns (csv, spambase runs)")
    given.add_argument("--npy", metavar="FILE", help="images as a NumPy array (N, H, W) or (N, C, H, W) (mnist, digits)")
    given.add_argument("--weights", action="store_true",
                       help="print a one-dense-layer model's weights in the data's raw units (standardization undone)")
    pr.add_argument("--data", metavar="DIR", help=argparse.SUPPRESS)   # accepted as before; predict reads no data

    v = sub.add_parser("validate", help="check scenario files and their data files; prints one line per file")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--no-data", dest="read_data", action="store_false",
                   help="check the scenario files only, without reading their CSV/TSV data files")

    sub.add_parser("list", help="list bundled and user scenarios")
    from .sample import add_parser as add_sample

    add_sample(sub)

    from .watch import add_parser as add_watch

    add_watch(sub)

    d = sub.add_parser("data", help="datasets: where they are looked for, and download")
    dsub = d.add_subparsers(dest="data_command", parser_class=Parser, metavar="ACTION", required=True)
    f = dsub.add_parser("fetch", help="download a dataset with checksum checks")
    f.add_argument("name", choices=["mnist", "sms_spam", "spambase", "tinyshakespeare", "all"])
    f.add_argument("--data", metavar="DIR", help="data folder to download into")
    w = dsub.add_parser("where", help="print the data folder and which datasets it holds")
    w.add_argument("--data", metavar="DIR")
    return p


def shorthand(parser: Parser, argv: list[str]) -> list[str]:
    """`descent SCENARIO ...` means `descent tui SCENARIO ...`: a first word that is no subcommand
    and no option names a scenario. Subcommand names win (`descent tui run` opens one named run)."""
    if argv and not argv[0].startswith("-") and argv[0] not in subcommands(parser):
        return ["tui", *argv]
    return argv


def subcommands(parser: Parser) -> dict:
    """{name: its parser} of `parser`'s subcommands ({} when it has none)."""
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def command_parser(parser: Parser, args) -> Parser:
    """The (sub)parser of the command `args` were parsed for: `descent data fetch`'s for that."""
    for dest in ("command", "data_command"):
        name = getattr(args, dest, None)
        if name not in subcommands(parser):
            break
        parser = subcommands(parser)[name]
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(shorthand(parser, sys.argv[1:] if argv is None else list(argv)))
    if extra:       # said by the command's own parser, so the hint names its --help
        command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    command = args.command or "tui"
    from descent.engine.errors import DescentError

    try:
        if command == "tui":
            return cmd_tui(args)
        return {"run": cmd_run, "resume": cmd_resume, "predict": cmd_predict, "validate": cmd_validate, "list": cmd_list,
                "data": cmd_data, "runs": cmd_runs, "snapshot": cmd_snapshot, "control": cmd_control,
                "watch": cmd_watch, "sample": cmd_sample}[command](args)
    except DescentError as e:
        return fail(str(blame_set(e, getattr(args, "overrides", []))), e.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:   # output piped into `head` and the reader left: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:  # a bug, not bad input: keep the one-line contract, keep the details
        from descent.engine.crashlog import crash_report

        log = crash_report(e, getattr(e, "run_dir", None))
        return fail(f"internal error: {type(e).__name__}: {e} (details in {log}; please report it)",
                    EXIT_FAILED)


def blame_set(err, overrides):
    """A setting found wrong after loading (by the session, with the data in hand) that a --set
    gave says so, as the loader's own errors do; its line in the file is not where it came from."""
    from descent.engine.errors import SpecError
    from descent.engine.scenario.overrides import related

    if not isinstance(err, SpecError) or not err.key or err.message.endswith("(from --set)"):
        return err
    keys = [item.partition("=")[0].strip().replace("[-1]", "") for item in overrides]
    if any(k and (related(err.key, k) or related(_no_index(err.key), k)) for k in keys):
        return SpecError(err.key, f"{err.message} (from --set)", err.file)
    return err


def _no_index(key: str) -> str:
    import re

    return re.sub(r"\[\d+\]", "", key)


# ---- commands -----------------------------------------------------------------------------------
def cmd_tui(args) -> int:
    from descent.engine.scenario import load, resolve_name

    name = getattr(args, "scenario", None)
    overrides = list(getattr(args, "overrides", []))
    resume = getattr(args, "resume", None)
    if resume and name:
        return fail("give a scenario or --resume RUN_DIR, not both")
    if torchrun_world() is not None:
        return fail("the dashboard is one process: under torchrun, train headless with `run` or `resume`")
    if getattr(args, "device", None):
        if resume:
            return fail("--device: the dashboard resumes on the run's own training.device "
                        "(a headless `descent resume DIR --device ...` takes another)")
        overrides.append(f"training.device={args.device}")
    path = resolve_name(name) if name else None
    seed = checked_seed(getattr(args, "seed", None), path)
    scenario = load(path, overrides=overrides, check_data=True) if name else None
    if resume:
        from descent.engine.session import Session

        Session.resume(resume)                   # a folder that cannot resume fails here, in one line
    from descent.tui.app import make_app        # the one command that loads Textual

    app = make_app(scenario=scenario, data_dir=getattr(args, "data", None),
                   backend=getattr(args, "backend", None), seed=seed,
                   runs_dir=getattr(args, "runs", None), resume=resume, pace="auto")
    app.run()
    return app.return_code or EXIT_OK


def cmd_run(args) -> int:
    from descent.engine.scenario import load, resolve_name

    from descent.engine.errors import SpecError

    path = resolve_name(args.scenario)
    # --steps and --epochs are checked here, so that no "(from --set)" blames a --set not given
    # (and --steps 0, which the file takes as "train by epochs", is no silent switch)
    for flag, value in (("steps", args.steps), ("epochs", args.epochs)):
        if value is not None and not value > 0:
            raise SpecError(f"training.{flag}", f"--{flag} must be more than 0, got {value}", str(path))
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"training.steps={args.steps}")
    if args.epochs is not None:
        overrides += [f"training.epochs={args.epochs}", "training.steps=0"]
    if args.device:
        overrides.append(f"training.device={args.device}")
    checked_seed(args.seed, path)
    scenario = load(path, overrides=overrides, check_data=True)
    from descent.engine.runs import run_dir_for, runs_home
    from descent.engine.session import Session

    world = torchrun_world()
    if world is not None:
        from descent.engine.distributed import DistributedSession as Session
    out = Path(args.out) if args.out else run_dir_for(scenario, runs_home())
    session = Session(scenario, data_root=args.data, out_dir=out, backend=args.backend, seed=args.seed)
    session.force = args.force
    return drive_here(session, world, steps=None, own_folder=args.out is None)


def cmd_snapshot(args) -> int:
    from descent.engine.scenario import load, resolve_name
    from descent.tui.app.snapshot import check_out, parse_size

    size = parse_size(args.size)            # bad input fails before anything loads or trains
    check_out(args.out)
    overrides = args.overrides + ([f"training.device={args.device}"] if args.device else [])
    scenario = load(resolve_name(args.scenario), overrides=overrides)
    from descent.tui.app.snapshot import snapshot

    out = snapshot(scenario, args.out, steps=args.steps, view=args.view, size=size, data_dir=args.data,
                   backend=args.backend, seed=args.seed)
    print(f"descent: wrote {out}")
    return EXIT_OK


def cmd_resume(args) -> int:
    from descent.engine.session import Session

    if args.tui:
        args.resume, args.scenario, args.runs = args.run_dir, None, None
        return cmd_tui(args)
    world = torchrun_world()
    if world is not None:
        from descent.engine.distributed import DistributedSession as Session
    session = Session.resume(args.run_dir, data_root=args.data, device=args.device)
    return drive_here(session, world, steps=args.steps)


def cmd_control(args) -> int:
    from .control import cmd_control as control

    return control(args)


def cmd_watch(args) -> int:
    from .watch import cmd_watch as watch

    return watch(args)


def cmd_runs(args) -> int:
    from descent.engine.runs import list_runs, runs_home

    root = Path(args.runs) if args.runs else runs_home()
    rows = list_runs(root)
    if not rows:
        print(f"no runs in {root}")
        return EXIT_OK
    print(f"runs in {root}")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['scenario']:<24.24} {r['steps']:>9,} steps  {r['status']:<9} {r['metric']}")
    return EXIT_OK


def cmd_sample(args) -> int:
    from .sample import cmd_sample as sample

    return sample(args)


def cmd_predict(args) -> int:
    from descent.engine.errors import DescentError
    from descent.engine.predict import Predictor

    if bool(args.texts) + bool(args.csv) + bool(args.npy) + args.weights != 1:
        raise DescentError("predict: give texts, or --csv FILE, or --npy FILE, or --weights (one of them)")
    model = Predictor(args.run_dir)
    if args.weights:
        linear = model.raw_linear()
        if linear is None:
            raise DescentError(f"{args.run_dir}: --weights reads a model of one dense layer; this one has "
                               f"{len(model.layers)} layers")
        w, b, names = linear
        for k in range(len(b)):
            terms = " ".join(f"{'+' if v >= 0 else '-'} {abs(v):.6g}*{n}" for v, n in zip(w[k], names))
            print(f"out{k} = {b[k]:.6g} {terms}   (raw units)")
        return EXIT_OK
    if model.seq2seq() is not None:
        return print_translations(model, args)
    mask = None
    if args.csv:
        x, names = model.encode_rows(args.csv)
    elif args.npy:
        x = model.encode_array(args.npy)
        names = [f"#{i}" for i in range(len(x))]
    else:
        (x, mask), names = model.encode_texts(args.texts), list(args.texts)
    out = model.predict(x, mask)
    classes = model.class_names
    if model.data["task"] == "sequence":
        return print_next_words(out, mask, classes, names)
    for name, row in zip(names, out):
        if not classes:    # regression: the value(s) themselves
            print(f"{' '.join(f'{v:.6g}' for v in row)}  {name}")
            continue
        detail = " ".join(f"P({n})={p:.4f}" for n, p in zip(classes, row))
        print(f"{classes[int(row.argmax())]:<6} {detail}  {name}")
    return EXIT_OK


def print_translations(model, args) -> int:
    """An encoder-decoder run (seq2seq): each text's output sequence, then the text."""
    from descent.engine.errors import DescentError

    if not args.texts:
        raise DescentError(f"{args.run_dir}: an encoder-decoder run reads sentences: "
                           f"descent predict {args.run_dir} \"red fox runs\"")
    for text, (unknown, words) in zip(args.texts, model.translate(args.texts)):
        note = f"   (not in its vocabulary: {' '.join(unknown)})" if unknown else ""
        print(f"{' '.join(words) or '-'}  <-  {text}{note}")
    return EXIT_OK


def print_next_words(out, mask, classes, names, top: int = 5) -> int:
    """A language model's answer per text (a label per time step, sms_lm): the words likeliest
    to follow its last word, from the prediction there."""
    for name, steps, seen in zip(names, out, mask if mask is not None else [None] * len(out)):
        n = int(seen.sum()) if seen is not None else len(steps)
        if n == 0:
            print(f"{'-':<6} (no words in it)  {name}")
            continue
        p = steps[n - 1]
        best = sorted(range(len(p)), key=lambda k: -p[k])[:top]
        detail = " ".join(f"P({classes[k]})={p[k]:.4f}" for k in best)
        print(f"{classes[best[0]]:<6} {detail}  {name}")
    return EXIT_OK


def cmd_validate(args) -> int:
    from descent.engine.errors import DescentError, SpecError
    from descent.engine.scenario import load

    bad = 0
    for f in args.files:
        try:
            sc = load(Path(f), overrides=args.overrides, check_data=args.read_data)
            print(f"{f}: ok ({sc.name})")
        except SpecError as e:
            print(str(e), file=sys.stderr)
            bad += 1
        except DescentError as e:       # every file gets its line, whatever stopped the one before
            print(f"{f}: {e}", file=sys.stderr)
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
            print(f"  {name:<15} {'present' if present else 'missing: descent data fetch ' + name}")
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
