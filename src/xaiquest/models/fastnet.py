"""FastNet: our own small CNN built for CPU training speed (an airbench-style design).

Why a custom net: on a 2-core CPU the default audit must train several models in minutes.
FastNet reaches usable accuracy in a few epochs because (a) its first layer is a fixed 2x2
patch-whitening convolution initialised from the data, which decorrelates pixels so SGD
converges fast (padded on the bottom/right so the map stays 32 px and every later stage still
covers the whole image, which CAM-style explanations rely on); (b) each stage downsamples early
(conv -> max-pool -> BN -> GELU -> conv), so most compute runs at low resolution; (c) the head max-pools and scales logits down, which
keeps early training stable at high learning rates.
"""

from __future__ import annotations

import torch
from torch import nn

from xaiquest.models.base import ZooModel
from xaiquest.models.registry import MODELS


class WhiteningStem(nn.Module):
    """2x2 convolution whose filters are the data's patch-covariance eigenvectors (± each).

    One zero row/column (the data mean, after normalisation) is added on the bottom/right: an
    unpadded 2x2 conv gives 31 px, and floor-pooling 31 -> 15 -> 7 -> 3 would drop the last
    row/column at every stage, leaving the bottom-right corner invisible to the deep features.
    """

    def __init__(self, patch: int = 2, eps: float = 5e-4) -> None:
        super().__init__()
        width = 2 * 3 * patch * patch
        self.pad = nn.ZeroPad2d((0, patch - 1, 0, patch - 1))
        self.conv = nn.Conv2d(3, width, patch, padding=0, bias=True)
        self.act = nn.GELU()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.pad(x)))

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set the filters from normalised training images ``[N,3,H,W]`` (a few thousand do)."""
        k = self.conv.kernel_size[0]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)
        patches = patches.transpose(1, 3).reshape(-1, 3 * k * k)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + self.eps)[:, None]).reshape(-1, 3, k, k)
        self.conv.weight.copy_(torch.cat([filters, -filters]))
        self.conv.bias.zero_()


class ConvGroup(nn.Sequential):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU: halves resolution early."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(c_out),
            nn.GELU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.GELU(),
        )


class ScaledLinear(nn.Linear):
    """Linear layer with logits multiplied by a constant (< 1) for stable high-LR training."""

    def __init__(self, c_in: int, c_out: int, scale: float) -> None:
        super().__init__(c_in, c_out, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


class FastNet(ZooModel):
    def __init__(self, widths: tuple[int, int, int], num_classes: int, logit_scale: float = 1 / 9) -> None:
        stem = WhiteningStem()
        channels = [stem.conv.out_channels, *widths]
        stages = [ConvGroup(c_in, c_out) for c_in, c_out in zip(channels, channels[1:])]
        head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), ScaledLinear(widths[-1], num_classes, logit_scale))
        super().__init__(stem, stages, head)

    def fit_to_data(self, images: torch.Tensor) -> None:
        """Called by the trainer once, before the first epoch, with normalised training images."""
        self.stem.fit(images)

    def whitening_conv(self) -> nn.Conv2d:
        """The data-fitted layer whose filters ``train.whiten_bias_epochs`` freezes."""
        return self.stem.conv


@MODELS.register("fastnet")
def fastnet(num_classes: int) -> FastNet:
    """FastNet (ours): whitened 2x2 stem, 32/64/128 wide, for fast CPU training (~0.3 M parameters)."""
    return FastNet((32, 64, 128), num_classes)


@MODELS.register("fastnet_m")
def fastnet_m(num_classes: int) -> FastNet:
    """FastNet at 64/128/256, the standard CPU profile's accuracy model (~1.1 M parameters)."""
    return FastNet((64, 128, 256), num_classes)


@MODELS.register("fastnet_wide")
def fastnet_wide(num_classes: int) -> FastNet:
    """FastNet at the width of airbench94, 64/256/256, for GPUs (~2 M parameters)."""
    return FastNet((64, 256, 256), num_classes)
