"""Object vs background: GrabCut foreground masks and the probes that keep, remove or swap either part.

CIFAR-10 has no segmentation masks, so the foreground is estimated with OpenCV's GrabCut from a
centre-rectangle prior (objects are roughly centred). GrabCut runs one image at a time - the one
per-image loop of the package, acceptable because it runs once per audited test subset, not in
training. Limits on 32x32 images: ``docs/stress.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.transforms.functional import gaussian_blur

from xaiquest.data import active_normalisation
from xaiquest.errors import ConfigError

PRIOR_FRACTION = 0.75
"""Side of the centre rectangle GrabCut starts from, as a share of the image side."""

FILL_SIGMA = 4.0
"""Gaussian width (pixels) of the background blur and of the inpainting fill, 1/8 of a CIFAR side."""


def mean_colour(device: torch.device | str = "cpu") -> torch.Tensor:
    """The dataset's mean colour as uint8 ``[1,3,1,1]``: the fill a normalised model sees as zero input."""
    return torch.tensor([round(255 * m) for m in active_normalisation().mean], dtype=torch.uint8, device=device).view(1, 3, 1, 1)


def centre_prior(height: int, width: int, fraction: float = PRIOR_FRACTION) -> torch.Tensor:
    """Bool ``[H,W]``, True on the centred rectangle covering ``fraction`` of each side (GrabCut's start and fallback)."""
    top, left = round(height * (1 - fraction) / 2), round(width * (1 - fraction) / 2)
    prior = torch.zeros(height, width, dtype=torch.bool)
    prior[top : height - top, left : width - left] = True
    return prior


def grabcut_mask(
    image: np.ndarray,
    iterations: int = 2,
    upscale: int = 4,
    fraction: float = PRIOR_FRACTION,
    min_share: float = 0.01,
    max_share: float = 0.95,
) -> np.ndarray:
    """Foreground bool ``[H,W]`` of one uint8 ``[H,W,3]`` image, or the centre prior when GrabCut degenerates.

    The image is upsampled ``upscale`` times (nearest neighbour) first. GrabCut's cost is a
    per-pixel colour term plus a per-neighbour-pair smoothness term; upsampling by k grows the
    first k^2-fold but an object's boundary only k-fold, so at 32x32 GrabCut mostly labels
    everything background, at 128x128 it finds the object. Nearest (not bilinear) keeps each
    colour step one pixel sharp, where the cut belongs. The mask is downsampled back by majority
    vote over each block. GrabCut "degenerates" when the foreground covers less than
    ``min_share`` or more than ``max_share`` of the prior rectangle (no object found); the
    prior rectangle is returned instead.
    """
    height, width = image.shape[:2]
    big = cv2.resize(image, (width * upscale, height * upscale), interpolation=cv2.INTER_NEAREST)
    prior = centre_prior(height * upscale, width * upscale, fraction).numpy()
    rows, cols = np.flatnonzero(prior.any(1)), np.flatnonzero(prior.any(0))
    rect = (int(cols[0]), int(rows[0]), len(cols), len(rows))
    labels = np.zeros(big.shape[:2], np.uint8)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: fix it so masks are reproducible
    cv2.grabCut(big, labels, rect, np.zeros((1, 65)), np.zeros((1, 65)), iterations, cv2.GC_INIT_WITH_RECT)
    foreground = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    share = foreground.sum() / prior.sum()
    if not min_share <= share <= max_share:
        return centre_prior(height, width, fraction).numpy()
    return foreground.reshape(height, upscale, width, upscale).mean((1, 3)) >= 0.5


def foreground_masks(images: torch.Tensor, iterations: int = 2, upscale: int = 4) -> torch.Tensor:
    """Bool ``[N,H,W]`` GrabCut foreground of uint8 ``[N,3,H,W]`` images (see :func:`grabcut_mask`).

    Images whose mask equals :func:`centre_prior` are the fallbacks (:func:`fallback_share`).
    """
    pictures = images.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    masks = [grabcut_mask(picture, iterations, upscale) for picture in pictures]
    return torch.from_numpy(np.array(masks, dtype=bool).reshape(images.shape[0], *images.shape[2:])).to(images.device)


def fallback_share(masks: torch.Tensor) -> float:
    """Share of masks that are the centre-prior fallback, i.e. where GrabCut found no object."""
    prior = centre_prior(*masks.shape[1:]).to(masks.device)
    return (masks == prior).all(2).all(1).float().mean().item()


def blurred(images: torch.Tensor, sigma: float = FILL_SIGMA) -> torch.Tensor:
    """A strong gaussian blur (float ``[N,C,H,W]``, values as given): coarse colour, no detail.

    The kernel spans 3 sigma each side, capped where reflect padding needs it on small images.
    """
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


def other_class_donors(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Index ``[N]`` of a random donor image of another class for each image (another image if none exists)."""
    n = len(labels)
    scores = torch.rand(n, n, generator=generator).to(labels.device)
    other_image = ~torch.eye(n, dtype=torch.bool, device=labels.device)
    other_class = labels[:, None] != labels[None, :]
    allowed = torch.where(other_class.any(1, keepdim=True), other_class, other_image)
    return scores.masked_fill(~allowed, -1).argmax(1)


def mask_gallery_figure(
    images: torch.Tensor, masks: torch.Tensor, titles: Sequence[str] | None = None, columns: int = 8
) -> Figure:
    """Sample foreground masks: each image above its masked version (background dimmed), fallbacks marked."""
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
