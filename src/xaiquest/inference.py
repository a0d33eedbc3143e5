"""Device choice, seeding and batched prediction shared by every stage."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from xaiquest.config import ExperimentConfig, TtaPolicy
from xaiquest.data import to_float


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from xaiquest.errors import ConfigError

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
    """Logits ``[N, C]`` on the CPU for uint8 images; audit stages pass the run's one policy, ``eval.tta``."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = prepare_batch(images[start : start + batch_size], device)
        logits = model(x).float()
        if tta == "flip":
            logits = (logits + model(x.flip(3)).float()) / 2
        outputs.append(logits.cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)


def audit_logits(model: nn.Module, images: torch.Tensor, device: torch.device, config: ExperimentConfig) -> torch.Tensor:
    """Logits under the run's one prediction policy (``eval.tta``): every stage that predicts calls this,
    so accuracy, calibration, robustness, stress and the explained classes count the same predictions."""
    return predict_logits(model, images, device, config.eval.batch_size, config.eval.tta)
