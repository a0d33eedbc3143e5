"""``xaiquest explain-image``: explain a few image files with any model, no run directory needed.

What source documents 001 and 004 do by hand: load a classifier (a zoo architecture or any
torchvision CNN, with the user's weights), predict, explain the top class with several methods,
and say how faithful each map is (deletion/insertion AUC). One figure per image, one JSON and one
CSV for all of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError
from torch import nn

from xaiquest.data import Normalisation, fit_to_size, normalised_by, to_float
from xaiquest.errors import ConfigError, DataError
from xaiquest.figures.heatmaps import heat
from xaiquest.explainers.quality.faithfulness import deletion_insertion
from xaiquest.explainers.registry import EXPLAINERS, explain
from xaiquest.models import TORCHVISION_PREFIX, build_model, last_depth
from xaiquest.models.weights import load_weights, read_state_dict

IMAGENET_NORMALISATION = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""The statistics torchvision's ImageNet weights were trained with (their ``transforms()``)."""
DEFAULT_METHODS = ("gradcam", "integrated_gradients")
TOP_K = 5
METHOD_OPTIONS = {"integrated_gradients": {"internal_batch_size": 8}}
"""Captum's default batch of 256 interpolated 224-px images would need tens of GiB of activations."""


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    classes: tuple[str, ...]
    image_size: int
    normalisation: Normalisation


def load_any_model(name: str, weights: Path | None, classes_file: Path | None, image_size: int | None,
                   normalisation: Normalisation | None) -> LoadedModel:
    """Build ``name`` for the classes that the classes file, the weights' classifier or torchvision's
    ImageNet metadata imply, and load the weights strictly."""
    state = read_state_dict(weights) if weights is not None else None
    outputs = _classifier_outputs(state) if state is not None else None
    classes = _class_names(name, classes_file, outputs)
    is_torchvision = name.startswith(TORCHVISION_PREFIX)
    size = image_size or (224 if is_torchvision else 32)
    model = build_model(name, len(classes), image_size=size)
    if weights is not None:
        load_weights(model, weights, f"{name} ({len(classes)} classes, {size} px images)")
    stats = normalisation or (IMAGENET_NORMALISATION if is_torchvision else None)
    if stats is None:
        raise ConfigError(f"{name} is not a torchvision model: pass --mean and --std, the normalisation it was trained with")
    return LoadedModel(model.eval(), classes, size, stats)


def _classifier_outputs(state: dict[str, torch.Tensor]) -> int | None:
    """Rows of the last 2-D weight (the classifier's output count), if the state_dict has one."""
    matrices = [value for key, value in state.items() if key.endswith("weight") and value.dim() == 2]
    return int(matrices[-1].shape[0]) if matrices else None


def _class_names(name: str, classes_file: Path | None, outputs: int | None) -> tuple[str, ...]:
    if classes_file is not None:
        try:
            names = tuple(line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip())
        except OSError as error:
            raise ConfigError(f"cannot read classes file {classes_file} ({error.strerror}); pass a text file, one name a line")
        if outputs is not None and len(names) != outputs:
            raise ConfigError(
                f"classes file {classes_file} lists {len(names)} names but the weights classify into {outputs} classes; "
                "give one name per output, in output order"
            )
        if len(names) < 2:
            raise ConfigError(f"classes file {classes_file} lists {len(names)} name; a classifier needs at least 2")
        return names
    if name.startswith(TORCHVISION_PREFIX):
        categories = _imagenet_categories(name.removeprefix(TORCHVISION_PREFIX))
        if outputs is None or outputs == len(categories):
            return categories
    if outputs is None:
        raise ConfigError(f"no class names for {name}: pass --classes FILE (one name a line) or --weights FILE")
    return tuple(f"class {index}" for index in range(outputs))


def _imagenet_categories(name: str) -> tuple[str, ...]:
    """The class names torchvision ships with its weights' metadata (in the package: no download)."""
    try:
        return tuple(torchvision.models.get_model_weights(name).DEFAULT.meta["categories"])
    except (ValueError, KeyError, AttributeError):
        return ()


def read_image(file: Path, size: int) -> torch.Tensor:
    """One image file as uint8 ``[3,size,size]`` RGB (shorter side resized, centre cropped)."""
    try:
        with Image.open(file) as image:
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"cannot read image {file} ({error}); pass an image file (PNG, JPEG, ...)") from None
    return fit_to_size(pixels[None], size)[0]


@dataclass(frozen=True)
class ImageExplanation:
    """One image explained: its top classes, each method's map ``[1,S,S]`` and a row of numbers per method."""

    top: list[tuple[str, float]]
    target: int
    maps: dict[str, torch.Tensor]
    rows: list[dict[str, object]]


def check_methods(methods: list[str]) -> None:
    """Refuse an unknown method before any image is read."""
    unknown = [method for method in methods if method not in EXPLAINERS]
    if unknown:
        raise ConfigError(f"unknown explanation method {unknown[0]!r}; available: {', '.join(EXPLAINERS.names())}")


def explain_pixels(pixels: torch.Tensor, loaded: LoadedModel, methods: list[str], layer: str,
                   steps: int = 16) -> ImageExplanation:
    """Explain a uint8 ``[3,S,S]`` image's top class with every method, each map with its deletion/insertion
    AUC: the one computation behind ``explain-image`` and the dashboard's single-model page."""
    with normalised_by(loaded.normalisation):
        x = to_float(pixels[None])
        with torch.no_grad():
            probs = loaded.model(x).softmax(1)[0]
        top = probs.topk(min(TOP_K, len(probs)))
        target = top.indices[:1]
        maps, rows = {}, []
        for method in methods:
            started = time.perf_counter()
            maps[method] = explain(method, loaded.model, x, target, layer, **METHOD_OPTIONS.get(method, {}))
            explain_s = time.perf_counter() - started
            started = time.perf_counter()
            scores = deletion_insertion(loaded.model, x, maps[method], target, steps=steps)
            rows.append({
                "method": method, "layer": layer if EXPLAINERS.get(method).uses_layer else "",
                "class": loaded.classes[int(target)], "probability": float(top.values[0]),
                "deletion_auc": float(scores["deletion_auc"][0]), "insertion_auc": float(scores["insertion_auc"][0]),
                "explain_s": explain_s, "faithfulness_s": time.perf_counter() - started,
            })
    named = [(loaded.classes[int(i)], float(p)) for i, p in zip(top.indices, top.values)]
    return ImageExplanation(named, int(target), maps, rows)


def explain_images(files: list[Path], loaded: LoadedModel, methods: list[str], layer: str | None,
                   out_dir: Path, steps: int = 16) -> pd.DataFrame:
    """Explain each image's top class with every method; write figures, JSON and CSV into ``out_dir``."""
    check_methods(methods)
    layer = layer or last_depth(loaded.model)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for file in files:
        pixels = read_image(file, loaded.image_size)
        result = explain_pixels(pixels, loaded, methods, layer, steps)
        image_figure(pixels, result.maps, result.rows, result.top).savefig(out_dir / f"{file.stem}.png", dpi=110)
        rows += [{"image": str(file), **row} for row in result.rows]
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "explanations.csv", index=False)
    (out_dir / "explanations.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return table


def image_figure(pixels: torch.Tensor, maps: dict[str, torch.Tensor], rows: list[dict[str, object]],
                 top: list[tuple[str, float]]) -> Figure:
    """The image, its top classes, then each method's heatmap titled with its deletion/insertion AUC."""
    picture = pixels.permute(1, 2, 0).numpy()
    fig = Figure(figsize=(2.4 * (len(maps) + 2), 2.8), layout="constrained")
    axes = fig.subplots(1, len(maps) + 2, squeeze=False)[0]
    axes[0].imshow(picture)
    axes[0].set_title("image", fontsize=8)
    names, values = zip(*top)
    axes[1].barh(range(len(top)), values, color="tab:blue")
    axes[1].set_yticks(range(len(top)), labels=[name[:22] for name in names], fontsize=7)
    axes[1].invert_yaxis()
    axes[1].set_xlim(0, 1)
    axes[1].set_title(f"top-{len(top)} probabilities", fontsize=8)
    for ax, (method, map_), row in zip(axes[2:], maps.items(), rows):
        ax.imshow(picture, alpha=0.35)
        ax.imshow(heat(map_[0]), cmap="jet", alpha=0.65, vmin=0, vmax=1)
        ax.set_title(f"{method}\ndel {row['deletion_auc']:.3f} / ins {row['insertion_auc']:.3f}", fontsize=7)
    for ax in (axes[0], *axes[2:]):
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
