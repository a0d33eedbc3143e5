"""Image datasets as in-memory uint8 tensors, their normalisation, and batch-level augmentation on any device."""

from __future__ import annotations

from xaiquest.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_NORMALISATION,
    CIFAR10_STD,
    Normalisation,
    active_normalisation,
    alternating_flips,
    channel_statistics,
    normalised_by,
    random_crop_flip,
    to_float,
)
from xaiquest.data.cifar10 import (
    CIFAR10_CLASSES,
    DATA_ENV_VAR,
    Dataset,
    Split,
    fit_to_size,
    load_dataset,
    peek_class_count,
    stratified_indices,
    validation_split,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_NORMALISATION",
    "CIFAR10_STD",
    "DATA_ENV_VAR",
    "Dataset",
    "Normalisation",
    "Split",
    "active_normalisation",
    "alternating_flips",
    "channel_statistics",
    "fit_to_size",
    "load_dataset",
    "normalised_by",
    "peek_class_count",
    "random_crop_flip",
    "stratified_indices",
    "to_float",
    "validation_split",
]
