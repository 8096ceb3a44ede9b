"""`descent sample RUN --prompt TEXT --chars N --temperature T --top-k K --seed S`: text from a
character language model's run folder (scenario.toml, data.json, checkpoint.npz), no training data."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    s = sub.add_parser("sample", help="text from a language-model run: continue a prompt")
    s.add_argument("run_dir", metavar="RUN")
    s.add_argument("--prompt", default="", help="the text to continue (default: a new line)")
    s.add_argument("--chars", type=int, default=500, help="how many characters to write (default 500)")
    s.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 safer, above 1 wilder; 0 always takes the likeliest (default 0.8)")
    s.add_argument("--top-k", dest="top_k", type=int, default=0,
                   help="sample among the k likeliest characters only (default 0 = all)")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same text (default 0)")


def load_model(run_dir):
    """(net, codec, context) of a run folder's language model; one-line errors otherwise."""
    from pathlib import Path

    from descent.engine.data.text_lm import KIND, CharCodec
    from descent.engine.errors import DescentError
    from descent.engine.predict import Predictor, read_data_record
    from descent.engine.rundir import DATA

    run_dir = Path(run_dir)
    if run_dir.is_dir() and (run_dir / DATA).is_file():
        record = read_data_record(run_dir)
        if record.get("prep", {}).get("kind") != KIND:
            if record.get("task") == "sequence":       # sms_lm: a word-level language model
                raise DescentError(f"{run_dir}: `descent sample` writes with character language models "
                                   f"(textgen); this run's model guesses the next word: `descent predict "
                                   f"{run_dir} TEXT` shows the likeliest ones")
            raise DescentError(f"{run_dir}: not a language-model run; `descent sample` needs one "
                               f"(try `descent predict`)")
    try:
        model = Predictor(run_dir)
    except (ValueError, KeyError, OSError) as e:
        raise DescentError(f"{run_dir}: the checkpoint does not load ({e})") from None
    prep = model.data["prep"]
    return model.trainer.net, CharCodec(prep["vocab"]), int(prep["context"])


def cmd_sample(args) -> int:
    from descent.engine.generate import generate

    net, codec, context = load_model(args.run_dir)
    text = generate(net, codec, args.prompt, args.chars, args.temperature, args.top_k or None, args.seed, context)
    sys.stdout.write(args.prompt + text + ("" if text.endswith("\n") else "\n"))
    return 0
