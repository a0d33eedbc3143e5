"""Learning-rate schedules as pure functions of the step, so they are easy to test and resume."""

from __future__ import annotations

import math

import torch

from xaiquest.config import TrainConfig

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
    """Weight decay on weights only: decaying BN scales and biases hurts short schedules. With
    ``bn_bias_lr_scale`` the BN biases get their own group (airbench's bias scaler): a larger step, and a
    decay divided by the same factor, so the per-step decay matches the weights'."""
    bn_biases = _batchnorm_biases(model) if cfg.bn_bias_lr_scale != 1.0 else set()
    trainable = [p for p in model.parameters() if p.requires_grad and p not in bn_biases]
    decay = [p for p in trainable if p.ndim > 1]
    no_decay = [p for p in trainable if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if bn_biases:
        groups.append({"params": [p for p in model.parameters() if p in bn_biases],
                       "lr": cfg.lr * cfg.bn_bias_lr_scale, "weight_decay": cfg.weight_decay / cfg.bn_bias_lr_scale})
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def _batchnorm_biases(model: torch.nn.Module) -> set[torch.nn.Parameter]:
    return {m.bias for m in model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.bias is not None and m.bias.requires_grad}


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, cfg.warmup_frac, cfg.schedule)
    )
