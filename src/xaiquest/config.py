"""Experiment configuration: one YAML file, validated by pydantic, layered on a named profile.

A config may name a ``profile`` (smoke / quick / extended / standard / full / shortcut); its own keys override the
profile's, section by section. Every field is checked: a misspelled key or a bad value is
reported by its dotted name together with what is allowed. Names only a registry, a model or the
data can judge (methods, probes, corruptions, models, layers, class indices) are checked by
``xaiquest.validation.check_config``, so loading a config imports no registry and stays fast.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from xaiquest.errors import ConfigError

PROFILES = ("smoke", "quick", "extended", "standard", "full", "shortcut")


class Section(BaseModel):
    """Unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


BASELINE = "baseline"
"""The variant others are compared against (patch reliance, the re-examination of confident mistakes)."""
VARIANTS_FIELD_HELP = "training variants this stage audits; null = every variant"
VARIANT_STAGES = ("robustness", "explain", "stress", "concepts")
"""Sections with a ``variants`` selection."""


class DataConfig(Section):
    source: str | None = Field(
        None, description="CIFAR-10/100 release or image folders (train/<class>, test/<class> or one <class> tree); "
        "else $XAIQUEST_DATA; else download CIFAR-10"
    )
    cache_dir: str = ".cache/xaiquest"
    download: bool = True
    val_size: int = Field(5000, ge=0, description="held out from train (temperature scaling, early checks)")
    split_seed: int = 0
    train_subset: int | None = Field(None, ge=10, description="stratified subset of train (smoke runs)")
    test_subset: int | None = Field(None, ge=10)
    image_size: int | None = Field(
        None, ge=8, description="resize (shorter side) + centre-crop every image to this square size; "
        "null = the images' own size (they must all share it)"
    )
    test_fraction: float | None = Field(
        None, gt=0, lt=1, description="share of each class held out as test when the data is one <class>/ tree; null = 0.2"
    )
    mean: tuple[float, float, float] | None = Field(
        None, description="per-channel input mean in [0, 1] the audited weights expect; null = the training split's"
    )
    std: tuple[float, float, float] | None = Field(None, description="per-channel input std, set together with mean")
    classes: list[str] | None = Field(
        None, min_length=2, description="keep only these classes (folder or release names), re-indexed in this "
        "order, in train, validation and test; null = every class"
    )

    @model_validator(mode="after")
    def _mean_with_std(self) -> DataConfig:
        if (self.mean is None) != (self.std is None):
            raise ValueError("set data.mean and data.std together (the normalisation the model was trained with)")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"data.std must be positive, got {list(self.std)}")
        if self.classes is not None and len(set(self.classes)) < len(self.classes):
            raise ValueError(f"data.classes names a class twice: {self.classes}; list each class once")
        return self

    def identity(self) -> dict[str, Any]:
        """The fields that decide which images a run sees (fingerprints); unset new fields are left
        out so runs made before they existed keep their fingerprints."""
        optional = {name for name in ("image_size", "test_fraction", "mean", "std", "classes") if getattr(self, name) is None}
        return self.model_dump(exclude={"cache_dir", "download", *optional})


Channel = Annotated[int, Field(ge=0, le=255)]


class PatchConfig(Section):
    """A planted spurious patch on a share of one class's training images (a training variant), or on
    the same share of every class for its control twin (``control``).

    The one description of the patch: ``xaiquest.patch`` plants and stamps it from this type.
    """

    target_class: int = Field(0, ge=0, description="checked against the data's classes before any work")
    fraction: float = Field(1.0, ge=0, le=1, description="share of the target class's training images stamped")
    colour: tuple[Channel, Channel, Channel] | Literal["mean"] = Field(
        (255, 0, 255), description="RGB 0-255, or 'mean': each image's own mean colour (salient by its flatness only)"
    )
    size: int = Field(3, ge=1, description="side in pixels at 32 px, scaled with the image side (xaiquest.patch)")
    position: Literal["fixed", "random"] = "fixed"
    control: bool = Field(
        False, description="train the control twin instead: the same patch on the same share of every class, so it "
        "carries no label information (target_class is then ignored; docs/xai-benchmark.md)"
    )

    @model_serializer(mode="wrap")
    def _without_default_control(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``control`` is dumped only when set: the patch models trained before it existed keep their fingerprints."""
        dumped = handler(self)
        if not self.control:
            dumped.pop("control", None)
        return dumped


class TrainConfig(Section):
    epochs: int = Field(4, ge=1)
    batch_size: int = Field(512, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.4, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup_frac: float = Field(0.25, ge=0, lt=1)
    label_smoothing: float = Field(0.2, ge=0, lt=1)
    mixup_alpha: float = Field(0.0, ge=0, description="> 0 enables torchvision MixUp")
    cutmix_alpha: float = Field(0.0, ge=0, description="> 0 enables torchvision CutMix")
    crop_pad: int = Field(2, ge=0)
    flip: bool = True
    channels_last: bool = True
    amp: bool = Field(True, description="bfloat16 autocast, used on CUDA only")
    tensorboard: bool = True
    patch: PatchConfig | None = Field(None, description="train on data with a planted spurious patch")
    devices: int = Field(1, ge=1, description="GPUs one model trains on (DistributedDataParallel, the global batch "
                         "kept); not part of the recipe's fingerprint, like threads")
    freeze_backbone: bool = Field(
        False, description="linear probe: train only the classifier; the backbone's weights and BatchNorm statistics "
        "stay as the model started (needs init: or pretrained:)"
    )
    backbone_lr_scale: float = Field(
        1.0, gt=0, description="fine-tuning: the backbone (all but the classifier) trains at lr x this factor"
    )
    lookahead: bool = Field(False, description="airbench's lookahead: every 5 steps the weights are pulled to an EMA "
                            "of themselves (decay 0.95^5 x progress^3), and the last step leaves the EMA")
    alt_flip: bool = Field(False, description="airbench's alternating flip: each image is mirrored in every other "
                           "epoch (a seeded half starts mirrored), instead of by a coin toss each epoch")
    bn_bias_lr_scale: float = Field(1.0, gt=0, description="learning-rate multiplier of BatchNorm biases; their "
                                    "weight decay is divided by it, so the per-step decay matches the weights' (airbench: 64)")
    whiten_bias_epochs: int | None = Field(None, ge=0, description="models with a data-fitted whitening stem: its "
                                           "filters stay frozen and its bias trains this many epochs; null = all train")

    LATER_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "devices", "freeze_backbone", "backbone_lr_scale", "lookahead", "alt_flip", "bn_bias_lr_scale",
        "whiten_bias_epochs",
    })
    """Fields added after runs were fingerprinted: dumped only when they differ from their default, so a
    recipe that does not use them keeps its train fingerprint (and its trained models)."""

    @model_serializer(mode="wrap")
    def _without_default_later_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        for name in self.LATER_FIELDS:
            if getattr(self, name) == type(self).model_fields[name].default:
                dumped.pop(name, None)
        return dumped


TtaPolicy = Literal["flip", "none", "flip_translate"]
"""Test-time augmentation: ``flip`` averages the logits of an image and of its mirror, ``none`` is one plain forward,
``flip_translate`` is airbench's level 2: half the weight on ``flip``, half on ``flip`` of the image shifted one pixel
up-left and down-right (reflect-padded), six forwards."""


class EvalConfig(Section):
    tta: TtaPolicy = Field("flip", description="test-time augmentation of every prediction the audit makes: accuracy, "
                           "calibration, robustness, stress, the class each explanation explains, the dashboard")
    batch_size: int = Field(1000, ge=1)
    top_mistakes: int = Field(50, ge=0)


class CalibrationConfig(Section):
    bins: int = Field(15, ge=2, description="equal-width confidence bins (Guo et al. 2017 use 15)")


class RobustnessConfig(Section):
    enabled: bool = True
    corruptions: list[str] | Literal["all", "benchmark"] = Field(
        "all", description="'all' = the 19 CIFAR-10-C corruptions, 'benchmark' = the 15 of the mCE benchmark, or a list"
    )
    severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    test_images: int | None = Field(2000, ge=10, description="stratified test subset per corruption x severity; null = all")
    baseline: str | None = Field(None, description="model name whose errors normalise mCE; default: the first model")
    cifar10c: str | None = Field(None, description="folder of real CIFAR-10-C .npy files instead of generating")
    variants: list[str] | None = Field(None, description=VARIANTS_FIELD_HELP)
    seed: int = 0

    @field_validator("severities")
    @classmethod
    def _valid_severities(cls, severities: list[int]) -> list[int]:
        if any(not 1 <= s <= 5 for s in severities):
            raise ValueError(f"severities must be within 1..5, got {severities}")
        return sorted(set(severities))


DEFAULT_METHODS = [
    "gradcam", "gradcampp", "eigencam", "layercam", "scorecam", "ablationcam", "fusioncam",
    "integrated_gradients", "saliency", "smoothgrad", "guided_backprop", "guided_gradcam", "occlusion", "lime",
]


class ExplainConfig(Section):
    enabled: bool = True
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1)
    layer: str | None = Field(None, description="named depth (stage2) or module path; default: each model's last depth")
    per_class: int = Field(2, ge=1, description="fixed seeded test images per class, the same for every model")
    confident_failures: int = Field(4, ge=0, description="each model's most confident mistakes, explained too")
    deletion_steps: int = Field(16, ge=2)
    deletion_baseline: Literal["mean", "blur"] = Field(
        "mean", description="what deleted pixels become: the mean colour (Petsiuk et al.'s constant) or a blurred copy"
    )
    insertion_baseline: Literal["blur", "mean"] = Field(
        "blur", description="the image insertion starts from: a blurred copy (Petsiuk et al.) or the mean colour"
    )
    topk_frac: float = Field(0.1, gt=0, lt=1, description="share of top pixels for the agreement IoU")
    sanity_images: int = Field(8, ge=1, description="images for the cascading-randomisation sanity check")
    reexamine: int = Field(
        4, ge=0, description="the baseline's most confident mistakes shown again with each other variant's Grad-CAM"
    )
    variants: list[str] | None = Field(None, description=VARIANTS_FIELD_HELP)
    seed: int = 0


DEFAULT_PROBES = [
    "occlusion_centre", "occlusion_border", "channel_drop", "channel_permutation", "grayscale",
    "noise", "blur", "object_only", "background_only", "background_swap",
]


class StressConfig(Section):
    enabled: bool = True
    probes: list[str] = Field(default_factory=lambda: list(DEFAULT_PROBES))
    test_images: int = Field(500, ge=10, description="stratified test subset every probe is applied to")
    focus_methods: list[str] = Field(default_factory=lambda: ["gradcam", "integrated_gradients", "fusioncam"])
    focus_images: int = Field(32, ge=1, description="images whose explanations are compared before/after")
    layerwise_images: int = Field(256, ge=8)
    layerwise_noise: int = Field(3, ge=1, le=5, description="gaussian_noise severity for the clean-vs-noisy view")
    variants: list[str] | None = Field(
        None, description="training variants the probe battery runs on; null = every variant "
        "(the patch probe always runs on every patch-trained model and its baseline)"
    )
    seed: int = 0


CONCEPT_NAMES = (
    "red", "green", "blue", "yellow", "brick", "grass", "gravel", "stripes", "dots", "checkerboard",
    "noise_fine", "noise_medium", "noise_coarse", "silhouette", "outline",
)
"""The concepts the concepts stage can generate (xaiquest.concepts.probes makes each one)."""
ConceptName = Literal[CONCEPT_NAMES]  # type: ignore[valid-type]
MIN_SIGNIFICANCE_COUNT = 10
"""Fewest random sets (Kim et al. use >= 10) and images per concept the TCAV t-test accepts."""


class ConceptsConfig(Section):
    enabled: bool = True
    test_images: int = Field(200, ge=20, description="stratified test subset of the bias battery (cue-conflict, silhouettes, recolouring)")
    tcav: bool = True
    concepts: list[ConceptName] = Field(default_factory=lambda: list(CONCEPT_NAMES), min_length=1,
                                        description="TCAV concepts")
    layers: list[str] | None = Field(None, description="named depths for TCAV and dissection; null = every named depth")
    concept_images: int = Field(20, description="examples per concept and per random set")
    random_sets: int = Field(10, description="random concepts each concept's TCAV scores are tested against")
    tcav_images_per_class: int = Field(10, ge=2, description="images per class whose TCAV scores are averaged")
    untrained_control: bool = Field(True, description="also run TCAV on an untrained copy of each architecture (same probes "
                                    "and test): how many tests come out significant with no training at all")
    alpha: float = Field(0.05, gt=0, lt=1)
    correction: Literal["holm", "bonferroni"] = "holm"
    dissection: bool = True
    dissection_images: int = Field(64, ge=4, description="test images whose feature maps are dissected")
    quantile: float = Field(0.005, gt=0, lt=1, description="share of a unit's top activations kept (Bau et al.: 0.5 %)")
    iou_threshold: float = Field(0.04, gt=0, lt=1, description="IoU above which a unit detects a concept")
    top_units: int = Field(3, ge=1, description="top units listed per concept")
    variants: list[str] | None = Field(None, description=VARIANTS_FIELD_HELP)
    seed: int = 0

    @field_validator("random_sets", "concept_images")
    @classmethod
    def _enough_for_the_t_test(cls, count: int, info: ValidationInfo) -> int:
        if count < MIN_SIGNIFICANCE_COUNT:
            what = "random concept sets" if info.field_name == "random_sets" else "images per concept"
            raise ValueError(f"the TCAV significance test needs >= {MIN_SIGNIFICANCE_COUNT} {what}, got {count}; "
                             f"set it to {MIN_SIGNIFICANCE_COUNT} or more")
        return count


class TransferConfig(Section):
    """How far training moved a model from the weights it started from (``init`` or ``pretrained``), per depth."""

    enabled: bool = True
    test_images: int = Field(500, ge=10, description="stratified test subset both models see (CKA costs N^2 per depth)")
    topk_frac: float = Field(0.1, gt=0, lt=1, description="share of top pixels for the map agreement IoU")
    seed: int = 0


class SlurmConfig(Section):
    """Per-job resources when ``executor.backend`` is ``submitit`` (one Slurm job per unit)."""

    partition: str | None = Field(None, description="Slurm partition; null = the cluster's default")
    time_min: int = Field(240, ge=1, description="wall-time limit of one unit's job, minutes")
    gpus_per_job: int = Field(0, ge=0)
    cpus_per_job: int = Field(4, ge=1)
    mem_gb: int = Field(16, ge=1)
    local: bool = Field(False, description="run the jobs as local processes (Submitit's local executor), no Slurm")


class ExecutorConfig(Section):
    """Where the audit's units run (docs/scaling.md); results do not depend on it, so no fingerprint holds it."""

    backend: Literal["inline", "local", "ray", "submitit"] = Field(
        "inline", description="inline: one process, in order; local: a process pool; ray: Ray tasks; submitit: Slurm jobs"
    )
    workers: int | None = Field(None, ge=1, description="units at once; null = one per GPU, else 2 on CPU (local, ray)")
    retries: int = Field(1, ge=0, description="times a failed unit is tried again before it is marked failed")
    ray_address: str | None = Field(None, description="a Ray cluster's address; null = start Ray on this machine")
    gpus_per_unit: float = Field(1.0, ge=0, description="GPUs a Ray task asks for when the machine has any")
    slurm: SlurmConfig = SlurmConfig()


class ModelSpec(Section):
    """A model of the zoo, with optional per-model training overrides (e.g. its own lr)."""

    name: str
    train: dict[str, Any] = Field(default_factory=dict)
    variants: list[str] | None = Field(None, description="the experiment's variants trained for this model; null = all")
    weights: str | None = Field(
        None, description="state_dict file (.pt/.pth/.safetensors) audited as it is instead of training "
        "(one run: the baseline variant, the first seed)"
    )
    torchscript: str | None = Field(
        None, description="TorchScript file (torch.jit.save) audited as it is, for a model whose class is not "
        "importable; name is then only the run's label (one run, like weights)"
    )
    depths: dict[str, str] | None = Field(
        None, description="named depths -> module paths (stem, stage1, ...), replacing the discovered ones"
    )
    pretrained: bool = Field(False, description="tv: models start from torchvision's weights in the local torch cache")
    init: str | None = Field(None, description="state_dict file training starts from (tensors of matching name and shape)")

    @model_validator(mode="after")
    def _one_weights_source(self) -> ModelSpec:
        sources = [name for name in ("weights", "torchscript", "init", "pretrained") if getattr(self, name)]
        if len(sources) > 1:
            raise ValueError(f"model {self.name!r} sets {' and '.join(sources)}; weights or torchscript (audit as is), "
                             "init (train from a file) and pretrained (train from torchvision's weights) exclude each other")
        return self

    @property
    def audited_file(self) -> str | None:
        """The file audited as it is (``weights`` or ``torchscript``), if any: such a model is not trained."""
        return self.weights or self.torchscript

    @field_validator("train")
    @classmethod
    def _valid_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        return _check_overrides(overrides)


def _check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides must be valid TrainConfig fields with valid values."""
    try:
        TrainConfig(**overrides)
    except ValidationError as error:
        problems = [
            f"{'.'.join(map(str, item['loc']))}: {item['msg']}"
            + (f" (allowed: {', '.join(TrainConfig.model_fields)})" if item["type"] == "extra_forbidden" else "")
            for item in error.errors()
        ]
        raise ValueError("; ".join(problems)) from None
    return overrides


class ExperimentConfig(Section):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="run directory name under runs/")
    profile: Literal["smoke", "quick", "extended", "standard", "full", "shortcut"] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    models: list[ModelSpec] = Field(..., min_length=1)
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {BASELINE: {}},
        description="training variants: name -> train overrides (e.g. mixup: {mixup_alpha: 0.2})",
    )
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    explain: ExplainConfig = ExplainConfig()
    stress: StressConfig = StressConfig()
    concepts: ConceptsConfig = ConceptsConfig()
    transfer: TransferConfig = TransferConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("models", mode="before")
    @classmethod
    def _names_to_specs(cls, models: Any) -> Any:
        if isinstance(models, list):
            return [{"name": m} if isinstance(m, str) else m for m in models]
        return models

    @field_validator("variants")
    @classmethod
    def _valid_variants(cls, variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, overrides in variants.items():
            try:
                _check_overrides(overrides)
            except ValueError as error:
                raise ValueError(f"variant {name!r}: {error}") from None
        return variants

    @model_validator(mode="after")
    def _known_variant_names(self) -> ExperimentConfig:
        """Every list of variant names (per model, per stage) names variants the experiment defines."""
        lists = [(f"models.{m.name}.variants", m.variants) for m in self.models]
        lists += [(f"{stage}.variants", getattr(self, stage).variants) for stage in VARIANT_STAGES]
        for where, names in lists:
            unknown = [name for name in names or [] if name not in self.variants]
            if unknown:
                raise ValueError(f"{where}: unknown variant {unknown[0]!r}; defined variants: {', '.join(self.variants)}")
        return self

    @model_validator(mode="after")
    def _frozen_backbones_start_from_weights(self) -> ExperimentConfig:
        """A linear probe of random features is almost always a mistake: refuse it before any training."""
        for spec in self.models:
            if spec.audited_file or spec.init or spec.pretrained:
                continue
            for variant in spec.variants or list(self.variants):
                if self.train_config(spec, variant).freeze_backbone:
                    raise ValueError(f"model {spec.name!r}, variant {variant!r}: freeze_backbone trains only the classifier "
                                     "on random features; start the model from weights (init: FILE or pretrained: true) "
                                     "or restrict its variants (models[].variants)")
        return self

    def train_config(self, model: ModelSpec, variant: str) -> TrainConfig:
        """Profile training settings, then the model's overrides, then the variant's."""
        return TrainConfig(**{**self.train.model_dump(), **model.train, **self.variants[variant]})


def load_config(source: str | Path | None, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """A profile name or a YAML path (``None`` = the quick profile) -> validated config."""
    raw = _read_source(source if source is not None else "quick")
    profile = raw.get("profile")
    if profile is not None:
        if profile not in PROFILES:
            raise ConfigError(f"config field 'profile': unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
        raw = _merge(_without_variant_selections(_read_profile(profile)) if "variants" in raw else _read_profile(profile), raw)
    raw = _merge(raw, overrides or {})
    try:
        return ExperimentConfig(**raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def _read_source(source: str | Path) -> dict[str, Any]:
    if str(source) in PROFILES:
        return _read_profile(str(source))
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"config {str(source)!r} is neither a file nor a profile ({', '.join(PROFILES)})")
    return _parse_yaml(path.read_text(encoding="utf-8"), str(path))


def _read_profile(name: str) -> dict[str, Any]:
    text = resources.files("xaiquest.profiles").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return _parse_yaml(text, f"profile {name}")


def _parse_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{origin} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin} must be a YAML mapping of config fields")
    return raw


def _without_variant_selections(profile: dict[str, Any]) -> dict[str, Any]:
    """A profile's stage-level ``variants`` lists name the profile's own variants: a config that
    defines its own variants starts every stage from "all of them" unless it selects again."""
    return {key: {k: v for k, v in value.items() if k != "variants"} if key in VARIANT_STAGES and isinstance(value, dict)
            else value for key, value in profile.items()}


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Section-wise merge: nested mappings merge, everything else is replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "variants":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str | Path | None) -> str:
    """One line per problem: the dotted field name, what is wrong, what is allowed."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            section = _section_for(item["loc"][:-1])
            allowed = ", ".join(section.model_fields) if section else "see docs/configuration.md"
            problems.append(f"config field {field!r} is not allowed; allowed fields here: {allowed}")
        else:
            problems.append(f"config field {field!r}: {item['msg'].removeprefix('Value error, ')}")
    where = f" in {source}" if source else ""
    return f"invalid config{where}: " + "; ".join(problems)


def _section_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns a location, to list its allowed field names."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[str(part)].annotation if str(part) in model.model_fields else None
        inner = getattr(annotation, "__args__", (annotation,))
        nested = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return TrainConfig if part in ("train", "variants") else None
        model = nested
    return model
