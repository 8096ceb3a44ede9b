"""What a training session keeps on disk: the run folder's files, checkpoints, resume.

`RunFiles` is the half of `engine.session.Session` that reads and writes the run folder
(through `engine.rundir.RunFolder`: the lock, and OS errors as one-line IOFailures); the other
half trains. It works on the session's own attributes, so it is a mixin, not a class to use alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import checkpoint
from .errors import DescentError
from .records import Compiling, to_json
from .rundir import CHECKPOINT, FORMAT, check_format, versions


class RunFiles:
    def _open_run_dir(self) -> None:
        from .scenario import dumps

        self.folder.open(dumps(self.resolved_scenario()), resume_step=self._resume_step, force=self.force)

    def resolved_scenario(self):
        """The scenario with what the data filled in (an embedding's `vocab`) and what the command
        line chose (`--backend`, `--seed`), so that the run folder alone says how it was trained."""
        from dataclasses import replace

        from .scenario.schema import freeze

        sc = self.scenario
        return replace(sc, model=replace(sc.model, layers=freeze(self.layers)),
                       training=replace(sc.training, backend=self.backend, seed=self.seed))

    def close(self) -> None:
        if self.folder:
            self.folder.close()

    def _summary(self, status: str) -> dict:
        final = self.last_eval.metrics if self.last_eval else {}
        return {"status": status, "scenario": self.scenario.name, "backend": self.backend, "device": self.device,
                "seed": self.seed, "steps": self.step, "total_steps": self.total_steps, "epochs": round(self.epoch, 4), "wall_time_s": round(self.elapsed, 3),
                "steps_per_s": round(self.step / self.elapsed, 2) if self.elapsed > 0 else 0.0,
                "compile_s": round(self.compile_seconds, 3), "clipped_steps": self.clipped_steps, "metrics": final,
                "format": FORMAT, "threads": getattr(self, "threads", None), "versions": versions(),
                **({"transfer": self.transfer.report} if getattr(self, "transfer", None) and self.transfer.report else {}),
                **({"scratch": self.last_eval.details.get("scratch")} if self.last_eval and "scratch" in self.last_eval.details else {})}

    def _write_summary(self, status: str) -> None:
        if self.out_dir:
            self.folder.write_text("summary.json", json.dumps(self._summary(status), indent=2, default=float) + "\n")

    def save(self, path=None, state: tuple | None = None) -> Path:
        """Checkpoint (parameters, optimizer, data order, RNG states) written atomically."""
        if path is None:
            if not self.out_dir:
                raise DescentError("no run folder: give a path to save the checkpoint to")
            path = self.out_dir / CHECKPOINT
        arrays, meta = state or self._state()
        if self.folder:
            self.folder.save_checkpoint(path, arrays, meta)
        else:
            checkpoint.save(path, arrays, {**meta, "format": FORMAT})
        if self.out_dir and Path(path) == self.out_dir / CHECKPOINT:
            self.saved_step = meta["step"]
        return Path(path)

    def _state(self) -> tuple[dict, dict]:
        """A copy of everything a checkpoint holds, taken now."""
        with self._lock:
            arrays = {k: np.array(v, copy=True) for k, v in (self.trainer.state_arrays()
                                                                | self.transfer.state_arrays()).items()}
            arrays["session.perm"] = self._perm.copy()
            meta = {"step": self.step, "pos": self._pos, "epoch_index": self._epoch_index,
                    "data_rng": self._data_rng.bit_generator.state, "trainer_rng": self.trainer.rng_state(),
                    "live": dict(self.live), "first_loss": self.first_loss, "elapsed": self.elapsed,
                    "clipped_steps": self.clipped_steps,
                    "backend": self.backend, "seed": self.seed, "base_dir": str(self.scenario.base_dir),
                    "scenario": self.scenario.name, "total_steps": self.total_steps, "cycle": list(self.cycle)}
        return arrays, meta

    def _keep_good(self) -> None:
        """On a divergence: the newest good state becomes checkpoint.npz unless a newer one is
        there already, so "last good checkpoint kept" is true also with checkpoint_every = 0."""
        if not self.out_dir:
            return
        if self._good is not None and (self.saved_step is None or self._good[1]["step"] > self.saved_step):
            self.save(state=self._good)
        self.kept_step = self.saved_step

    def load_checkpoint(self, path) -> None:
        path = Path(path)
        try:
            arrays, meta = checkpoint.load(path)
        except (OSError, ValueError, KeyError) as e:
            raise DescentError(f"{path}: not a readable checkpoint ({e})") from None
        check_format(meta.get("format"), path)
        with self._lock:
            try:
                self.trainer.load_state_arrays(arrays)
                self.transfer.load_state_arrays(arrays)
            except (KeyError, ValueError) as e:
                raise DescentError(f"{path}: does not fit this model ({e})") from None
            self.step = int(meta.get("step", 0))
            self._pos = int(meta.get("pos", 0))
            self._epoch_index = int(meta.get("epoch_index", 0))
            self._perm = np.asarray(arrays.get("session.perm", np.empty(0, np.int64)), np.int64)
            if "data_rng" in meta:
                self._data_rng.bit_generator.state = meta["data_rng"]
            if "trainer_rng" in meta:
                self.trainer.set_rng_state(meta["trainer_rng"])
            self.first_loss = meta.get("first_loss")
            self.elapsed = float(meta.get("elapsed", 0.0))
            self.clipped_steps = int(meta.get("clipped_steps", 0))
            self.total_steps = max(self.total_steps, int(meta.get("total_steps", 0)))
            self.cycle = tuple(meta.get("cycle", (0, 0)))
            if self.out_dir and path == self.out_dir / CHECKPOINT:
                self.saved_step = self.step
        for key, value in meta.get("live", {}).items():
            self._apply(key, value)

    def export_metrics(self, path) -> Path:
        path = Path(path)
        text = "".join(json.dumps(to_json(r), default=float) + "\n" for r in self.records
                       if not isinstance(r, Compiling))
        checkpoint.atomic_write_text(path, text)
        return path

    @classmethod
    def resume(cls, run_dir, *, data_root=None, device: str | None = None):
        """A session that continues the run in `run_dir` exactly where its checkpoint left it,
        on `device` if given (else the run's training.device)."""
        from .scenario import loads

        run_dir = Path(run_dir)
        ckpt, resolved = run_dir / CHECKPOINT, run_dir / "scenario.toml"
        if not run_dir.is_dir():
            raise DescentError(f"{run_dir}: no such run folder" if not run_dir.exists() else
                               f"{run_dir}: is a file, not a run folder")
        for f in (resolved, ckpt):
            if not f.exists():
                raise DescentError(f"{run_dir}: not a run folder with a checkpoint (no {f.name} in it)")
        try:
            _, meta = checkpoint.load(ckpt)
        except (OSError, ValueError, KeyError) as e:
            raise DescentError(f"{ckpt}: not a readable checkpoint ({e})") from None
        check_format(meta.get("format"), ckpt)
        if meta.get("source") == "monitor":
            raise DescentError(f"{run_dir}: recorded by descent.Monitor from your own training script; "
                               f"run that script to train on (`descent watch {run_dir}` shows the run)")
        scenario = loads(resolved.read_text(encoding="utf-8"), name=str(resolved),
                         base_dir=Path(meta.get("base_dir", run_dir)))
        if device is not None:
            from .scenario import with_values

            scenario = with_values(scenario, {"training.device": device}, check_shapes=False)
        session = cls(scenario, data_root=data_root, out_dir=run_dir, backend=meta.get("backend"),
                      seed=meta.get("seed"))
        session._resume_from = ckpt
        session._resume_step = int(meta.get("step", 0))
        return session

