"""Object-vs-background masks of small images (GrabCut), shared by the stages that need them.

The stress stage cuts objects out of their backgrounds with these masks; the concepts stage turns
them into silhouettes, outlines and cue-conflict images, and uses them as dissection concepts.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

PRIOR_FRACTION = 0.75
"""Side of the centre rectangle GrabCut starts from, as a share of the image side."""

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


def other_class_donors(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Index ``[N]`` of a random donor image of another class for each image (another image if none exists)."""
    n = len(labels)
    scores = torch.rand(n, n, generator=generator).to(labels.device)
    other_image = ~torch.eye(n, dtype=torch.bool, device=labels.device)
    other_class = labels[:, None] != labels[None, :]
    allowed = torch.where(other_class.any(1, keepdim=True), other_class, other_image)
    return scores.masked_fill(~allowed, -1).argmax(1)
