"""What every stage shares about a run: its data splits, its trained models and their folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from xaiquest.config import BASELINE, ExperimentConfig, ModelSpec, PatchConfig, RobustnessConfig
from xaiquest.data import (
    CIFAR10_CLASSES,
    CIFAR10_NORMALISATION,
    Dataset,
    Normalisation,
    Split,
    channel_statistics,
    load_dataset,
    validation_split,
)
from xaiquest.errors import XaiquestError
from xaiquest.layout import unit_name
from xaiquest.models import build_model, override_depths
from xaiquest.models.torchscript import check_outputs, load_torchscript
from xaiquest.models.weights import load_matching, load_weights, weights_digest
from xaiquest.patch import DEFAULT_MARGIN, stamp_parameters
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
    normalisation: Normalisation = CIFAR10_NORMALISATION
    conversions: dict[str, int] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return self.test.images.shape[-1]


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
    """Load the images, hold out the seeded validation split, apply smoke-size subsets, and take the
    normalisation statistics from the training split."""
    cfg = config.data
    dataset: Dataset = load_dataset(cfg.source, Path(cfg.cache_dir), download=cfg.download, image_size=cfg.image_size,
                                    test_fraction=cfg.test_fraction, split_seed=cfg.split_seed, classes=cfg.classes)
    train, val = validation_split(dataset.train, cfg.val_size, cfg.split_seed)
    if cfg.train_subset is not None and cfg.train_subset < len(train):
        train, _ = validation_split(train, len(train) - cfg.train_subset, cfg.split_seed)
    test = dataset.test
    if cfg.test_subset is not None and cfg.test_subset < len(test):
        test, _ = validation_split(test, len(test) - cfg.test_subset, cfg.split_seed)
    normalisation = (Normalisation(cfg.mean, cfg.std) if cfg.mean is not None and cfg.std is not None
                     else training_normalisation(dataset, train))
    identity: list[object] = [dataset.source, len(train), len(val), len(test), cfg.identity()]
    if normalisation != CIFAR10_NORMALISATION:
        identity.append(normalisation)  # CIFAR-10 runs keep the fingerprints they had before other data existed
    return AuditData(train, val, test, dataset.classes, dataset.source, dataset.root, fingerprint(*identity),
                     normalisation, dataset.conversions)


def describe_data(data: AuditData) -> dict[str, object]:
    """What the manifest states about the images: classes, size, statistics, conversions on loading."""
    return {
        "classes": list(data.classes), "image_size": data.image_size,
        "normalisation": {"mean": list(data.normalisation.mean), "std": list(data.normalisation.std)},
        "converted": data.conversions, "images": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
    }


def training_normalisation(dataset: Dataset, train: Split) -> Normalisation:
    """CIFAR-10 at 32 px keeps its published statistics (those of its 50,000 training images, which
    every model trained so far was fed); any other dataset is normalised by its own training split."""
    if dataset.classes == CIFAR10_CLASSES and dataset.image_size == 32 and not dataset.conversions:
        return CIFAR10_NORMALISATION
    return channel_statistics(train.images)


def run_keys(config: ExperimentConfig, variants: list[str] | None = None) -> list[RunKey]:
    """Every model x variant x seed the experiment trains (a model may restrict its variants),
    optionally only those of ``variants`` (a stage's own selection; ``None`` = all). A model with
    its own ``weights`` or ``torchscript`` file is one run: nothing is trained, so variants and seeds
    would repeat it."""
    return [
        RunKey(spec, variant, seed)
        for spec in config.models
        for variant in ([BASELINE] if spec.audited_file else config.variants)
        if (spec.variants is None or variant in spec.variants) and (variants is None or variant in variants)
        for seed in (config.seeds[:1] if spec.audited_file else config.seeds)
    ]


def started_from_weights(config: ExperimentConfig) -> list[RunKey]:
    """The runs that train from weights (``init`` or ``pretrained``): the ones the transfer stage compares
    with where they started."""
    return [key for key in run_keys(config) if key.spec.init or key.spec.pretrained]


WHERE_NOT_WHAT = {"devices"}
"""Train settings that decide where a model trains, not what it learns: a run resumes on another device count."""


def train_fingerprint(config: ExperimentConfig, data: AuditData, key: RunKey) -> str:
    if key.spec.audited_file:  # imported, not trained: the file's content is the whole recipe
        return fingerprint("import", key.spec.name, weights_digest(key.spec.audited_file), key.spec.depths,
                           data.fingerprint)
    cfg = config.train_config(key.spec, key.variant)
    return fingerprint("train", key.spec.name, key.seed, cfg.model_dump(exclude=WHERE_NOT_WHAT), data.fingerprint, *_starting_point(key.spec),
                       *_patch_as_stamped(cfg.patch, data.image_size))


def _starting_point(spec: ModelSpec) -> list[object]:
    """What a model starts from besides its architecture (absent for from-scratch models, so their
    fingerprints stay as they were)."""
    extra = {"depths": spec.depths, "pretrained": spec.pretrained or None,
             "init": weights_digest(spec.init) if spec.init else None}
    return [{key: value for key, value in extra.items() if value}] if any(extra.values()) else []


def _patch_as_stamped(patch: PatchConfig | None, image_side: int) -> list[object]:
    """The planted patch's pixels as stamped where they differ from the configured ones (the patch scales
    with the image; at 32 px it does not, so those fingerprints stay as they were)."""
    if patch is None:
        return []
    stamped = stamp_parameters(patch, image_side)
    return [] if (stamped["size"], stamped["margin"]) == (patch.size, DEFAULT_MARGIN) else [stamped]


# what to do when an artifact a unit wrote is damaged: the unit's own command redoes it (it notices the
# damage); a file no unit recorded (older run, copied in) must be deleted first
_RETRAIN = "run `xaiquest train` to retrain {key} (delete the file first if the run did not record it)"
_REEVALUATE = "run `xaiquest evaluate` to redo evaluate/{key} (delete the file first if the run did not record it)"


def check_evaluation(store: RunStore, key: RunKey, path: Path) -> None:
    """Before reading a file the evaluate stage wrote: one clear error if it changed since."""
    store.check_artifact(unit_name("evaluate", key.id), path, _REEVALUATE.format(key=key.id))


def evaluate_fingerprint(config: ExperimentConfig, data: AuditData, key: RunKey, store: RunStore) -> str:
    """Includes the hash of the weights, so everything measured on a model redoes when it is retrained."""
    weights = store.artifact_hash(unit_name("train", key.id), store.layout.model(key.id).weights)
    return fingerprint("evaluate", train_fingerprint(config, data, key), weights, config.eval.model_dump())


def calibrate_fingerprint(config: ExperimentConfig, data: AuditData, key: RunKey, store: RunStore) -> str:
    """Here, not in the calibration stage, because the comparison table checks it before quoting an ECE."""
    return fingerprint("calibrate", evaluate_fingerprint(config, data, key, store), config.calibration.model_dump())


def robustness_fingerprint(config: ExperimentConfig, data: AuditData, store: RunStore) -> str:
    """The run-level robustness unit's fingerprint (every measured model's evaluation, the settings, the
    corruptions by name); here because the comparison table checks it before quoting an mCE."""
    cfg = config.robustness
    keys = run_keys(config, cfg.variants)
    return fingerprint("robustness", [evaluate_fingerprint(config, data, key, store) for key in keys], cfg.model_dump(),
                       corruption_names(cfg))


def corruption_names(cfg: RobustnessConfig) -> list[str]:
    """The corruptions ``robustness.corruptions`` selects (``all``, ``benchmark`` or a list), in order."""
    from xaiquest.data.corruptions import BENCHMARK_CORRUPTIONS, CORRUPTIONS  # registers all 19: costly, needed here only

    if cfg.corruptions == "all":
        return CORRUPTIONS.names()
    if cfg.corruptions == "benchmark":
        return list(BENCHMARK_CORRUPTIONS)
    for name in cfg.corruptions:
        CORRUPTIONS.get(name)  # raises, listing the known corruptions
    return list(cfg.corruptions)


def build_run_model(spec: ModelSpec, data: AuditData, start: bool = False) -> nn.Module:
    """The architecture of ``spec`` for this data (class count, image size), with its depth override;
    with ``start``, holding what training starts from (torchvision's weights, an ``init`` file). A
    ``torchscript`` model is its file's module (the architecture and the weights in one)."""
    if spec.torchscript:
        return load_torchscript(spec.torchscript)
    model = build_model(spec.name, len(data.classes), pretrained=start and spec.pretrained, image_size=data.image_size)
    if start and spec.init:
        load_matching(model, spec.init)
    return override_depths(model, spec.depths) if spec.depths else model


def imported_model(spec: ModelSpec, data: AuditData) -> nn.Module:
    """The architecture of ``spec`` holding the user's ``weights`` file, checked strictly against it,
    or the module of its ``torchscript`` file, checked to classify the data's images into its classes."""
    model = build_run_model(spec, data)
    if spec.torchscript:
        check_outputs(model, spec.torchscript, len(data.classes), data.image_size)
    else:
        assert spec.weights is not None
        load_weights(model, spec.weights, f"{spec.name} ({len(data.classes)} classes, {data.image_size} px images)")
    return model


def check_model_sources(config: ExperimentConfig, data: AuditData) -> None:
    """Load every model file (``weights``, ``torchscript``, ``init``, ``pretrained``) once before the run
    directory opens, so a missing file or one that does not fit fails with nothing written."""
    for spec in config.models:
        if spec.audited_file:
            imported_model(spec, data)
        elif spec.init or spec.pretrained:
            build_run_model(spec, data, start=True)


def load_trained(store: RunStore, key: RunKey, data: AuditData, device: torch.device) -> nn.Module:
    """A trained (or imported) model of the run, in eval mode on ``device``; a damaged or foreign
    weights file is one clear error."""
    path = store.layout.model(key.id).weights
    retrain = _RETRAIN.format(key=key.id)
    if not path.exists():
        raise XaiquestError(f"{key.id} is not trained yet ({path} missing); run `xaiquest train` first")
    store.check_artifact(unit_name("train", key.id), path, retrain)
    model = build_run_model(key.spec, data)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # truncated zip, foreign pickle, other architecture: all mean "retrain"
        reason = " ".join(str(error).split())[:160]
        raise XaiquestError(f"{path} is not readable {key.spec.name} weights ({reason}); {retrain}") from error
    return model.to(device).eval()


def planted_patch(config: ExperimentConfig) -> PatchConfig | None:
    """The patch a training variant of the experiment plants (the first one, a reliant variant's before a
    control's), if any, as stamped on test images: without the ``control`` flag, which only decides training."""
    patches = [patch for key in run_keys(config) if (patch := config.train_config(key.spec, key.variant).patch)]
    return min(patches, key=lambda patch: patch.control).model_copy(update={"control": False}) if patches else None


def probes_patch(config: ExperimentConfig, key: RunKey) -> bool:
    """Whether the stress stage's patch probe runs on ``key``: patch models and the baselines they are compared
    with, when the run plants a patch at all."""
    return planted_patch(config) is not None and (config.train_config(key.spec, key.variant).patch is not None
                                                  or key.variant == BASELINE)


def stress_keys(config: ExperimentConfig) -> list[RunKey]:
    """The models the stress stage probes: the probe battery's variants, plus every model the planted-patch
    probe runs on (here, not in the stage, so the run's plan line counts them without loading the stage)."""
    battery = {key.id for key in run_keys(config, config.stress.variants)}
    return [key for key in run_keys(config) if key.id in battery or probes_patch(config, key)]


def control_twin(config: ExperimentConfig, key: RunKey) -> RunKey | None:
    """The control model of patch model ``key`` in this run: the same architecture and seed, trained on the same
    patch with ``control`` set (docs/xai-benchmark.md); None for other models or when the run has none."""
    patch = config.train_config(key.spec, key.variant).patch
    if patch is None or patch.control:
        return None
    wanted = {**patch.model_dump(), "control": True}
    return next((other for other in run_keys(config) if other.spec == key.spec and other.seed == key.seed
                 and (twin := config.train_config(other.spec, other.variant).patch) and twin.model_dump() == wanted), None)


def confident_mistakes(store: RunStore, key: RunKey) -> torch.Tensor:
    """Test indices of the evaluate stage's most confident mistakes, most confident first."""
    path = store.layout.model(key.id).eval.misclassified
    if not path.exists():
        raise XaiquestError(f"{key.id} has no evaluation yet ({path} missing); run `xaiquest evaluate` first")
    check_evaluation(store, key, path)
    import pandas as pd  # not at import: the config check before a run needs this module, not pandas

    return torch.tensor(pd.read_csv(path)["index"].to_list(), dtype=torch.long)


def load_logits(store: RunStore, key: RunKey) -> dict[str, torch.Tensor]:
    """Validation and test logits written by the evaluate stage."""
    path = store.layout.model(key.id).eval.logits
    if not path.exists():
        raise XaiquestError(f"{key.id} has no evaluation yet ({path} missing); run `xaiquest evaluate` first")
    check_evaluation(store, key, path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or foreign file
        raise XaiquestError(f"{path} is not readable logits; {_REEVALUATE.format(key=key.id)}") from error

