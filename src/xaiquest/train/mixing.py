"""Mixup / CutMix through torchvision ``transforms.v2`` on whole batches."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

from xaiquest.config import TrainConfig

BatchMixer = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def build_mixer(cfg: TrainConfig, num_classes: int) -> BatchMixer | None:
    """None when neither is enabled; with both, each batch picks one at random (as in timm)."""
    mixers: list[v2.Transform] = []
    if cfg.mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=cfg.mixup_alpha, num_classes=num_classes))
    if cfg.cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cfg.cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def augmentation_names(cfg: TrainConfig) -> list[str]:
    """Human-readable list of the augmentations a recipe uses (for the comparison table)."""
    names = []
    if cfg.crop_pad:
        names.append(f"crop(pad={cfg.crop_pad})")
    if cfg.flip:
        names.append("hflip")
    if cfg.mixup_alpha > 0:
        names.append(f"mixup(a={cfg.mixup_alpha})")
    if cfg.cutmix_alpha > 0:
        names.append(f"cutmix(a={cfg.cutmix_alpha})")
    if cfg.label_smoothing > 0:
        names.append(f"label-smoothing({cfg.label_smoothing})")
    if cfg.patch is not None and cfg.patch.control:
        names.append(f"control-patch(every class, p={cfg.patch.fraction:g})")
    elif cfg.patch is not None:
        names.append(f"planted-patch(class={cfg.patch.target_class}, p={cfg.patch.fraction:g})")
    return names
