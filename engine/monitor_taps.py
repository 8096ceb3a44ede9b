"""What `engine.monitor.Monitor` measures inside the user's torch model: the per-time-step gradient
at the input of each nn.RNN / nn.LSTM / nn.GRU, and the tensor arithmetic of a logged step.

Torch's fused recurrent layers hide dL/dh_t; the gradient at the layer's input, dL/dx_t, shows
the same decay back in time and is reachable from outside: a forward pre-hook swaps the input
for an alias of it (a view, or for a data tensor that needs no gradient a detached copy that
does), and a tensor hook on that alias sees exactly the gradient that flows into the layer (not
what other consumers of the same tensor add). The hook keeps only ||dL/dx_t|| per sample and
step, a (B, T) tensor on the input's device, never the gradient itself. On unlogged steps the
pre-hook returns at once and nothing is registered.

Layouts: batch_first both ways, unbatched (T, F) input, and PackedSequence input (the per-row
norms are unpacked with the sequences' own lengths, so padding never counts). A padded plain
tensor counts its padded steps: the model cannot tell us which steps are real.
torch is imported only inside functions (the engine imports no torch at module level).
"""

from __future__ import annotations


def recurrent_modules(model) -> list[tuple[str, object]]:
    """(name, module) of every nn.RNN / nn.LSTM / nn.GRU in `model` (subclasses included)."""
    import torch.nn as nn

    return [(name or type(m).__name__.lower(), m) for name, m in model.named_modules()
            if isinstance(m, nn.RNNBase)]


def _alias(t):
    """A tensor equal to `t` whose gradient is only what flows through it from here on."""
    if not t.is_floating_point():
        return None
    return t.view_as(t) if t.requires_grad else t.detach().requires_grad_(True)


def _row_norms(g):
    """||g|| over the last axis, float32 at least (a half-precision sum of squares overflows)."""
    import torch

    low = g.dtype in (torch.float16, torch.bfloat16)
    return torch.linalg.vector_norm(g.detach(), dim=-1, dtype=torch.float32 if low else None)


class InputTaps:
    """Forward pre-hooks on the recurrent modules of a model. `active` says whether the forward
    passes now running belong to a logged step; `take()` hands over what the backward passes
    measured since the last `take()`: {module name: (norms (B, T), lengths (B,))}. `modules`,
    (name, module) pairs, taps those instead (a module without `batch_first` is batch first)."""

    def __init__(self, model, modules=None):
        self.modules = recurrent_modules(model) if modules is None else list(modules)
        self.active = False
        self._found: dict[str, list] = {}
        self._handles = [m.register_forward_pre_hook(self._pre_hook(name, m), with_kwargs=True)
                         for name, m in self.modules]

    def _pre_hook(self, name: str, module):
        def hook(_module, args, kwargs):
            import torch

            if not self.active or not torch.is_grad_enabled():
                return None
            batch_first = getattr(module, "batch_first", True)
            if args:
                tapped = self._tap(name, args[0], batch_first)
                return None if tapped is None else ((tapped, *args[1:]), kwargs)
            if "input" in kwargs:
                tapped = self._tap(name, kwargs["input"], batch_first)
                return None if tapped is None else (args, {**kwargs, "input": tapped})
            return None
        return hook

    def _tap(self, name: str, x, batch_first: bool):
        from torch.nn.utils.rnn import PackedSequence

        found = self._found.setdefault(name, [])
        if isinstance(x, PackedSequence):
            data = _alias(x.data)
            if data is None:
                return None
            data.register_hook(lambda g: found.append(_unpack(_row_norms(g), x)))
            return x._replace(data=data)
        alias = _alias(x)
        if alias is None:
            return None
        alias.register_hook(lambda g: found.append(_full(_row_norms(g), batch_first)))
        return alias

    def take(self) -> dict[str, tuple]:
        found, self._found = self._found, {}
        return {name: _combine(items) for name, items in found.items() if items}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _full(norms, batch_first: bool) -> tuple:
    """Norms of a plain input, (T,) unbatched, (B, T) or (T, B), as ((B, T), None: all T real)."""
    if norms.dim() == 1:
        norms = norms[None, :]
    elif not batch_first:
        norms = norms.t()
    return norms, None            # every step real: time_stats takes its shorter path


def _unpack(row_norms, packed) -> tuple:
    """Per-row norms of a PackedSequence's data, (N,), as ((B, T) zero-padded, real lengths (B,))."""
    from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

    padded, lengths = pad_packed_sequence(
        PackedSequence(row_norms[:, None], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
        batch_first=True)
    return padded[..., 0], lengths.to(row_norms.device, non_blocking=True)


def _combine(items: list[tuple]) -> tuple:
    """Several forward passes in one step (micro-batches) as one batch, padded to the longest."""
    import torch
    import torch.nn.functional as F

    if len(items) == 1:
        return items[0]
    T = max(n.shape[1] for n, _ in items)
    if all(lengths is None for _, lengths in items) and all(n.shape[1] == T for n, _ in items):
        return torch.cat([n for n, _ in items]), None
    return (torch.cat([F.pad(n, (0, T - n.shape[1])) for n, _ in items]),
            torch.cat([torch.full((n.shape[0],), n.shape[1], dtype=torch.int64, device=n.device)
                       if lengths is None else lengths for n, lengths in items]))


def time_sums(norms, lengths):
    """The sums behind `time_stats`, (4, T) on the norms' device: the sum over samples with step t
    real of ||dL/dx_t||, their count, the sum of the answer-aligned ratios at distance t back,
    their count. Sums add across batches and processes (the torch backend all-reduces them under
    torchrun), means would not."""
    import torch

    zero = torch.zeros((), dtype=norms.dtype, device=norms.device)
    B, T = norms.shape
    if lengths is None:               # (B, T) all real: the same numbers in fewer operations
        last = norms[:, -1:]
        use = last > 0                                                     # (B, 1)
        ratio = torch.where(use, norms.flip(1) / torch.where(use, last, 1.0), zero).sum(0)
        return torch.stack([norms.sum(0), torch.full_like(ratio, B), ratio,
                            use.sum().to(norms.dtype).expand(T)])
    t = torch.arange(T, device=norms.device)
    real = t[None, :] < lengths[:, None]                                   # (B, T)
    last = norms.gather(1, (lengths - 1).clamp(min=0)[:, None])           # (B, 1)
    back = norms.gather(1, (lengths[:, None] - 1 - t[None, :]).clamp(min=0))   # (B, T) by distance
    use = real & (last > 0)
    ratio = torch.where(use, back / torch.where(last > 0, last, 1.0), zero).sum(0)
    return torch.stack([torch.where(real, norms, zero).sum(0), real.sum(0).to(norms.dtype), ratio,
                        use.sum(0).to(norms.dtype)])


def time_means(sums) -> tuple:
    """(mean, ratio), each (T,), from `time_sums`' rows (0 where a count is 0)."""
    import torch

    return (sums[0] / torch.where(sums[1] > 0, sums[1], 1.0),
            sums[2] / torch.where(sums[3] > 0, sums[3], 1.0))


def time_stats(norms, lengths) -> tuple:
    """From per-sample, per-step norms (B, T) and real lengths (B,) (None: all T), on their device:
    `mean` (T,), the mean over samples with step t real of ||dL/dx_t|| (0 where none), as
    engine.arrays.masked_mean_norms; `ratio` (T,), by distance d back from each sample's last
    real step, the mean of ||dL/dx_{L-1-d}|| / ||dL/dx_{L-1}|| over the samples longer than d
    whose last step's norm is not 0, as engine.arrays.aligned_ratio."""
    return time_means(time_sums(norms, lengths))


def unscaled(scaler, optimizer) -> tuple:
    """(factor for parameter gradients, factor for input gradients) that undo a GradScaler's
    loss scale: 1/scale, as a device tensor where the scaler has one (no sync), or None for 1.
    Parameter gradients already unscaled by `scaler.unscale_(optimizer)` (for clipping) are not
    divided again; the input gradients the taps measured always carry the scale."""
    if scaler is None or not getattr(scaler, "is_enabled", lambda: True)():
        return None, None
    scale = getattr(scaler, "_scale", None)       # the device tensor; get_scale() would sync
    factor = scale.reciprocal() if hasattr(scale, "reciprocal") else 1.0 / float(scaler.get_scale())
    state = getattr(scaler, "_per_optimizer_states", {}).get(id(optimizer)) or {}
    stage = getattr(state.get("stage"), "name", None)
    return (None if stage in ("UNSCALED", "STEPPED") else factor), factor


def stat_dtype(device):
    import torch

    return torch.float32 if device is not None and device.type == "mps" else torch.float64   # MPS has no float64


def norms(tensors: list, device):
    """||t|| of each tensor as one 1-D tensor on `device` (no sync); half precision summed in float32."""
    import torch

    if not tensors:
        return torch.zeros(0, device=device, dtype=stat_dtype(device))
    plain = all(not t.is_sparse and t.dtype not in (torch.float16, torch.bfloat16) for t in tensors)
    found = None
    if plain:
        try:
            found = torch._foreach_norm(tensors)      # one fused pass, as clip_grad_norm_ does
        except (RuntimeError, TypeError, AttributeError):
            found = None
    if found is None:
        found = [torch.linalg.vector_norm(t.coalesce().values() if t.is_sparse else t,
                                          dtype=torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else None)
                 for t in tensors]
    if all(v.device == found[0].device for v in found):
        return torch.stack(found).to(device, stat_dtype(device))
    return torch.stack([v.to(device) for v in found]).to(stat_dtype(device))
