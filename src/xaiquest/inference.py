"""Device choice, seeding, batched prediction and feature maps at named depths, shared by every stage."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xaiquest.config import ExperimentConfig, TtaPolicy
from xaiquest.data import to_float
from xaiquest.data.pixels import rows_per_batch
from xaiquest.errors import ConfigError
from xaiquest.models.base import named_depths


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config field 'device' is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so model init and any global-RNG op are reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_batch(images: torch.Tensor, device: torch.device, channels_last: bool = True) -> torch.Tensor:
    """uint8 images -> normalised float on ``device`` in the model's memory format."""
    x = to_float(images.to(device, non_blocking=True))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    batch_size: int = 1000,
    tta: TtaPolicy = "none",
) -> torch.Tensor:
    """Logits ``[N, C]`` on the CPU for uint8 images; audit stages pass the run's one policy, ``eval.tta``.
    Large images go in smaller batches (``rows_per_batch``), so memory stays bounded at any image size."""
    model.eval()
    outputs = []
    rows = rows_per_batch(batch_size, images)
    for start in range(0, len(images), rows):
        x = prepare_batch(images[start : start + rows], device)
        outputs.append(_policy_logits(model, x, tta).cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)


def _policy_logits(model: nn.Module, x: torch.Tensor, tta: TtaPolicy) -> torch.Tensor:
    if tta == "none":
        return model(x).float()
    if tta == "flip":
        return _mirrored_logits(model, x)
    shifted = F.pad(x, (1, 1, 1, 1), mode="reflect")
    height, width = x.shape[-2:]
    down_right = shifted[..., :height, :width]  # the content moves one pixel down and right
    up_left = shifted[..., 2:, 2:]
    translated = (_mirrored_logits(model, down_right) + _mirrored_logits(model, up_left)) / 2
    return (_mirrored_logits(model, x) + translated) / 2


def _mirrored_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (model(x).float() + model(x.flip(3)).float()) / 2


def audit_logits(model: nn.Module, images: torch.Tensor, device: torch.device, config: ExperimentConfig) -> torch.Tensor:
    """Logits under the run's one prediction policy (``eval.tta``): every stage that predicts calls this,
    so accuracy, calibration, robustness, stress and the explained classes count the same predictions."""
    return predict_logits(model, images, device, config.eval.batch_size, config.eval.tta)


def collect_activations(
    model: nn.Module, images: torch.Tensor, depths: Sequence[str], batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Feature maps ``{depth: float [N,C,h,w]}`` (CPU) of uint8 ``images`` (on the model's device) at ``depths``
    (named depths or dotted module paths).

    Forward hooks capture the outputs in one pass per batch; they are removed, and the model's
    train/eval mode restored, even if the forward fails.
    """
    modules = named_depths(model)
    paths = dict(model.named_modules())
    unknown = [d for d in depths if d not in modules and d not in paths]
    if unknown:
        raise ConfigError(f"unknown depth(s) {', '.join(unknown)}; this model has {', '.join(modules)}")
    targets = {depth: modules[depth] if depth in modules else paths[depth] for depth in depths}
    captured: dict[str, list[torch.Tensor]] = {depth: [] for depth in depths}

    def hook_for(depth: str) -> Callable[..., None]:
        return lambda module, inputs, output: captured[depth].append(output.detach().float().cpu())

    handles = [targets[depth].register_forward_hook(hook_for(depth)) for depth in depths]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                model(to_float(images[start : start + batch_size]))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {depth: torch.cat(parts) for depth, parts in captured.items()}
