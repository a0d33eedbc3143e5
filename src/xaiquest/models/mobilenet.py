"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR
2018), CIFAR form.

CIFAR form, the usual adaptation: the stem conv and the 24-channel sequence use stride 1 instead of
2, so a 32x32 input ends at 4x4, as ImageNet's 224x224 ends at 7x7. Stages group the paper's
bottleneck sequences by resolution (a stride-2 sequence opens a new stage); the last stage also
holds the final 1x1 conv to 1280 channels, so the head is just pool + linear.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from xaiquest.models.base import ZooModel, classifier_head
from xaiquest.models.registry import MODELS

LAST_CHANNELS = 1280
"""Width of the final 1x1 conv; the paper only scales it for width multipliers above 1."""

Setting = tuple[int, int, int, int]
"""A bottleneck sequence as in the paper's Table 2: expansion t, channels c, repeats n, stride s."""

CIFAR_SETTINGS: tuple[Setting, ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

CPU_SETTINGS: tuple[Setting, ...] = (
    (1, 16, 1, 2),
    (6, 24, 1, 1),
    (6, 32, 2, 2),
    (6, 64, 2, 2),
    (6, 96, 2, 1),
    (6, 160, 2, 1),
    (6, 320, 1, 1),
)
"""For 2-core CPUs: the first sequence takes the 160-channel one's downsampling, so everything after
the stem runs at 16x16 or less (the expanded 32x32 maps dominate the CIFAR form's cost), and the
repeats are about halved. The same 4x4 final map, in three stages instead of four."""


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width-scaled channel count to a multiple of 8, never below 90% (the reference rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> linear 1x1 project; a residual when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        expand = [conv_bn_relu6(c_in, hidden)] if expansion != 1 else []
        self.block = nn.Sequential(
            *expand,
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2(ZooModel):
    def __init__(
        self,
        width: float,
        num_classes: int,
        settings: Sequence[Setting] = CIFAR_SETTINGS,
    ) -> None:
        channels = make_divisible(32 * width)
        stem = conv_bn_relu6(3, channels, 3)
        stages: list[nn.Sequential] = []
        for expansion, c, repeats, stride in settings:
            if stride > 1 or not stages:
                stages.append(nn.Sequential())
            c_out = make_divisible(c * width)
            for i in range(repeats):
                stages[-1].append(InvertedResidual(channels, c_out, stride if i == 0 else 1, expansion))
                channels = c_out
        last = make_divisible(LAST_CHANNELS * max(1.0, width))
        stages[-1].append(conv_bn_relu6(channels, last))
        super().__init__(stem, stages, classifier_head(last, num_classes))


@MODELS.register("mobilenetv2_small")
def mobilenetv2_small(num_classes: int) -> MobileNetV2:
    """CPU-friendly MobileNetV2, width 0.5, stages from 16x16, fewer repeats (~0.55 M parameters)."""
    return MobileNetV2(0.5, num_classes, CPU_SETTINGS)


@MODELS.register("mobilenetv2")
def mobilenetv2(num_classes: int) -> MobileNetV2:
    """MobileNetV2, width 1.0 (~2.2 M parameters)."""
    return MobileNetV2(1.0, num_classes)
