"""What every stage shares about a run: its data splits, its trained models and their folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from xaiquest.config import ExperimentConfig, ModelSpec, PatchConfig
from xaiquest.data import Dataset, Split, load_cifar10, validation_split
from xaiquest.errors import XaiquestError
from xaiquest.models import build_model
from xaiquest.store import RunStore, fingerprint


@dataclass(frozen=True)
class AuditData:
    """The splits every stage uses: train (minus validation), validation, test."""

    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    source: str
    root: Path  # the resolved data folder, stored in the run so it is found again from any folder
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
    return AuditData(train, val, test, dataset.classes, dataset.source, dataset.root, data_fp)


def run_keys(config: ExperimentConfig, variants: list[str] | None = None) -> list[RunKey]:
    """Every model x variant x seed the experiment trains (a model may restrict its variants),
    optionally only those of ``variants`` (a stage's own selection; ``None`` = all)."""
    return [
        RunKey(spec, variant, seed)
        for spec in config.models
        for variant in config.variants
        if (spec.variants is None or variant in spec.variants) and (variants is None or variant in variants)
        for seed in config.seeds
    ]


def run_dir(store: RunStore, key: RunKey) -> Path:
    return store.path("models", key.id)


def train_fingerprint(config: ExperimentConfig, data: AuditData, key: RunKey) -> str:
    return fingerprint("train", key.spec.name, key.seed, config.train_config(key.spec, key.variant).model_dump(), data.fingerprint)


# what to do when an artifact a unit wrote is damaged: the unit's own command redoes it (it notices the
# damage); a file no unit recorded (older run, copied in) must be deleted first
_RETRAIN = "run `xaiquest train` to retrain {key} (delete the file first if the run did not record it)"
_REEVALUATE = "run `xaiquest evaluate` to redo evaluate/{key} (delete the file first if the run did not record it)"


def train_unit(key: RunKey) -> str:
    return f"train/{key.id}"


def evaluate_unit(key: RunKey) -> str:
    return f"evaluate/{key.id}"


def check_evaluation(store: RunStore, key: RunKey, path: Path) -> None:
    """Before reading a file the evaluate stage wrote: one clear error if it changed since."""
    store.check_artifact(evaluate_unit(key), path, _REEVALUATE.format(key=key.id))


def evaluate_fingerprint(config: ExperimentConfig, data: AuditData, key: RunKey, store: RunStore) -> str:
    """Includes the hash of the weights, so everything measured on a model redoes when it is retrained."""
    weights = store.artifact_hash(train_unit(key), run_dir(store, key) / "model.pt")
    return fingerprint("evaluate", train_fingerprint(config, data, key), weights, config.eval.model_dump())


def load_trained(store: RunStore, key: RunKey, num_classes: int, device: torch.device) -> nn.Module:
    """A trained model of the run, in eval mode on ``device``; a damaged or foreign ``model.pt`` is one clear error."""
    path = run_dir(store, key) / "model.pt"
    retrain = _RETRAIN.format(key=key.id)
    if not path.exists():
        raise XaiquestError(f"{key.id} is not trained yet ({path} missing); run `xaiquest train` first")
    store.check_artifact(train_unit(key), path, retrain)
    model = build_model(key.spec.name, num_classes)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # truncated zip, foreign pickle, other architecture: all mean "retrain"
        reason = " ".join(str(error).split())[:160]
        raise XaiquestError(f"{path} is not readable {key.spec.name} weights ({reason}); {retrain}") from error
    return model.to(device).eval()


def planted_patch(config: ExperimentConfig) -> PatchConfig | None:
    """The patch a training variant of the experiment plants (the first one), if any."""
    patches = (config.train_config(key.spec, key.variant).patch for key in run_keys(config))
    return next((patch for patch in patches if patch is not None), None)


def confident_mistakes(store: RunStore, key: RunKey) -> torch.Tensor:
    """Test indices of the evaluate stage's most confident mistakes, most confident first."""
    path = run_dir(store, key) / "eval" / "misclassified.csv"
    if not path.exists():
        raise XaiquestError(f"{key.id} has no evaluation yet ({path} missing); run `xaiquest evaluate` first")
    check_evaluation(store, key, path)
    return torch.tensor(pd.read_csv(path)["index"].to_list(), dtype=torch.long)


def load_logits(store: RunStore, key: RunKey) -> dict[str, torch.Tensor]:
    """Validation and test logits written by the evaluate stage."""
    path = run_dir(store, key) / "eval" / "logits.pt"
    if not path.exists():
        raise XaiquestError(f"{key.id} has no evaluation yet ({path} missing); run `xaiquest evaluate` first")
    check_evaluation(store, key, path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or foreign file
        raise XaiquestError(f"{path} is not readable logits; {_REEVALUATE.format(key=key.id)}") from error

