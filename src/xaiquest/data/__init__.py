"""CIFAR-10 as in-memory uint8 tensors, plus batch-level augmentation on any device."""

from __future__ import annotations

from xaiquest.data.augment import CIFAR10_MEAN, CIFAR10_STD, random_crop_flip, to_float
from xaiquest.data.cifar10 import (
    CIFAR10_CLASSES,
    DATA_ENV_VAR,
    Dataset,
    Split,
    load_cifar10,
    stratified_indices,
    validation_split,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATA_ENV_VAR",
    "Dataset",
    "Split",
    "load_cifar10",
    "random_crop_flip",
    "stratified_indices",
    "to_float",
    "validation_split",
]
