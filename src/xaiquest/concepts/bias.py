"""Shape, texture and colour bias of a classifier, from its predictions on the probe sets.

Shape bias follows Geirhos et al. (2019): on cue-conflict images (the shape of class A, the
texture of class B) it is shape decisions / (shape + texture decisions); predictions of a third
class count for neither. Accuracy on silhouettes, outlines, grayscale and recoloured images says
how much of the decision survives without texture or colour; colour reliance per class is the
recall lost without colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from xaiquest.concepts.probes import boost_channel, cue_conflict, grayscale, hue_rotate, outlines, silhouettes

HUE_ANGLES = (90, 180)
"""Hue rotations (degrees) of the recoloured probes."""


@dataclass(frozen=True)
class BiasProbes:
    """The labelled probe images every model sees: conditions -> uint8 images, plus the cue-conflict set."""

    labels: torch.Tensor
    conditions: dict[str, torch.Tensor]
    conflict: torch.Tensor
    shape_labels: torch.Tensor
    texture_labels: torch.Tensor


def bias_probes(images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, donors: torch.Tensor) -> BiasProbes:
    """Every condition of the bias battery on one test subset (``donors``: another-class image per image)."""
    conditions = {
        "clean": images,
        "grayscale": grayscale(images),
        **{f"hue_{angle}": hue_rotate(images, angle) for angle in HUE_ANGLES},
        **{f"boost_{name}": boost_channel(images, channel) for channel, name in enumerate("rgb")},
        "silhouette": silhouettes(masks),
        "outline": outlines(masks),
    }
    return BiasProbes(labels, conditions, cue_conflict(masks, images[donors]), labels, labels[donors])


def shape_bias(predicted: torch.Tensor, shape_labels: torch.Tensor, texture_labels: torch.Tensor) -> dict[str, float]:
    """Geirhos' shape bias with the shares of shape, texture and other decisions (NaN bias if neither occurs)."""
    shape = (predicted == shape_labels).float().mean().item()
    texture = (predicted == texture_labels).float().mean().item()
    bias = shape / (shape + texture) if shape + texture > 0 else float("nan")
    return {"shape_bias": bias, "shape_decisions": shape, "texture_decisions": texture,
            "other_decisions": 1 - shape - texture}


def accuracy_table(predictions: dict[str, torch.Tensor], labels: torch.Tensor) -> pd.DataFrame:
    """One row per condition: accuracy and its drop from clean images."""
    accuracy = {name: (predicted == labels).float().mean().item() for name, predicted in predictions.items()}
    return pd.DataFrame({"condition": list(accuracy), "accuracy": list(accuracy.values()),
                         "drop": [accuracy["clean"] - a for a in accuracy.values()]})


def colour_reliance(clean: torch.Tensor, gray: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]) -> pd.DataFrame:
    """Per class: recall on colour and on grayscale images, and the recall lost without colour."""
    rows = []
    for index, name in enumerate(classes):
        of_class = labels == index
        if of_class.any():
            colour_recall = (clean[of_class] == index).float().mean().item()
            gray_recall = (gray[of_class] == index).float().mean().item()
            rows.append({"class": name, "recall": colour_recall, "grayscale_recall": gray_recall,
                         "colour_reliance": colour_recall - gray_recall})
    return pd.DataFrame(rows)
