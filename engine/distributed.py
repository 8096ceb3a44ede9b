"""Several processes, one run: `torchrun --nproc_per_node N -m descent.tui.cli run SCENARIO`
trains the scenario with PyTorch's DistributedDataParallel (gloo on the CPU, nccl on GPUs).

    world = World.from_env()                 # None unless torchrun started us (RANK, WORLD_SIZE)
    session = DistributedSession(...)        # or DistributedSession.resume(run_dir)
    start(world, session)                    # the process group joined, the run folder agreed
    ... drive the session; finally: leave()

What each process does:
- The batch. `training.batch_size` is the global batch: every process draws the same epoch
  permutation (from the seed, as a one-process run does) and takes its rows of each batch,
  rank r the rows r, r + N, r + 2N, ... Each share's loss is weighted by its rows x N / the
  batch's rows, so DDP's average of the gradients is the gradient of the whole batch's mean
  loss: the steps, epochs, learning rates and the logged loss mean what they mean in one process,
  and the data order is a one-process run's, split by (seed, rank).
- The run folder. Rank 0 alone writes it (metrics.jsonl, checkpoints, summary.json, the lock)
  and evaluates; the others have no run folder and print nothing but errors. The checkpoint is
  a one-process run's, so `descent resume` continues it in one process or under torchrun.
- Stopping. Every step the processes agree whether any of them was asked to stop (Ctrl-C,
  SIGTERM), so they all stop after the same step and rank 0 saves the checkpoint. A process that
  dies or hangs makes the others fail after at most DESCENT_DIST_TIMEOUT seconds (default 300)
  with a one-line error, exit 1; the last checkpoint stays as it was.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import numpy as np

from .errors import DescentError
from .records import Evaluation
from .session import Session

TIMEOUT_S = 300.0             # a collective waits this long for a process that has stopped answering


class PeerLost(DescentError):
    """Another process died, hung or failed to start: this one cannot go on alone."""

    exit_code = 1


class World:
    """This process's place among torchrun's processes, and the few collectives the session needs."""

    def __init__(self, rank: int, size: int, local_rank: int):
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.device = "cpu"               # this process's device, set by `start`
        self.backend = "gloo"             # the process group's

    @classmethod
    def from_env(cls, env=None) -> "World | None":
        """The world torchrun describes in the environment; None for a single process."""
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env or "RANK" not in env:
            return None
        try:
            size, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
            local = int(env.get("LOCAL_RANK", rank))
        except ValueError:
            raise DescentError(f"torchrun's environment is not whole numbers: RANK={env.get('RANK')!r} "
                               f"WORLD_SIZE={env.get('WORLD_SIZE')!r} LOCAL_RANK={env.get('LOCAL_RANK')!r}") from None
        if size <= 1:
            return None
        if not 0 <= rank < size:
            raise DescentError(f"torchrun's environment: RANK={rank} is not below WORLD_SIZE={size}")
        return cls(rank, size, local)

    # ---- the batch ----------------------------------------------------------------------------
    def share(self, n: int) -> tuple[np.ndarray, float]:
        """This process's rows of an n-row batch and its loss weight (rows x size / n). A process
        left without a row (n < size) trains on row 0 with weight 0: it must still run backward,
        or the others would wait for its gradients."""
        rows = np.arange(self.rank, n, self.size)
        if len(rows) == 0:
            return np.zeros(1, np.int64), 0.0
        return rows, len(rows) * self.size / n

    def seed_for(self, seed: int) -> int:
        """A torch seed of this rank's own for `seed` (dropout masks that differ between processes)."""
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    # ---- collectives ----------------------------------------------------------------------------
    def mean(self, value) -> float:
        """The mean over the processes of a scalar tensor (the weighted share losses)."""
        import torch
        import torch.distributed as dist

        t = torch.as_tensor(value, dtype=torch.float64).reshape(1).to(self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.size

    def mean_arrays(self, values: dict) -> dict:
        """{name: array} averaged over the processes, one all-reduce for all of them."""
        import torch
        import torch.distributed as dist

        names = list(values)
        flat = [np.asarray(values[k], np.float64).ravel() for k in names]
        t = torch.from_numpy(np.concatenate(flat)).to(self.device)
        dist.all_reduce(t)
        out, lo = {}, 0
        total = t.cpu().numpy() / self.size
        for k, a in zip(names, flat):
            out[k] = total[lo:lo + len(a)].reshape(np.shape(values[k]))
            lo += len(a)
        return out

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any process."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32).to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj):
        """Rank 0's `obj`, on every process."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=None if self.backend == "gloo" else self.device)
        return box[0]


def timeout_s() -> float:
    text = os.environ.get("DESCENT_DIST_TIMEOUT", "")
    try:
        value = float(text) if text else TIMEOUT_S
    except ValueError:
        raise DescentError(f"DESCENT_DIST_TIMEOUT must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise DescentError(f"DESCENT_DIST_TIMEOUT must be more than 0 seconds, got {text}")
    return value


def rank_device(request: str, world: World, dtype: str = "float32") -> str:
    """training.device for one process of several: a GPU of its own (cuda:LOCAL_RANK, as NCCL
    needs), or the CPU."""
    import torch

    from .torch_backend import resolve_device

    found = resolve_device(request, "torch", dtype)
    if found == "mps":
        raise DescentError("training.device = mps: several processes train on cuda (nccl) or cpu (gloo); "
                           "add --device cpu")
    if not found.startswith("cuda"):
        return found
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise DescentError(f"training.device = {request}: torchrun started process {world.local_rank + 1} on a "
                           f"machine with {count} CUDA device{'s' if count > 1 else ''}, and NCCL needs one GPU "
                           f"per process: use --nproc_per_node {count}, or --device cpu (gloo)")
    return f"cuda:{world.local_rank}"


def start(world: World, session: "DistributedSession") -> None:
    """Join torchrun's process group as `session`'s trainer: the torch backend on this rank's
    device; every process then trains into rank 0's run folder."""
    if session.backend != "torch":
        raise DescentError(f'torchrun: training.backend = "{session.backend}", and several processes train '
                           f'with PyTorch\'s DistributedDataParallel: add --backend torch (or set '
                           f'training.backend = "torch")')
    import torch
    import torch.distributed as dist

    world.device = rank_device(session.device, world, session.scenario.training.dtype)
    world.backend = "nccl" if world.device.startswith("cuda") else "gloo"
    if world.device.startswith("cuda"):
        torch.cuda.set_device(world.device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(world.backend, rank=world.rank, world_size=world.size,
                                    timeout=timedelta(seconds=timeout_s()))
        except ValueError as e:      # RANK set by hand without torchrun's MASTER_ADDR/PORT
            raise DescentError(f"cannot join the other processes ({e}); start them with torchrun") from None
        except RuntimeError as e:
            raise PeerLost(f"rank {world.rank}: cannot join the other processes: {first_line(e)}") from None
    out = session.out_dir
    out = world.broadcast(None if out is None else str(out))     # a folder name is rank 0's to choose
    session.attach(world, out)


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def first_line(e: BaseException) -> str:
    """A collective's error, short: gloo's opens with its source position and closes with advice."""
    import re

    text = str(e).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", text[0]) if text else ""
    return line.split(". ")[0].rstrip(".") or type(e).__name__


class AgreedStop:
    """A stop event every process reads alike: set when any process's own event is set.
    The session reads it at the same points on every process, so each read is one all-reduce."""

    def __init__(self, own: threading.Event, world: World):
        self.own, self.world, self.agreed = own, world, False

    def is_set(self) -> bool:
        if not self.agreed:
            self.agreed = self.world.any(self.own.is_set())
        return self.agreed

    def set(self) -> None:
        self.own.set()


class DistributedSession(Session):
    """A Session as one of several processes: rank 0 writes the run folder and evaluates."""

    world: World | None = None

    def attach(self, world: World, out_dir) -> None:
        from pathlib import Path

        from .rundir import RunFolder

        self.world = world
        self.device = world.device
        if world.rank == 0:
            self.out_dir = Path(out_dir) if out_dir else None
            self.folder = RunFolder(self.out_dir) if self.out_dir else None
        else:                # nothing written, nothing locked: rank 0 keeps the run folder
            self.out_dir = self.folder = None

    def prepare(self, stop=None):
        # every process says whether it got ready, so none waits on one that failed to
        try:
            yield from super().prepare(stop)
        except BaseException:
            self._ready(False)
            raise
        if not self._ready(True):
            raise PeerLost(f"rank {self.world.rank}: another process failed to start (its error is above)")
        self.trainer.distribute(self.world)
        if self.world.rank == 0:
            from .records import Compiling

            yield Compiling(f"{self.world.size} processes ({self.world.backend}), batch {self.batch_size} "
                            f"split between them; rank 0 writes the run folder")

    def _ready(self, ok: bool) -> bool:
        try:
            return not self.world.any(not ok)
        except RuntimeError:
            if ok:
                raise PeerLost(f"rank {self.world.rank}: lost the other processes while starting") from None
            return False

    def run(self, stop=None, steps=None, pace=None):
        agreed = AgreedStop(stop or threading.Event(), self.world)
        try:
            yield from super().run(agreed, steps, pace)
        except RuntimeError as e:     # gloo/nccl: a peer died (connection closed) or timed out
            if type(e).__module__.startswith("torch") or "gloo" in str(e) or "NCCL" in str(e):
                kept = (f"; the checkpoint of step {self.saved_step} is kept" if self.saved_step is not None
                        else "")
                raise PeerLost(f"rank {self.world.rank}: lost the other processes at step {self.step + 1} "
                               f"({first_line(e)}){kept}") from None
            raise

    def evaluate(self) -> Evaluation:
        if self.world is None or self.world.rank == 0:
            return super().evaluate()
        record = Evaluation(self.step, round(self.epoch, 4), "test", {}, {})    # rank 0 evaluates
        self.last_eval = record
        return record

    def _summary(self, status: str) -> dict:
        found = super()._summary(status)
        if self.world is not None:
            found["processes"] = self.world.size
            found["process_group"] = self.world.backend
        return found
