"""airbench's lookahead: the weights are pulled back to an exponential moving average of themselves.

Every :data:`EVERY` steps the EMA moves towards the live weights and the live weights are reset to the
EMA. The decay grows as ``(step / total)^3``, so early training is barely slowed while the last epochs
average over many steps; the last step leaves the EMA itself. BatchNorm running statistics are
averaged too (every floating-point entry of the state dict), as airbench does.
"""

from __future__ import annotations

import torch
from torch import nn

EVERY = 5
PEAK_DECAY = 0.95**EVERY


class Lookahead:
    def __init__(self, model: nn.Module, total_steps: int) -> None:
        self.total_steps = total_steps
        self.average = {name: value.detach().clone() for name, value in model.state_dict().items()}

    def decay(self, step: int) -> float:
        return PEAK_DECAY * (step / self.total_steps) ** 3

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after optimiser step ``step`` (1-based); a no-op except every :data:`EVERY` steps and at the end."""
        if step % EVERY == 0:
            self._pull(model, self.decay(step))
        if step == self.total_steps:
            self._pull(model, 1.0)

    def _pull(self, model: nn.Module, decay: float) -> None:
        for name, live in model.state_dict().items():
            if live.is_floating_point():
                average = self.average[name]
                average.lerp_(live, 1 - decay)
                live.copy_(average)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.average

    def load_state_dict(self, average: dict[str, torch.Tensor]) -> None:
        for name, value in average.items():
            self.average[name].copy_(value)
