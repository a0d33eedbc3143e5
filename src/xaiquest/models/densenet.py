"""DenseNet-BC (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017), CIFAR form.

BC = bottleneck layers (a 1x1 conv to 4k channels before each 3x3 conv of growth k) and
compression (each transition halves the channels). CIFAR form, as in the paper's CIFAR nets: a
3x3 stride-1 stem conv with 2k channels and no max-pool. A stage is the transition into its
resolution followed by that resolution's dense block, so each stage ends on the last map before a
downsampling; the last stage also holds the final BN-ReLU (layers are pre-activation, so the
features are only normalised there) and the head is just pool + linear. The CPU size runs its
blocks from 16x16 (a max-pool opens stage1, like the ImageNet stem's but 2x instead of 4x): the
concatenated 32x32 maps would otherwise dominate its cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from xaiquest.models.base import ZooModel, classifier_head
from xaiquest.models.registry import MODELS

COMPRESSION = 0.5
"""The paper's theta: each transition keeps half the channels."""


def bn_relu_conv(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """The pre-activation unit every DenseNet layer is built from."""
    return nn.Sequential(
        nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
    )


class DenseLayer(nn.Module):
    """Bottleneck 1x1 (4k) then 3x3 (k); the k new maps are concatenated to the input."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.bottleneck = bn_relu_conv(c_in, 4 * growth, 1)
        self.conv = bn_relu_conv(4 * growth, growth, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.bottleneck(x))], dim=1)


def dense_block(c_in: int, growth: int, layers: int) -> tuple[nn.Sequential, int]:
    """``layers`` dense layers and the block's output width."""
    block = nn.Sequential(*(DenseLayer(c_in + i * growth, growth) for i in range(layers)))
    return block, c_in + layers * growth


def transition(c_in: int, c_out: int) -> nn.Sequential:
    """Compress channels with a 1x1 conv, then halve the resolution with a 2x2 average pool."""
    return nn.Sequential(*bn_relu_conv(c_in, c_out, 1), nn.AvgPool2d(2))


class DenseNet(ZooModel):
    """``pool_first`` opens stage1 with a 2x2 max-pool (half the ImageNet stem's 4x), for CPU speed."""

    def __init__(
        self,
        growth: int,
        blocks: Sequence[int],
        num_classes: int,
        pool_first: bool = False,
    ) -> None:
        channels = 2 * growth
        stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        stages: list[nn.Sequential] = []
        for i, layers in enumerate(blocks):
            stage = nn.Sequential()
            if i > 0:
                stage.append(transition(channels, int(channels * COMPRESSION)))
                channels = int(channels * COMPRESSION)
            elif pool_first:
                stage.append(nn.MaxPool2d(2))
            block, channels = dense_block(channels, growth, layers)
            stages.append(stage.append(block))
        stages[-1].extend([nn.BatchNorm2d(channels), nn.ReLU()])
        super().__init__(stem, stages, classifier_head(channels, num_classes))


@MODELS.register("densenet_small")
def densenet_small(num_classes: int) -> DenseNet:
    """CPU-friendly DenseNet-BC, growth 12, three blocks of 4 layers from 16x16 (~0.1 M parameters)."""
    return DenseNet(12, (4, 4, 4), num_classes, pool_first=True)


@MODELS.register("densenet121")
def densenet121(num_classes: int) -> DenseNet:
    """DenseNet-121 (BC), growth 32, blocks 6/12/24/16 (~7 M parameters)."""
    return DenseNet(32, (6, 12, 24, 16), num_classes)
