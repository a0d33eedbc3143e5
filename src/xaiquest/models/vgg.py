"""VGG with batch norm (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR 2015; BN after each conv as in torchvision's ``vgg16_bn``), CIFAR form.

CIFAR form: the 4096-wide FC layers are replaced by one linear layer on the 512 final channels.
Each max-pool opens the next stage instead of closing the current one, so every stage ends on a
conv feature map (the Grad-CAM target); the last pool becomes the head's global max-pool, which
on the final 2x2 map is exactly that pool. The CPU size has one conv per stage and pools right
after its stem conv, so only that conv runs at 32x32.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from xaiquest.models.base import ZooModel, classifier_head
from xaiquest.models.registry import MODELS

POOL = "M"
"""Marks a 2x2 max-pool in a VGG configuration, as in the paper's Table 1."""

VGG16 = (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL)


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def split_stages(config: Sequence[int | str]) -> list[list[int | str]]:
    """Cut a config after its stem conv and before each pool; a trailing pool is the head's."""
    stages: list[list[int | str]] = [[]]
    for item in config[1:]:
        if item == POOL:
            stages.append([])
        stages[-1].append(item)
    return [stage for stage in stages if stage and stage != [POOL]]


def vgg_stage(c_in: int, items: Sequence[int | str]) -> tuple[nn.Sequential, int]:
    """The stage's layers and its output width."""
    layers: list[nn.Module] = []
    for item in items:
        if item == POOL:
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(conv_bn_relu(c_in, int(item)))
            c_in = int(item)
    return nn.Sequential(*layers), c_in


class VGG(ZooModel):
    """Stem = the first conv; stages split at the pools; global max-pool + linear head."""

    def __init__(self, config: Sequence[int | str], num_classes: int) -> None:
        c_in = int(config[0])
        stem = conv_bn_relu(3, c_in)
        stages: list[nn.Module] = []
        for items in split_stages(config):
            stage, c_in = vgg_stage(c_in, items)
            stages.append(stage)
        super().__init__(stem, stages, classifier_head(c_in, num_classes, pool="max"))


@MODELS.register("vgg_small")
def vgg_small(num_classes: int) -> VGG:
    """CPU-friendly VGG-BN, one conv per 32/64/128/256 stage (~0.4 M parameters)."""
    return VGG((32, POOL, 64, POOL, 128, POOL, 256), num_classes)


@MODELS.register("vgg16_bn")
def vgg16_bn(num_classes: int) -> VGG:
    """VGG-16 with batch norm and a single linear head (~15 M parameters)."""
    return VGG(VGG16, num_classes)
