"""Object vs background: GrabCut foreground masks and the probes that keep, remove or swap either part.

CIFAR-10 has no segmentation masks, so the foreground is estimated with OpenCV's GrabCut from a
centre-rectangle prior (objects are roughly centred; :mod:`xaiquest.data.masks`). Limits on 32x32
images: ``docs/stress.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from xaiquest.data import active_normalisation
from xaiquest.data.masks import centre_prior
from xaiquest.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FILL_SIGMA = 4.0
"""Gaussian width (pixels) of the background blur and of the inpainting fill, 1/8 of a CIFAR side."""


def mean_colour(device: torch.device | str = "cpu") -> torch.Tensor:
    """The dataset's mean colour as uint8 ``[1,3,1,1]``: the fill a normalised model sees as zero input."""
    return torch.tensor([round(255 * m) for m in active_normalisation().mean], dtype=torch.uint8, device=device).view(1, 3, 1, 1)


def blurred(images: torch.Tensor, sigma: float = FILL_SIGMA) -> torch.Tensor:
    """A strong gaussian blur (float ``[N,C,H,W]``, values as given): coarse colour, no detail.

    The kernel spans 3 sigma each side, capped where reflect padding needs it on small images.
    """
    from torchvision.transforms.functional import gaussian_blur  # torchvision loads on first use, not on import

    size = min(2 * round(3 * sigma) + 1, 2 * min(images.shape[-2:]) - 1)
    return gaussian_blur(images.float(), [size, size], [sigma, sigma])


def inpaint(images: torch.Tensor, region: torch.Tensor, sigma: float = FILL_SIGMA) -> torch.Tensor:
    """uint8 images with ``region`` ``[N,H,W]`` filled from the pixels around it (normalised convolution).

    Each filled pixel is the gaussian-weighted mean of the *known* pixels near it, so the object
    disappears into its surroundings instead of leaving a flat hole; where no known pixel is within
    reach (a mask covering the image) the dataset mean colour is used.
    """
    known = (~region)[:, None].float()
    weight = blurred(known, sigma)
    fill = blurred(images.float() * known, sigma) / weight.clamp_min(1e-6)
    fill = torch.where(weight > 1e-3, fill, mean_colour(images.device).float())
    return torch.where(region[:, None], fill.round().clamp(0, 255).to(torch.uint8), images)


def object_only(images: torch.Tensor, masks: torch.Tensor, fill: str = "mean") -> torch.Tensor:
    """Keep the object, replace the background by the mean colour (``"mean"``) or a strong blur (``"blur"``)."""
    if fill == "mean":
        background = mean_colour(images.device).expand_as(images)
    elif fill == "blur":
        background = blurred(images).round().clamp(0, 255).to(torch.uint8)
    else:
        raise ConfigError(f"object_only fill must be 'mean' or 'blur', got {fill!r}")
    return torch.where(masks[:, None], images, background)


def background_only(images: torch.Tensor, masks: torch.Tensor, fill: str = "mean") -> torch.Tensor:
    """Remove the object: mean colour (``"mean"``) or the surroundings inpainted over it (``"inpaint"``)."""
    if fill == "mean":
        return torch.where(masks[:, None], mean_colour(images.device), images)
    if fill == "inpaint":
        return inpaint(images, masks)
    raise ConfigError(f"background_only fill must be 'mean' or 'inpaint', got {fill!r}")


def background_swap(
    images: torch.Tensor, masks: torch.Tensor, donor_images: torch.Tensor, donor_masks: torch.Tensor
) -> torch.Tensor:
    """Each object pasted onto its donor's background, the donor's own object inpainted away first."""
    return torch.where(masks[:, None], images, inpaint(donor_images, donor_masks))


def mask_gallery_figure(
    images: torch.Tensor, masks: torch.Tensor, titles: Sequence[str] | None = None, columns: int = 8
) -> Figure:
    """Sample foreground masks: each image above its masked version (background dimmed), fallbacks marked."""
    from matplotlib.figure import Figure

    n = len(images)
    blocks = -(-n // columns)
    fig = Figure(figsize=(1.2 * min(n, columns), 2.5 * blocks + 0.4))
    axes = fig.subplots(2 * blocks, min(n, columns), squeeze=False)
    prior = centre_prior(*masks.shape[1:])
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, mask) in enumerate(zip(images.cpu(), masks.cpu())):
        row, col = 2 * (i // columns), i % columns
        picture = image.permute(1, 2, 0).numpy()
        axes[row, col].imshow(picture)
        dimmed = np.where(mask.numpy()[..., None], picture, picture // 4)
        axes[row + 1, col].imshow(dimmed)
        label = (titles[i] if titles else "") + (" (prior)" if torch.equal(mask, prior) else "")
        axes[row, col].set_title(label, fontsize=6)
    fig.suptitle("GrabCut foreground masks (bottom rows: background dimmed)", fontsize=9)
    fig.tight_layout()
    return fig
