"""Stage: train every model x variant x seed of the experiment (resumable, skips finished runs);
a model that brings its own ``weights`` is imported (loaded, checked, fingerprinted) instead."""

from __future__ import annotations

import torch
from rich.progress import Progress

from xaiquest.config import ExperimentConfig, TrainConfig
from xaiquest.console import console, progress_bar
from xaiquest.inference import seed_everything
from xaiquest.models.weights import weights_digest
from xaiquest.patch import poison_split
from xaiquest.runs import (
    AuditData,
    RunKey,
    build_run_model,
    imported_model,
    run_dir,
    run_keys,
    train_fingerprint,
    train_unit,
)
from xaiquest.store import RunStore, atomic_torch_save, atomic_write_json
from xaiquest.train.mixing import augmentation_names
from xaiquest.train.trainer import CHECKPOINT, train_model


def train_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    keys = [key for key in run_keys(config) if not store.is_complete(train_unit(key), train_fingerprint(config, data, key))]
    if not keys:
        console.print("train: all models already trained, skipping")
        return
    for key in keys:
        if key.spec.weights:
            _import_one(store, data, key, train_fingerprint(config, data, key))
    with progress_bar() as progress:
        for key in keys:
            if not key.spec.weights:
                _train_one(config, store, data, device, key, progress)


def _import_one(store: RunStore, data: AuditData, key: RunKey, unit_fp: str) -> None:
    """Audit the user's weights as they are: load strictly into the architecture, store, fingerprint."""
    assert key.spec.weights is not None
    model = imported_model(key.spec, data)
    out = run_dir(store, key)
    atomic_torch_save(out / "model.pt", {k: v.cpu() for k, v in model.state_dict().items()})
    setup = {
        "model": key.spec.name, "variant": key.variant, "seed": key.seed, "optimizer": "none (imported weights)",
        "imported_from": key.spec.weights,
        "weights_sha256": weights_digest(key.spec.weights), "params": sum(p.numel() for p in model.parameters()),
        "train_time_s": 0.0, "train_images": 0,
    }
    atomic_write_json(out / "train.json", setup)
    store.mark_complete(train_unit(key), unit_fp, {"train_time_s": 0.0, "imported": True},
                        artifacts=[out / "model.pt", out / "train.json"])
    console.print(f"train: imported {key.id} from {key.spec.weights} (not trained)")


def _train_one(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device, key: RunKey,
               progress: Progress) -> None:
    out = run_dir(store, key)
    cfg = config.train_config(key.spec, key.variant)
    unit_fp = train_fingerprint(config, data, key)
    seed_everything(key.seed)
    model = build_run_model(key.spec, data, start=True)
    train = poison_split(data.train, cfg.patch, key.seed)[0] if cfg.patch else data.train
    outcome = train_model(model, train, data.val, cfg, seed=key.seed, device=device, out_dir=out,
                          fingerprint=unit_fp, num_classes=len(data.classes), label=key.id, progress=progress)
    atomic_torch_save(out / "model.pt", {k: v.cpu() for k, v in model.state_dict().items()})
    setup = {
        "model": key.spec.name, "variant": key.variant, "seed": key.seed, "optimizer": _describe_optimizer(cfg),
        "lr_schedule": f"{cfg.schedule}, peak {cfg.lr:g}, warmup {cfg.warmup_frac:.0%}",
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "augmentations": augmentation_names(cfg),
        "params": sum(p.numel() for p in model.parameters()), "train_time_s": round(outcome.train_time_s, 1),
        "device": device.type, "train_images": len(data.train),
        "patch": cfg.patch.model_dump() if cfg.patch else None,
    }
    atomic_write_json(out / "train.json", setup)
    (out / CHECKPOINT).unlink(missing_ok=True)
    store.mark_complete(train_unit(key), unit_fp, {"train_time_s": setup["train_time_s"]},
                        artifacts=[out / "model.pt", out / "train.json"])


def _describe_optimizer(cfg: TrainConfig) -> str:
    momentum = f", {'nesterov ' if cfg.nesterov else ''}momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else ""
    return f"{cfg.optimizer}{momentum}, wd {cfg.weight_decay:g}"

