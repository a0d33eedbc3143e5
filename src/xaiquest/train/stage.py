"""Stage: train every model x variant x seed of the experiment (resumable, skips finished runs);
a model that brings its own ``weights`` or ``torchscript`` file is imported (loaded, checked,
fingerprinted) instead."""

from __future__ import annotations

import math
from contextlib import ExitStack
from functools import cache

import torch
from rich.progress import Progress

from xaiquest.config import ExperimentConfig, TrainConfig
from xaiquest.console import console, progress_bar
from xaiquest.inference import seed_everything
from xaiquest.layout import ModelFiles, unit_name
from xaiquest.models.weights import weights_digest
from xaiquest.patch import training_split
from xaiquest.runs import AuditData, RunKey, build_run_model, imported_model, run_keys, train_fingerprint
from xaiquest.store import RunStore, atomic_torch_save, atomic_write_json
from xaiquest.train.mixing import augmentation_names
from xaiquest.train.trainer import estimated_epoch_seconds, train_model, train_on_devices
from xaiquest.units import Finished, UnitSpec, duration, in_worker, per_model_units, run_per_model


def train_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    keys = run_keys(config)
    fingerprints = {key.id: train_fingerprint(config, data, key) for key in keys}  # hashing an import's weights once

    todo = [key for key in keys if not key.spec.audited_file
            and not store.is_current(unit_name("train", key.id), fingerprints[key.id])]
    if todo and not in_worker():  # an executor's worker trains one model; the estimate is the whole plan's
        console.print(_estimate_line(config, data, device, todo))
    with ExitStack() as stack:
        @cache
        def epoch_bar() -> Progress:
            """One bar shared by every model, opened when the first one trains (none when all are done)."""
            return stack.enter_context(progress_bar())

        def compute(key: RunKey, files: ModelFiles) -> Finished:
            if key.spec.audited_file:
                return _import_one(data, key, files)
            return _train_one(config, data, device, key, files, fingerprints[key.id], epoch_bar())

        run_per_model("train", keys, store, lambda key: fingerprints[key.id], compute)


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    return per_model_units("train", run_keys(config), lambda key: ())


def _import_one(data: AuditData, key: RunKey, files: ModelFiles) -> Finished:
    """Audit the user's model as it is: load (strictly, for weights), store its state_dict, fingerprint."""
    source = key.spec.audited_file
    assert source is not None
    model = imported_model(key.spec, data)
    atomic_torch_save(files.weights, {k: v.cpu() for k, v in model.state_dict().items()})
    setup = {
        "model": key.spec.name, "variant": key.variant, "seed": key.seed, "optimizer": "none (imported weights)",
        "imported_from": source, "format": "torchscript" if key.spec.torchscript else "state_dict",
        "weights_sha256": weights_digest(source), "params": sum(p.numel() for p in model.parameters()),
        "train_time_s": 0.0, "train_images": 0,
    }
    atomic_write_json(files.train_record, setup)
    return Finished([files.weights, files.train_record], {"train_time_s": 0.0, "imported": True},
                    f"imported from {source} (not trained)")


def _train_one(config: ExperimentConfig, data: AuditData, device: torch.device, key: RunKey, files: ModelFiles,
               unit_fp: str, progress: Progress) -> Finished:
    cfg = config.train_config(key.spec, key.variant)
    seed_everything(key.seed)
    model = build_run_model(key.spec, data, start=True)
    train = training_split(data.train, cfg.patch, key.seed)[0] if cfg.patch else data.train
    from_weights = bool(key.spec.init or key.spec.pretrained)
    if cfg.devices > 1:
        outcome = train_on_devices(model, train, data.val, cfg, seed=key.seed, files=files, fingerprint=unit_fp,
                                   num_classes=len(data.classes), label=key.id, from_weights=from_weights)
    else:
        outcome = train_model(model, train, data.val, cfg, seed=key.seed, device=device, files=files,
                              fingerprint=unit_fp, num_classes=len(data.classes), label=key.id, progress=progress,
                              from_weights=from_weights)
    atomic_torch_save(files.weights, {k: v.cpu() for k, v in model.state_dict().items()})
    setup = {
        "model": key.spec.name, "variant": key.variant, "seed": key.seed, "optimizer": _describe_optimizer(cfg),
        "lr_schedule": f"{cfg.schedule}, peak {cfg.lr:g}, warmup {cfg.warmup_frac:.0%}",
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "augmentations": augmentation_names(cfg),
        "params": sum(p.numel() for p in model.parameters()), "train_time_s": round(outcome.train_time_s, 1),
        "device": device.type if cfg.devices == 1 else f"{cfg.devices} x cuda (DDP)", "train_images": len(data.train),
        "patch": cfg.patch.model_dump() if cfg.patch else None,
    }
    atomic_write_json(files.train_record, setup)
    files.checkpoint.unlink(missing_ok=True)
    val_acc = outcome.history["val_acc"].iloc[-1]
    return Finished([files.weights, files.train_record], {"train_time_s": setup["train_time_s"]},
                    "" if math.isnan(val_acc) else f"val accuracy {val_acc:.2%}")


def _estimate_line(config: ExperimentConfig, data: AuditData, device: torch.device, todo: list[RunKey]) -> str:
    """``train: 9 models to train, about 21 min 40 s``, from a few timed steps of each architecture and recipe
    on this machine, so a user knows up front whether to wait or to pick a smaller profile."""
    per_epoch: dict[tuple[object, ...], float] = {}
    total = 0.0
    for key in todo:
        cfg = config.train_config(key.spec, key.variant)
        recipe = (key.spec.name, tuple(key.spec.depths or ()), cfg.batch_size, cfg.channels_last)
        if recipe not in per_epoch:
            per_epoch[recipe] = estimated_epoch_seconds(build_run_model(key.spec, data), data.train, cfg, device,
                                                              len(data.classes))
        total += per_epoch[recipe] * cfg.epochs
    return (f"train: {len(todo)} models to train, about {duration(total)} on this machine (timed training steps "
            "of each architecture; validation not included)")


def _describe_optimizer(cfg: TrainConfig) -> str:
    momentum = f", {'nesterov ' if cfg.nesterov else ''}momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else ""
    backbone = (", backbone frozen" if cfg.freeze_backbone else
                f", backbone lr x{cfg.backbone_lr_scale:g}" if cfg.backbone_lr_scale != 1 else "")
    return f"{cfg.optimizer}{momentum}, wd {cfg.weight_decay:g}{backbone}"
