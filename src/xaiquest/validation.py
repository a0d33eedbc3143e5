"""The one check of every name and class index a config uses, run before any work starts.

The pydantic schema (``config.py``) checks shapes and ranges without importing any registry;
what only the registries, the models or the data know (a method, probe, corruption or model
name, a layer of every model, whether a concepts layer has spatial maps, the mCE baseline, a
class index) is checked here, by the pipeline before training and by the dashboard before
serving, so a typo fails in seconds instead of after the stages before it. The pipeline calls it
twice: before the data loads (``quick=True``: the class count read from the data's folder names,
the image size only if ``data.image_size`` sets it), and again once the data is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from xaiquest.config import ExperimentConfig, ModelSpec, TrainConfig
from xaiquest.errors import ConfigError, UnknownNameError
from xaiquest.registry import Registry


def check_config(config: ExperimentConfig, num_classes: int | None, image_size: int | None = 32, *,
                 quick: bool = False) -> None:
    """Raise one ``ConfigError`` listing every unknown name, out-of-range class index or patch too big for the images.

    With ``num_classes`` unknown the class indices are not checked; with ``image_size`` unknown the
    library models (tv:, timm:) are not built (their layers depend on the size; zoo models' do not); with
    ``quick`` the concepts layers' output shapes (a forward pass, which loads torch's compiler
    stack: a second) wait for the next call."""
    problems = [f"config field {field!r}: {problem}"
                for field, problem in _problems(config, num_classes, image_size, quick)]
    if problems:
        raise ConfigError("; ".join(problems))


def _problems(config: ExperimentConfig, num_classes: int | None, image_size: int | None,
              quick: bool) -> Iterator[tuple[str, str]]:
    from xaiquest.data.corruptions import CORRUPTIONS
    from xaiquest.explainers import EXPLAINERS
    from xaiquest.stress import PROBES

    yield from _unknown("explain.methods", config.explain.methods, EXPLAINERS)
    yield from _unknown("stress.focus_methods", config.stress.focus_methods, EXPLAINERS)
    yield from _unknown("stress.probes", config.stress.probes, PROBES)
    if isinstance(config.robustness.corruptions, list):
        yield from _unknown("robustness.corruptions", config.robustness.corruptions, CORRUPTIONS)
    yield from _duplicate_run_problems(config)
    yield from _model_problems(config, num_classes, image_size, quick)
    yield from _baseline_problems(config)
    yield from _patch_problems(config, num_classes, image_size)
    yield from _device_problems(config, 0 if config.device == "cpu" else torch.cuda.device_count())


def _unknown(field: str, names: Iterable[str], registry: Registry[object]) -> Iterator[tuple[str, str]]:
    for name in names:
        if name not in registry:
            yield field, f"unknown {registry.kind} {name!r}; available: {', '.join(registry.names())}"


def _duplicate_run_problems(config: ExperimentConfig) -> Iterator[tuple[str, str]]:
    """One model name may be listed twice (from scratch, and again from an ``init`` file) as long as its
    entries train different variants: each run's folder is named by model, variant and seed."""
    from xaiquest.runs import run_keys

    seen: set[str] = set()
    for key in run_keys(config):
        if key.id in seen:
            yield "models", (f"{key.spec.name!r} is listed more than once with variant {key.variant!r}, so two runs "
                             f"would share the folder {key.id}; give each entry its own variants (models[].variants)")
            return
        seen.add(key.id)


def _model_problems(config: ExperimentConfig, num_classes: int | None, image_size: int | None,
                    quick: bool) -> Iterator[tuple[str, str]]:
    """Each model builds (on the meta device: shapes only, no memory), has ``explain.layer`` and
    spatial feature maps at every ``concepts.layers`` entry; a TorchScript model (its file is loaded
    with the data) is asked for no layer."""
    from xaiquest.models import LIBRARY_PREFIXES, build_model, resolve_layer

    explained = {spec.name for spec in _run_specs(config, config.explain.variants)}
    concepts = config.concepts
    dissected = ({spec.name for spec in _run_specs(config, concepts.variants)}
                 if concepts.enabled and (concepts.tcav or concepts.dissection) else set())
    for spec in config.models:
        if spec.torchscript:
            yield from _scripted_layer_problems(config, spec.name, spec.name in explained, spec.name in dissected)
            continue
        if image_size is None and spec.name.startswith(LIBRARY_PREFIXES):
            continue  # checked once the data's image size is known
        size = image_size or 32  # zoo models have the same layers at every size
        try:
            with torch.device("meta"):
                model = build_model(spec.name, num_classes or 2, image_size=size)
        except UnknownNameError as error:
            yield "models", str(error)
            continue
        if config.explain.layer is not None and spec.name in explained:
            try:
                resolve_layer(model, config.explain.layer)
            except UnknownNameError as error:
                yield "explain.layer", f"{error} (model {spec.name})"
        if spec.name in dissected and not quick:
            yield from _concept_layer_problems(model, spec.name, config.concepts.layers, size)


def _scripted_layer_problems(config: ExperimentConfig, name: str, explained: bool,
                             dissected: bool) -> Iterator[tuple[str, str]]:
    """Every stage part that would read a layer of a TorchScript model, named before any work starts."""
    from xaiquest.explainers import EXPLAINERS
    from xaiquest.models.torchscript import UNREACHABLE_LAYERS

    stressed = config.stress.enabled and name in {spec.name for spec in _run_specs(config, config.stress.variants)}
    uses: list[tuple[str, list[str]]] = [
        ("explain.methods", [m for m in config.explain.methods if explained and config.explain.enabled]),
        ("stress.focus_methods", [m for m in config.stress.focus_methods if stressed]),
    ]
    for field, methods in uses:
        for method in methods:
            if method in EXPLAINERS and EXPLAINERS.get(method).needs_eager_forward:
                yield field, f"{method} on {name}: {UNREACHABLE_LAYERS}"
    if stressed:
        yield "stress.enabled", f"the layer-wise view of {name}: {UNREACHABLE_LAYERS} (or set stress.enabled: false)"
    if dissected:
        yield "concepts", f"TCAV and dissection of {name}: {UNREACHABLE_LAYERS} (or set concepts.enabled: false)"


def _concept_layer_problems(model: torch.nn.Module, name: str, layers: list[str] | None,
                            image_size: int) -> Iterator[tuple[str, str]]:
    """TCAV and dissection need ``[N,C,h,w]`` maps: each chosen layer must exist and output four dimensions."""
    from xaiquest.models import named_depths, resolve_layer

    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for layer in layers or list(named_depths(model)):
        try:
            module = resolve_layer(model, layer)
        except UnknownNameError as error:
            yield "concepts.layers", f"{error} (model {name})"
            continue
        hooks.append(module.register_forward_hook(
            lambda module, inputs, output, layer=layer: shapes.__setitem__(layer, tuple(output.shape))))
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, image_size, image_size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    for layer, shape in shapes.items():
        if len(shape) != 4:
            yield ("concepts.layers", f"layer {layer!r} of {name} has no spatial feature maps (output shape {shape}); "
                   f"use a convolutional depth: {', '.join(named_depths(model))}")


def _baseline_problems(config: ExperimentConfig) -> Iterator[tuple[str, str]]:
    baseline = config.robustness.baseline
    measured = sorted({spec.name for spec in _run_specs(config, config.robustness.variants)})
    if baseline is not None and baseline not in measured:
        yield "robustness.baseline", f"{baseline!r} is not one of the models robustness measures ({', '.join(measured)})"


def _device_problems(config: ExperimentConfig, gpus: int) -> Iterator[tuple[str, str]]:
    """What DDP cannot do (``train.devices`` > 1): fewer GPUs than asked (a CPU-only machine included:
    SyncBatchNorm runs on GPUs only), a global batch that does not split evenly, or an executor worker,
    which holds one GPU."""
    from xaiquest.runs import run_keys

    for key in run_keys(config):
        cfg = config.train_config(key.spec, key.variant)
        if cfg.devices == 1 or key.spec.audited_file:
            continue
        problem = _device_problem(config, key.id, cfg, gpus)
        if problem:
            yield problem
            return  # one line is enough: the other models of the run share the reason


def _device_problem(config: ExperimentConfig, run: str, cfg: TrainConfig, gpus: int) -> tuple[str, str] | None:
    if gpus < cfg.devices:
        return "train.devices", (f"{run} asks for {cfg.devices} GPUs but this machine has {gpus or 'no'} CUDA "
                                 f"GPU{'' if gpus == 1 else 's'}; set train.devices to 1 or run on a machine with "
                                 f"{cfg.devices} GPUs")
    if cfg.batch_size % cfg.devices:
        return "train.batch_size", (f"{run}: {cfg.batch_size} does not split evenly over {cfg.devices} devices; "
                                    "use a multiple of train.devices (the global batch is kept)")
    if cfg.whiten_bias_epochs is not None:
        return "train.whiten_bias_epochs", (f"{run}: a whitening bias that stops training mid-run is not supported on "
                                            "several devices (DDP fixes the trained parameters when it starts); "
                                            "drop it or set train.devices to 1")
    if config.executor.backend != "inline":
        return "train.devices", (f"{run} trains on {cfg.devices} GPUs, but a {config.executor.backend} worker "
                                 "holds one; train it with --executor inline, then audit with any executor")
    return None


def _patch_problems(config: ExperimentConfig, num_classes: int | None, image_size: int | None) -> Iterator[tuple[str, str]]:
    """A planted patch's target class must exist in the data and its square (scaled with the image)
    fit the images, wherever the patch is configured."""
    from xaiquest.patch import patch_origins

    sources = {"train.patch": config.train.patch}
    sources |= {f"models.{spec.name}.train.patch": TrainConfig(patch=spec.train["patch"]).patch
                for spec in config.models if "patch" in spec.train}
    sources |= {f"variants.{name}.patch": TrainConfig(patch=overrides["patch"]).patch
                for name, overrides in config.variants.items() if "patch" in overrides}
    for field, patch in sources.items():
        if patch is None:
            continue
        if num_classes is not None and patch.target_class >= num_classes:
            yield (f"{field}.target_class",
                   f"{patch.target_class} is not a class index of the data (0..{num_classes - 1})")
        if image_size is not None:
            try:
                patch_origins(patch, 1, image_size, image_size)
            except ConfigError as error:
                yield f"{field}.size", str(error)


def _run_specs(config: ExperimentConfig, variants: list[str] | None) -> list[ModelSpec]:
    """The models a stage with this variant selection runs on."""
    from xaiquest.runs import run_keys

    return [key.spec for key in run_keys(config, variants)]
