"""The exponential moving average of a model's weights (``--use_ema``), with warm-up.

``ema = decay_t * ema + (1 - decay_t) * weights`` after every optimizer step, kept in
float32 (BasicSR's ``model_ema``). With warm-up (``--ema_warmup``, the default),
``decay_t = min(decay, (1 + t) / (10 + t))`` at the t-th update (t from 0), as diffusers'
``EMAModel.get_decay``: 0.1 at the first update, 0.5 at the ninth, 0.9 at the 81st, 0.99
after about 900. Without it, a decay of 0.999 keeps the average within exp(-30/1000), i.e.
97 %, of the random start after 30 steps: a short run publishes weights that are mostly
noise (issue 20: 12 dB against bicubic's 32 dB).

The update count is part of the run state (``training_state.json``), so a resumed run
continues the same decay schedule.
"""

from __future__ import annotations

import torch

#: diffusers' warm-up: decay_t = (1 + t) / (WARMUP_OFFSET + t).
WARMUP_OFFSET = 10


def warmup_decay(decay: float, updates: int) -> float:
    """The decay of the update after ``updates`` earlier ones."""
    return min(decay, (1 + updates) / (WARMUP_OFFSET + updates))


def describe(decay: float, warmup: bool) -> str:
    """The EMA settings in words (start-up summary, model card)."""
    return f"decay {decay:g}, " + (f"warm-up min(decay, (1+t)/({WARMUP_OFFSET}+t))" if warmup else "no warm-up")


class EMA:
    """The averaged weights (``shadow``) of a model, and how many updates made them."""

    def __init__(self, model: torch.nn.Module, decay: float, *, warmup: bool):
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                       for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return warmup_decay(self.decay, self.updates) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        floats, targets = [], []
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                floats.append(self.shadow[k])
                targets.append(v.detach().float())
            else:
                self.shadow[k].copy_(v)
        torch._foreach_lerp_(floats, targets, 1.0 - self.current_decay())
        self.updates += 1

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.shadow)

    @torch.no_grad()
    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Take the averaged weights of a checkpoint (same keys and shapes) and its update count."""
        if weights.keys() != self.shadow.keys():
            raise ValueError("the EMA weights in the checkpoint are of another model")
        for k, v in weights.items():
            if v.shape != self.shadow[k].shape:
                raise ValueError(f"the EMA weight {k} in the checkpoint has shape {tuple(v.shape)}, the model's is "
                                 f"{tuple(self.shadow[k].shape)}")
            self.shadow[k].copy_(v)
        self.updates = updates
