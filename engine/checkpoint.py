"""Checkpoints as .npz: parameters under their torch names, optimizer slots, and a JSON meta record.

Writes are atomic: a temporary file in the same folder, fsync, then os.replace, so a crash
mid-save leaves the previous checkpoint intact and never a broken file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

META = "__meta__"


def atomic_write(path: Path, write) -> None:
    """Call write(fileobj) on a temp file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    payload = dict(arrays)
    payload[META] = np.array(json.dumps(meta))
    atomic_write(Path(path), lambda f: np.savez(f, **payload))


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(Path(path), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != META}
        meta = json.loads(str(z[META])) if META in z.files else {}
    return arrays, meta


def parameters(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model parameters of a checkpoint's arrays: not the optimizer slots (`optim.*`), the
    session's data order (`session.*`) nor a from-scratch comparison model (`scratch.*`,
    engine/transfer.py), so a strict torch `load_state_dict` takes them."""
    return {k: v for k, v in arrays.items() if not k.startswith(("optim.", "session.", "scratch."))}


def torch_state_dict(path):
    """The parameters of a checkpoint as a torch state_dict, for a strict `load_state_dict`."""
    import torch

    arrays, _ = load(path)
    return {k: torch.from_numpy(v) for k, v in parameters(arrays).items()}
