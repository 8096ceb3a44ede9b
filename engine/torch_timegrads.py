"""Per-time-step gradient norms for the torch backend (engine/torch_backend.py), measured with
the Monitor's taps (engine/monitor_taps.py), so that the heatmap, the time tab and the Nile
lesson read a torch run as they read a numba one.

What the figure is. The numba engine records, per recurrent layer, ||dL/dh_t||: the total
gradient of the state at step t, its norm over the hidden units. Torch's fused nn.RNN / LSTM /
GRU hide dL/dh_t, so the torch backend records ||dL/dx_t||, the gradient at the layer's input at
step t, its norm over the input features (dL/dx_t = W_ih^T dL/dz_t, z_t the gate
pre-activations of step t: it decays back in time as dL/dh_t does, and it is what the user's
own model shows through Monitor). The reduction is the numba engine's: `time_grad_norms` is
the mean over the samples for which t is a real step (padding left out: the layers' lengths
come from the batch's mask, or from a PackedSequence's own), 0 where no sample has one;
`time_grad_ratio` is indexed by the distance d back from each sample's last real step, the mean
of ||dL/dx_{L-1-d}|| / ||dL/dx_{L-1}|| over the samples longer than d (engine.arrays'
masked_mean_norms and aligned_ratio on the input gradient). The keys are the numba engine's
layer names ("1", "2.block.0", "0.encoder"); a stacked layer (layers > 1) gives "{name}.l0"
only, at its first layer's input: the fused module hides the sequences between its layers.
An attention layer is tapped at its input too: the numba engine measures it at the block's
input after the projection and positions (positions add nothing to the gradient), so the two
engines' figures are the same where the layer has no projection (dim = input width), and
W_proj^T times it otherwise.

Under torchrun each process sees only its rows of the batch. The sums and counts behind the
means are all-reduced (World.mean_arrays), so rank 0 logs the global batch's figures. A
process's input gradients are the world size times a one-process run's (its share's loss is
weighted by rows x size / the batch's rows, and DDP averages only the parameters' gradients):
its norm sums are divided by the size first. A process that trains on no row (weight 0) adds
nothing. Every process calls `take` on the same steps: the session's logged steps follow from
the step count alone, and a step whose loss is not finite (the same global loss on every
process) never reaches backward, so no process takes then.
"""

from __future__ import annotations

import numpy as np

from .monitor_taps import InputTaps, recurrent_modules, stat_dtype, time_means, time_sums


class TimeGrads:
    """The taps on a torch model's recurrent (and attention) modules: `arm(True)` before a
    logged step's forward pass, `take(...)` after its backward pass."""

    def __init__(self, model, also=()):
        """`also`: names of other modules to tap at their input (the attention layers)."""
        named = dict(model.named_modules())
        self.taps = InputTaps(model, recurrent_modules(model) + [(name, named[name]) for name in also])
        self.keys = {name: f"{name}.l0" if getattr(m, "num_layers", 1) > 1 else name for name, m in self.taps.modules}
        # descent's own recurrent and attention modules take (x, mask): their input is a padded
        # tensor whose padding the mask says
        self.masked = {name for name, m in self.taps.modules if getattr(m, "takes_mask", False)}

    def arm(self, on: bool) -> None:
        self.taps.active = on

    def disarm(self) -> None:
        """A step that stops before backward: nothing measured, nothing kept."""
        self.taps.active = False
        self.taps.take()

    def take(self, mask=None, world=None, weight: float = 1.0) -> tuple[dict | None, dict | None]:
        """(time_grad_norms, time_grad_ratio), {key: (T,) float64 array} each, of the step just
        run backward (None, None without tapped layers). `mask` (B, T) is the batch's (this
        process's rows) on the model's device; under `world` this is a collective."""
        self.taps.active = False
        found = self.taps.take()
        if not found:
            return None, None
        sums = {}
        for name in sorted(found):
            norms, lengths = found[name]
            norms = norms.to(stat_dtype(norms.device))
            if lengths is None and name in self.masked and mask is not None and tuple(mask.shape) == tuple(norms.shape):
                lengths = mask.sum(dim=1)
            sums[self.keys[name]] = time_sums(norms, lengths)
        import torch

        keys = list(sums)
        flat = torch.cat([sums[k] for k in keys], dim=1).cpu().numpy().astype(np.float64)   # (4, all T): one sync
        if world is not None:
            flat[0] /= world.size            # this process's input gradients: size x a one-process run's
            if weight == 0:                  # the stand-in row of a process without rows
                flat[...] = 0.0
        arrays = dict(zip(keys, np.split(flat, np.cumsum([sums[k].shape[1] for k in keys])[:-1], axis=1)))
        if world is not None:
            arrays = {k: a * world.size for k, a in world.mean_arrays(arrays).items()}   # the sums
        norms_out, ratio_out = {}, {}
        for k, a in arrays.items():
            mean, ratio = time_means(torch.from_numpy(a))
            norms_out[k], ratio_out[k] = mean.numpy(), ratio.numpy()
        return norms_out, ratio_out
