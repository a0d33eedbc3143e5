"""CIFAR ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

ResNet-20 is the paper's own CIFAR design (Sec. 4.2: a 3x3 stem and three stages of n=3 basic
blocks at 16/32/64 channels, 6n+2 layers). ResNet-18 is the ImageNet basic-block net in the
CIFAR form the literature settled on: a 3x3 stride-1 stem and no max-pool, so stage1 keeps the
full 32x32 resolution. Shape-changing shortcuts are 1x1 projections (the paper's option B).
The CPU size keeps the 3x3 stem at 32x32 but strides its first block, so its three one-block
stages run at 16/8/4: full-resolution blocks would cost most of its time for little accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from xaiquest.models.base import ZooModel, classifier_head
from xaiquest.models.registry import MODELS


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Bias-free conv + BN: the bias would be cancelled by the BN mean anyway."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs plus a shortcut.

    Each ReLU is its own non-in-place module so guided backprop can hook it and forward hooks
    see the values the next layer sees.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, stride=stride)
        self.act1 = nn.ReLU()
        self.conv2 = conv_bn(c_out, c_out)
        reshapes = stride != 1 or c_in != c_out
        self.shortcut = conv_bn(c_in, c_out, kernel=1, stride=stride) if reshapes else nn.Identity()
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.conv2(self.act1(self.conv1(x))) + self.shortcut(x))


def resnet_stage(c_in: int, c_out: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` basic blocks; only the first one changes resolution or width."""
    return nn.Sequential(BasicBlock(c_in, c_out, stride), *(BasicBlock(c_out, c_out) for _ in range(blocks - 1)))


class ResNet(ZooModel):
    """3x3 conv stem, basic-block stages, global average pool + linear head."""

    def __init__(
        self, widths: Sequence[int], blocks: Sequence[int], strides: Sequence[int], num_classes: int
    ) -> None:
        stem = nn.Sequential(*conv_bn(3, widths[0]), nn.ReLU())
        channels = [widths[0], *widths]
        stages = [
            resnet_stage(c_in, c_out, n, s) for c_in, c_out, n, s in zip(channels, widths, blocks, strides)
        ]
        super().__init__(stem, stages, classifier_head(widths[-1], num_classes))


@MODELS.register("resnet20")
def resnet20(num_classes: int) -> ResNet:
    """ResNet-20, the paper's CIFAR net, 16/32/64 wide (~0.27 M parameters)."""
    return ResNet((16, 32, 64), (3, 3, 3), (1, 2, 2), num_classes)


@MODELS.register("resnet_small")
def resnet_small(num_classes: int) -> ResNet:
    """CPU-friendly ResNet, one basic block per 32/64/128 stage from 16x16 (~0.3 M parameters)."""
    return ResNet((32, 64, 128), (1, 1, 1), (2, 2, 2), num_classes)


@MODELS.register("resnet18")
def resnet18(num_classes: int) -> ResNet:
    """ResNet-18 with the CIFAR 3x3 stem, 64..512 wide (~11 M parameters)."""
    return ResNet((64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2), num_classes)
