"""The training loop: batched tensor augmentation, one-cycle SGD, per-epoch checkpoints.

Resumable and reproducible: every epoch draws its randomness from a generator seeded by
(seed, epoch), and the model, optimizer and scheduler are checkpointed atomically after each
epoch, so a run killed at any point and restarted ends with the same weights as one that never
stopped.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

from xaiquest.config import TrainConfig
from xaiquest.console import console
from xaiquest.data import Split, alternating_flips, random_crop_flip
from xaiquest.figures.training import plot_training_curves
from xaiquest.inference import predict_logits, prepare_batch
from xaiquest.layout import ModelFiles
from xaiquest.store import atomic_torch_save, atomic_write_text
from xaiquest.train.distributed import Replica, spawn_replicas, wrap
from xaiquest.train.lookahead import Lookahead
from xaiquest.train.mixing import build_mixer
from xaiquest.train.schedule import build_optimizer, build_scheduler, freeze_backbone, training_mode
from xaiquest.units import timing

WHITENING_SAMPLE = 5000  # images used by models that fit a layer to the data before training


@dataclass(frozen=True)
class TrainOutcome:
    history: pd.DataFrame
    train_time_s: float


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def train_model(
    model: nn.Module,
    train: Split,
    val: Split,
    cfg: TrainConfig,
    *,
    seed: int,
    device: torch.device,
    files: ModelFiles,
    fingerprint: str,
    num_classes: int,
    label: str = "train",
    progress: Progress | None = None,
    replica: Replica | None = None,
    from_weights: bool = False,
    after_epoch: Callable[[int], None] | None = None,
) -> TrainOutcome:
    """Train ``model`` in place, resuming from ``files.checkpoint`` when it matches ``fingerprint``; writes the
    history, curves and (optionally) TensorBoard logs beside it. A model that starts ``from_weights`` keeps
    every layer it was given: no layer is fitted to this data first (the later layers were trained on it). As
    one ``replica`` of several (DDP), it trains on its slice of every global batch, and only replica 0 writes.
    ``after_epoch(epoch)`` runs after each epoch's checkpoint and log line, outside the timed training
    (benchmarks measure the model there)."""
    _prepare(model, cfg, device)
    writes = replica is None or replica.writes
    batch_size = min(cfg.batch_size, len(train))
    steps_per_epoch = len(train) // batch_size
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)
    state, averaged = _load_checkpoint(files.checkpoint, fingerprint, model, optimizer, scheduler)
    if state["epoch"] == 0 and not from_weights:
        _fit_to_data(model, train, device)
    lookahead = Lookahead(model, cfg.epochs * steps_per_epoch) if cfg.lookahead else None
    if lookahead and averaged is not None:
        lookahead.load_state_dict(averaged)
    net = wrap(model, device) if replica else model
    task = progress.add_task(label, total=cfg.epochs * steps_per_epoch, completed=state["epoch"] * steps_per_epoch) if progress else None
    writer = _tensorboard(files.tensorboard) if cfg.tensorboard and writes else None
    mixer = build_mixer(cfg, num_classes)
    images, labels = train.images.to(device), train.labels.to(device)
    for epoch in range(state["epoch"], cfg.epochs):
        started = time.perf_counter()
        _train_whitening_bias(model, cfg, epoch)
        train_loss, train_acc = _train_epoch(
            net, images, labels, cfg, optimizer, scheduler, mixer, batch_size, epoch_seed(seed, epoch), device,
            advance=(lambda: progress.advance(task)) if progress else None, shard=replica.shard if replica else None,
            lookahead=lookahead, flips=alternating_flips(len(images), seed, epoch) if cfg.alt_flip else None,
        )
        if replica:
            train_loss, train_acc = replica.mean([train_loss, train_acc])
        val_loss, val_acc = _validate(model, val, device, cfg)
        state["elapsed"] += time.perf_counter() - started
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
               "val_acc": val_acc, "lr": scheduler.get_last_lr()[0], "elapsed_s": state["elapsed"]}
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if not writes:
            continue
        _log_epoch(files.history, state["history"], writer)
        _save_checkpoint(files.checkpoint, fingerprint, model, optimizer, scheduler, state, lookahead)
        if progress:
            progress.update(task, description=f"{label} ep {epoch + 1}/{cfg.epochs}{val_text(val_acc)}")
        if not console.is_terminal or replica:  # no bar (a log file, or replicas): one line per epoch
            console.print(epoch_line(label, epoch + 1, cfg.epochs, val_acc, time.perf_counter() - started, state["elapsed"]),
                          highlight=False)
        if after_epoch:
            after_epoch(epoch + 1)
    if writer:
        writer.close()
    history = pd.DataFrame(state["history"])
    if writes:
        plot_training_curves(history, files.curves, title=label)
    return TrainOutcome(history=history, train_time_s=state["elapsed"])


def train_on_devices(model: nn.Module, train: Split, val: Split, cfg: TrainConfig, *, seed: int, files: ModelFiles,
                     fingerprint: str, num_classes: int, label: str, from_weights: bool = False,
                     backend: str = "nccl") -> TrainOutcome:
    """:func:`train_model` on ``cfg.devices`` DDP replicas (``xaiquest.train.distributed``; ``gloo`` on CPU is for
    tests); ``model`` ends holding the trained weights, read back from replica 0's last checkpoint."""
    arguments = (model, train, val, cfg, seed, files, fingerprint, num_classes, label, from_weights)
    spawn_replicas(_train_replica, cfg.devices, arguments, backend)
    checkpoint = torch.load(files.checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["model"])
    return TrainOutcome(history=pd.DataFrame(checkpoint["history"]), train_time_s=checkpoint["elapsed"])


def _train_replica(replica: Replica, device: torch.device, model: nn.Module, train: Split, val: Split,
                   cfg: TrainConfig, seed: int, files: ModelFiles, fingerprint: str, num_classes: int, label: str,
                   from_weights: bool) -> None:
    """Trains its own copy: spawned processes receive ``model``'s parameters in shared memory, and replicas
    stepping one storage would apply every update once per replica."""
    train_model(copy.deepcopy(model), train, val, cfg, seed=seed, device=device, files=files, fingerprint=fingerprint,
                num_classes=num_classes, label=label, replica=replica, from_weights=from_weights)


TIMED_STEPS = 2
"""Fewest SGD steps timed (after as many untimed warm-up steps) to estimate an epoch before training starts."""
TIMED_IMAGES = 1024
"""Fewest training images the timed steps cover: two steps of 128 images take about 0.2 s, so a passing hiccup
moves the estimate (a fresh clone's quick run once said 19 min for 11 min of training; a rerun, 11 min 28 s)."""


def timed_steps(batch_size: int) -> int:
    """Steps the epoch estimate times at this batch size: at least :data:`TIMED_STEPS` and :data:`TIMED_IMAGES`."""
    return max(TIMED_STEPS, math.ceil(TIMED_IMAGES / batch_size))


def estimated_epoch_seconds(model: nn.Module, train: Split, cfg: TrainConfig, device: torch.device,
                            num_classes: int) -> float:
    """One epoch's training time from :func:`timed_steps` of the trainer's own steps (augmentation,
    Mixup/CutMix, optimiser and the run's schedule; after as many untimed warm-up steps; validation not
    included): what the train stage's up-front estimate multiplies. The steps see what training's first steps
    see, seeded random images at the warm-up's learning rates: on the first 1,024 images of a class-ordered
    folder (one class) with the schedule squeezed into the timed steps, 8 steps of vgg_small took 11.7 s
    instead of 0.6 s. ``model`` is a throwaway: its weights change."""
    _prepare(model, cfg, device)
    batch_size = min(cfg.batch_size, len(train))
    steps = timed_steps(batch_size)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, cfg.epochs * (len(train) // batch_size))
    mixer = build_mixer(cfg, num_classes)
    n = max(batch_size, min(steps * batch_size, len(train) // 2))  # >= one batch; warm-up and timed images
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))  # overlap only on tiny data

    def run_steps(indices: torch.Tensor, seed: int) -> int:
        images, labels = train.images[indices].to(device), train.labels[indices].to(device)
        _train_epoch(model, images, labels, cfg, optimizer, scheduler, mixer, batch_size, seed, device, advance=None)
        return len(indices) // batch_size

    run_steps(order[:n], seed=0)
    started = time.perf_counter()
    timed = run_steps(order[-n:], seed=1)
    return (time.perf_counter() - started) / timed * (len(train) // batch_size)


def _prepare(model: nn.Module, cfg: TrainConfig, device: torch.device) -> None:
    """On ``device``, in the recipe's memory format, with a linear probe's backbone frozen."""
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.freeze_backbone:
        freeze_backbone(model)


def epoch_line(label: str, epoch: int, epochs: int, val_acc: float, epoch_seconds: float, elapsed: float) -> str:
    """``train: fastnet__baseline__s0 epoch 3/8 val 71.2% (20.1 s; elapsed 1 min 01 s, ETA 1 min 41 s)``."""
    return f"train: {label} epoch {epoch}/{epochs}{val_text(val_acc)} {timing(epoch_seconds, elapsed, epoch, epochs)}"


def val_text(val_acc: float) -> str:
    """`` val 71.2%``, or nothing when no images were held out for validation (the accuracy is NaN)."""
    return "" if math.isnan(val_acc) else f" val {val_acc:.1%}"


def _train_epoch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    mixer: Any,
    batch_size: int,
    seed: int,
    device: torch.device,
    advance: Any,
    shard: Callable[[int], slice] | None = None,
    lookahead: Lookahead | None = None,
    flips: torch.Tensor | None = None,
) -> tuple[float, float]:
    """One pass over the shuffled data (last partial batch dropped); returns mean loss and accuracy. With
    ``shard``, the whole global batch is drawn and augmented as on one device, then this replica keeps its slice.
    ``flips`` (a bool per image) replaces the per-epoch coin toss of mirroring (``train.alt_flip``)."""
    training_mode(model, cfg)
    generator = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)  # MixUp/CutMix draw from the global generator
    order = torch.randperm(len(images), generator=generator, device=device)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    steps = len(images) // batch_size
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        flip = flips[index.cpu()] if flips is not None and cfg.flip else cfg.flip
        batch = random_crop_flip(images[index], cfg.crop_pad, generator, flip=flip)
        x, y = prepare_batch(batch, device, cfg.channels_last), labels[index]
        target = mixer(x, y) if mixer else (x, y)
        x, soft = target
        if shard:
            part = shard(len(x))
            x, soft, y = x[part], soft[part], y[part]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), soft, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if lookahead:
            lookahead.after_step(getattr(model, "module", model), scheduler.last_epoch)  # a DDP replica wraps it
        total_loss += loss.detach()
        correct += (logits.argmax(1) == y).sum()
        if advance:
            advance()
    return (total_loss / steps).item(), (correct / (steps * len(y))).item()


def _validate(model: nn.Module, val: Split, device: torch.device, cfg: TrainConfig) -> tuple[float, float]:
    if len(val) == 0:
        return float("nan"), float("nan")
    logits = predict_logits(model, val.images, device)
    loss = F.cross_entropy(logits, val.labels).item()
    return loss, (logits.argmax(1) == val.labels).float().mean().item()


def _fit_to_data(model: nn.Module, train: Split, device: torch.device) -> None:
    """Models with a data-initialised layer (FastNet's whitening stem) expose ``fit_to_data``."""
    fit = getattr(model, "fit_to_data", None)
    if fit is not None:
        fit(prepare_batch(train.images[:WHITENING_SAMPLE], device, channels_last=False))


def _train_whitening_bias(model: nn.Module, cfg: TrainConfig, epoch: int) -> None:
    """airbench's schedule for a data-fitted whitening layer: its filters stay as fitted, its bias trains for
    the first ``whiten_bias_epochs``. A frozen parameter gets no gradient, so SGD leaves it alone."""
    whitening_conv = getattr(model, "whitening_conv", None)
    if cfg.whiten_bias_epochs is None or whitening_conv is None:
        return
    conv = whitening_conv()
    conv.weight.requires_grad_(False)
    conv.bias.requires_grad_(epoch < cfg.whiten_bias_epochs)


def _tensorboard(log_dir: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow import, optional output

    return SummaryWriter(log_dir=str(log_dir))


def _log_epoch(path: Path, history: list[dict[str, float]], writer: Any) -> None:
    atomic_write_text(path, pd.DataFrame(history).to_csv(index=False))
    if writer:
        row = history[-1]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            writer.add_scalar(key, row[key], row["epoch"])
        writer.flush()


def _save_checkpoint(path: Path, fingerprint: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, state: dict[str, Any], lookahead: Lookahead | None) -> None:
    atomic_torch_save(path, {
        "fingerprint": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        **({"lookahead": lookahead.state_dict()} if lookahead else {}),
        **state,
    })


def _load_checkpoint(path: Path, fingerprint: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore a matching checkpoint; a stale one (other config or code) is ignored. Returns the loop's state
    and the lookahead average, if the checkpoint has one."""
    fresh = {"epoch": 0, "history": [], "elapsed": 0.0}
    if not path.exists():
        return fresh, None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a corrupt checkpoint is as good as none: retrain from scratch
        return fresh, None
    if checkpoint.get("fingerprint") != fingerprint:
        return fresh, None
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    return {key: checkpoint[key] for key in fresh}, checkpoint.get("lookahead")
