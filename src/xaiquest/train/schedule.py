"""Learning-rate schedules as pure functions of the step, so they are easy to test and resume."""

from __future__ import annotations

import math
from typing import Any

import torch

from xaiquest.config import TrainConfig
from xaiquest.models import classifier

WARMUP_START = 0.1  # warm-up starts at 10 % of the peak learning rate


def lr_factor(step: int, total_steps: int, warmup_frac: float, schedule: str) -> float:
    """Multiplier of the peak LR at ``step``: linear warm-up, then the schedule's decay.

    ``onecycle`` decays linearly to 0 (Smith's one-cycle without momentum cycling), ``cosine``
    follows a half cosine to 0, ``constant`` stays at the peak.
    """
    warmup = int(warmup_frac * total_steps)
    if step < warmup:
        return WARMUP_START + (1 - WARMUP_START) * step / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    if schedule == "onecycle":
        return max(0.0, 1 - progress)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return 1.0


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Weight decay on weights only: decaying BN scales and biases hurts short schedules. The backbone
    trains at ``lr x backbone_lr_scale`` (fine-tuning keeps the features it started from close)."""
    groups = parameter_groups(model, cfg)
    if cfg.bn_bias_lr_scale != 1:
        groups = _with_scaled_batchnorm_biases(model, groups, cfg)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def parameter_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters as (decayed, not decayed) groups, split further into backbone and
    classifier only when their learning rates differ (so other recipes keep their two groups)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    head = {id(p) for p in (classifier(model).parameters() if cfg.backbone_lr_scale != 1 else trainable)}
    parts = ((cfg.lr * cfg.backbone_lr_scale, [p for p in trainable if id(p) not in head]),
             (cfg.lr, [p for p in trainable if id(p) in head]))
    return [{"params": [p for p in params if (p.ndim > 1) == decayed], "lr": lr,
             "weight_decay": cfg.weight_decay if decayed else 0.0}
            for lr, params in parts if params for decayed in (True, False)]


def freeze_backbone(model: torch.nn.Module) -> None:
    """Linear probe: only the classifier's parameters take gradients (see :func:`training_mode` for BN)."""
    head = {id(p) for p in classifier(model).parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in head)


def training_mode(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Train mode, except a frozen backbone, which stays in eval mode: its BatchNorm statistics (and
    dropout) must not move either, or the "frozen" features would change under the probe."""
    model.train()
    if cfg.freeze_backbone:
        model.eval()
        classifier(getattr(model, "module", model)).train()  # a DDP replica wraps the model in .module


def _with_scaled_batchnorm_biases(model: torch.nn.Module, groups: list[dict[str, Any]],
                                  cfg: TrainConfig) -> list[dict[str, Any]]:
    """airbench's bias scaler: the BN biases leave their groups for one with a step ``bn_bias_lr_scale`` times
    larger and a decay divided by the same factor, so the per-step decay matches the weights'."""
    biases = {id(m.bias) for m in model.modules()
              if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.bias is not None and m.bias.requires_grad}
    kept = [group | {"params": [p for p in group["params"] if id(p) not in biases]} for group in groups]
    scaled = [p for group in groups for p in group["params"] if id(p) in biases]
    return [group for group in kept if group["params"]] + [
        {"params": scaled, "lr": cfg.lr * cfg.bn_bias_lr_scale, "weight_decay": cfg.weight_decay / cfg.bn_bias_lr_scale}]


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, cfg.warmup_frac, cfg.schedule)
    )
