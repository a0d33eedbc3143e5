"""Orders the audit's stages over a run directory; each stage skips work already finished.

Data flows one way: config -> data -> train -> evaluate -> compare, each stage reading only
what earlier stages wrote into ``runs/<experiment>/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from xaiquest.config import ExperimentConfig, ModelSpec, TrainConfig
from xaiquest.data import Dataset, Split, load_cifar10, validation_split
from xaiquest.errors import XaiquestError
from xaiquest.evaluate import write_comparison, write_evaluation
from xaiquest.inference import predict_logits, resolve_device, seed_everything
from xaiquest.metrics import classification_metrics, top_confident_mistakes
from xaiquest.models import build_model
from xaiquest.store import RunStore, atomic_torch_save, atomic_write_json, fingerprint
from xaiquest.train import CHECKPOINT, train_model
from xaiquest.train.mixing import augmentation_names

console = Console(stderr=True)


@dataclass(frozen=True)
class AuditData:
    """The splits every stage uses: train (minus validation), validation, test."""

    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    source: str
    fingerprint: str


@dataclass(frozen=True)
class RunKey:
    """One trained model: architecture x training variant x seed."""

    spec: ModelSpec
    variant: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.spec.name.replace(':', '-')}__{self.variant}__s{self.seed}"


def prepare_data(config: ExperimentConfig) -> AuditData:
    """Load CIFAR-10, hold out the seeded validation split, apply smoke-size subsets."""
    cfg = config.data
    dataset: Dataset = load_cifar10(cfg.source, Path(cfg.cache_dir), download=cfg.download)
    train, val = validation_split(dataset.train, cfg.val_size, cfg.split_seed)
    if cfg.train_subset is not None and cfg.train_subset < len(train):
        train, _ = validation_split(train, len(train) - cfg.train_subset, cfg.split_seed)
    test = dataset.test
    if cfg.test_subset is not None and cfg.test_subset < len(test):
        test, _ = validation_split(test, len(test) - cfg.test_subset, cfg.split_seed)
    data_fp = fingerprint(dataset.source, len(train), len(val), len(test), cfg.model_dump(exclude={"cache_dir", "download"}))
    return AuditData(train, val, test, dataset.classes, dataset.source, data_fp)


def run_keys(config: ExperimentConfig) -> list[RunKey]:
    return [RunKey(spec, variant, seed) for spec in config.models for variant in config.variants for seed in config.seeds]


def run_dir(store: RunStore, key: RunKey) -> Path:
    return store.path("models", key.id)


def train_fingerprint(config: ExperimentConfig, data: AuditData, key: RunKey) -> str:
    return fingerprint("train", key.spec.name, key.seed, config.train_config(key.spec, key.variant).model_dump(), data.fingerprint)


def load_trained(store: RunStore, key: RunKey, num_classes: int, device: torch.device) -> nn.Module:
    """A trained model of the run, in eval mode on ``device``."""
    path = run_dir(store, key) / "model.pt"
    if not path.exists():
        raise XaiquestError(f"{key.id} is not trained yet ({path} missing); run `xaiquest train` first")
    model = build_model(key.spec.name, num_classes)
    model.load_state_dict(torch.load(path, map_location="cpu"))
    return model.to(device).eval()


def train_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """Train every model x variant x seed not already trained under the same fingerprint."""
    keys = [key for key in run_keys(config) if not store.is_complete(f"train/{key.id}", train_fingerprint(config, data, key))]
    if not keys:
        console.print("train: all models already trained, skipping")
        return
    with _progress() as progress:
        for key in keys:
            _train_one(config, store, data, device, key, progress)


def _train_one(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device, key: RunKey,
               progress: Progress) -> None:
    out = run_dir(store, key)
    cfg = config.train_config(key.spec, key.variant)
    unit_fp = train_fingerprint(config, data, key)
    seed_everything(key.seed)
    model = build_model(key.spec.name, len(data.classes))
    outcome = train_model(model, data.train, data.val, cfg, seed=key.seed, device=device, out_dir=out,
                          fingerprint=unit_fp, num_classes=len(data.classes), label=key.id, progress=progress)
    atomic_torch_save(out / "model.pt", {k: v.cpu() for k, v in model.state_dict().items()})
    setup = {
        "model": key.spec.name, "variant": key.variant, "seed": key.seed,
        "optimizer": _describe_optimizer(cfg),
        "lr_schedule": f"{cfg.schedule}, peak {cfg.lr:g}, warmup {cfg.warmup_frac:.0%}",
        "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "augmentations": augmentation_names(cfg), "params": sum(p.numel() for p in model.parameters()),
        "train_time_s": round(outcome.train_time_s, 1), "device": device.type, "train_images": len(data.train),
    }
    atomic_write_json(out / "train.json", setup)
    (out / CHECKPOINT).unlink(missing_ok=True)
    store.mark_complete(f"train/{key.id}", unit_fp, {"train_time_s": setup["train_time_s"]})


def _describe_optimizer(cfg: TrainConfig) -> str:
    momentum = f", {'nesterov ' if cfg.nesterov else ''}momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else ""
    return f"{cfg.optimizer}{momentum}, wd {cfg.weight_decay:g}"


def evaluate_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """Stage-1 metrics of every trained model on test (and its logits on val + test for later stages)."""
    for key in run_keys(config):
        unit_fp = fingerprint("evaluate", train_fingerprint(config, data, key), config.eval.model_dump())
        if store.is_complete(f"evaluate/{key.id}", unit_fp):
            continue
        started = time.perf_counter()
        model = load_trained(store, key, len(data.classes), device)
        out = run_dir(store, key) / "eval"
        test_logits = predict_logits(model, data.test.images, device, config.eval.batch_size, config.eval.tta_flip)
        val_logits = predict_logits(model, data.val.images, device, config.eval.batch_size, config.eval.tta_flip)
        probs = test_logits.softmax(1)
        metrics = classification_metrics(probs, data.test.labels, data.classes)
        mistakes = top_confident_mistakes(probs, data.test.labels, config.eval.top_mistakes)
        write_evaluation(metrics, mistakes, data.classes, out, title=key.id)
        atomic_torch_save(out / "logits.pt", {"test": test_logits, "test_labels": data.test.labels,
                                              "val": val_logits, "val_labels": data.val.labels})
        store.mark_complete(f"evaluate/{key.id}", unit_fp, {"accuracy": metrics.accuracy})
        console.print(f"evaluate: {key.id} test accuracy {metrics.accuracy:.2%} "
                      f"({time.perf_counter() - started:.1f} s)")


def compare_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    """One table across all trained models (mean ± std over seeds)."""
    rows = [_comparison_row(store, key) for key in run_keys(config)]
    _, md_path = write_comparison(rows, store.path("tables"))
    for row in sorted(rows, key=lambda r: -r["accuracy"]):
        console.print(f"  {row['model']:<20} {row['variant']:<12} seed {row['seed']}: accuracy {row['accuracy']:.2%}")
    console.print(f"compare: wrote {md_path}")


def _comparison_row(store: RunStore, key: RunKey) -> dict[str, Any]:
    folder = run_dir(store, key)
    metrics_file = folder / "eval" / "metrics.json"
    if not metrics_file.exists():
        raise XaiquestError(f"{key.id} has no evaluation yet; run `xaiquest evaluate` first")
    setup = json.loads((folder / "train.json").read_text(encoding="utf-8"))
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    keep = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_auc")
    return {**{k: v for k, v in setup.items() if k not in ("device", "train_images")}, **{k: metrics[k] for k in keep}}


Stage = Callable[[ExperimentConfig, RunStore, AuditData, torch.device], None]
STAGES: dict[str, Stage] = {"train": train_stage, "evaluate": evaluate_stage, "compare": compare_stage}


def run_pipeline(config: ExperimentConfig, runs_dir: Path, stages: list[str]) -> RunStore:
    """Validate inputs first, then open the run directory and run the stages in order."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise XaiquestError(f"unknown stage {unknown[0]!r}; available: {', '.join(STAGES)}")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    started = time.perf_counter()
    data = prepare_data(config)
    console.print(f"data: {data.source} — train {len(data.train)}, val {len(data.val)}, test {len(data.test)} "
                  f"({time.perf_counter() - started:.1f} s); device {device}")
    store = RunStore(Path(runs_dir) / config.name)
    store.initialise(config.model_dump(mode="json"), data.source)
    for name in stages:
        stage_started = time.perf_counter()
        STAGES[name](config, store, data, device)
        store.record_timing(name, time.perf_counter() - stage_started)
    console.print(f"done in {time.perf_counter() - started:.0f} s: {store.root}")
    return store


@contextmanager
def _progress() -> Iterator[Progress]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        yield progress
