"""Messages: values shown as TOML writes them, and "did you mean" for misspelt names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import tomli_w

from descent.engine.errors import SpecError

# common names people reach for -> our key; used only for "did you mean" and only where the target is allowed
ALIASES = {
    "learning_rate": "lr", "learningrate": "lr", "rate": "lr", "opt": "optimizer", "optim": "optimizer",
    "batch": "batch_size", "batchsize": "batch_size", "n_epochs": "epochs", "num_epochs": "epochs",
    "max_steps": "steps", "num_steps": "steps", "iterations": "steps", "lr_schedule": "schedule",
    "scheduler": "schedule", "warmup": "warmup_steps", "l2": "weight_decay", "wd": "weight_decay",
    "decay": "weight_decay", "grad_clip": "clip_norm", "clip": "clip_norm", "max_grad_norm": "clip_norm",
    "clip_grad_norm": "clip_norm", "epsilon": "eps", "b1": "beta1", "b2": "beta2", "rho": "alpha",
    "lr_min": "min_lr", "eta_min": "min_lr", "precision": "dtype", "engine": "backend",
    "criterion": "loss", "loss_fn": "loss", "random_seed": "seed", "eval_every": "every",
    "interval": "every", "samples": "max_samples", "train": "training", "trainer": "training",
    "optimizer_settings": "training", "eval": "evaluation", "dataset": "data", "network": "model",
    "net": "model", "meta": "scenario", "knob": "knobs", "title": "name", "desc": "description",
    "file": "path", "target": "label", "y": "label", "sep": "delimiter", "separator": "delimiter",
    "test_size": "test_fraction", "test_split": "test_fraction", "name": "label", "kind": "type",
    "values": "choices", "options": "choices", "minimum": "min", "maximum": "max", "log_scale": "log",
}


def show(v) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return tomli_w.dumps({"v": v})[4:-1]
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, (list, tuple)):
        return "an array"
    return str(v)


def listing(choices: Sequence) -> str:
    return ", ".join(show(c) for c in choices)


def _closest(name: str, candidates: Sequence[str]) -> str | None:
    pool = {c: c for c in candidates}
    for alias, target in ALIASES.items():
        if target in pool:
            pool.setdefault(alias, target)
    m = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.6)
    return pool[m[0]] if m else None


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    best = _closest(name, candidates)
    return f" (did you mean '{best}'?)" if best and best != name else ""


def unknown(key: str, name: str, allowed: Sequence[str], what: str = "key", context: str = "") -> SpecError:
    return SpecError(key, f"unknown {what} '{name}'{context}{did_you_mean(name, allowed)}; "
                          f"allowed: {', '.join(allowed)}")
