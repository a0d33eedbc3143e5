"""A planted spurious cue: a small coloured square stamped on part of one class's training images.

The model can learn "patch => target class" instead of the class itself; stamping the same patch
on test images of *other* classes then measures how much it relies on the cue (attack success),
and the stamp's mask is a known ground-truth region for explanation localisation metrics.
Poisoning is clean-label: stamped training images keep their (target) label. A control model
(``PatchConfig.control``) trains on ``control_split``: the same patch on the same share of every class,
so it carries no label.

The train stage plants it, the stress and concepts stages and the dashboard stamp it again, all
through this module and the one type ``PatchConfig`` of the config.

Sizes are relative to the image: ``PatchConfig.size`` and the corner margin are pixels *at 32 px*
(CIFAR-10) and scale with the image's shorter side (:func:`at_image_side`), so the patch covers the
same share of a 64 or 224 px image as of a CIFAR one, and 32 px runs stamp exactly what they always did.
"""

from __future__ import annotations

from typing import Literal

import torch

from xaiquest.config import PatchConfig
from xaiquest.data import Split
from xaiquest.errors import ConfigError

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")


DEFAULT_CORNER: Corner = "bottom-right"
DEFAULT_MARGIN = 1
"""Where a ``fixed`` patch sits: ``margin`` pixels (at 32 px) from both edges of this corner."""
REFERENCE_SIDE = 32
"""The image side at which the patch's size and margin are given in pixels as they are."""


def at_image_side(pixels: int, image_side: int) -> int:
    """``pixels`` given at 32 px, scaled to an image whose shorter side is ``image_side``: rounded half up
    (integer arithmetic, so 1.5 -> 2 on every platform). A 3 px patch is 3 at 32 px, 6 at 64, 21 at 224."""
    return (2 * pixels * image_side + REFERENCE_SIDE) // (2 * REFERENCE_SIDE)


def patch_side(patch: PatchConfig, height: int, width: int) -> int:
    """The side in pixels of ``patch`` stamped on ``height`` x ``width`` images: never below one pixel."""
    return max(1, at_image_side(patch.size, min(height, width)))


def stamp_parameters(patch: PatchConfig, image_side: int) -> dict[str, object]:
    """Everything that decides the stamped pixels on ``image_side`` px images, for fingerprints of units that
    stamp the patch: the size and margin as stamped (at 32 px, the configured ones, so fingerprints are unchanged)."""
    return {**patch.model_dump(), "size": patch_side(patch, image_side, image_side), "corner": DEFAULT_CORNER,
            "margin": at_image_side(DEFAULT_MARGIN, image_side)}


def square_masks(tops: torch.Tensor, lefts: torch.Tensor, side: int, height: int, width: int) -> torch.Tensor:
    """Bool ``[N,H,W]``, True on the ``side`` x ``side`` square at (``tops[i]``, ``lefts[i]``) of each image.

    Built by broadcasting a row test against a column test, so any number of squares costs one op.
    """
    rows = torch.arange(height, device=tops.device)
    cols = torch.arange(width, device=lefts.device)
    in_rows = (rows >= tops[:, None]) & (rows < tops[:, None] + side)
    in_cols = (cols >= lefts[:, None]) & (cols < lefts[:, None] + side)
    return in_rows[:, :, None] & in_cols[:, None, :]


def patch_origins(
    patch: PatchConfig, n: int, height: int, width: int, generator: torch.Generator | None = None,
    corner: Corner = DEFAULT_CORNER, margin: int = DEFAULT_MARGIN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners ``(tops [N], lefts [N])`` of the patch on ``n`` images of size ``height`` x ``width``.

    ``position="fixed"`` puts the square in ``corner``, ``margin`` pixels (at 32 px, scaled like the
    size) from both edges; ``"random"`` draws a uniform position per image where the square fits entirely.
    """
    if corner not in CORNERS or margin < 0:
        raise ConfigError(f"patch corner must be one of {', '.join(CORNERS)} and margin >= 0, got {corner!r}, {margin}")
    side, margin = patch_side(patch, height, width), at_image_side(margin, min(height, width))
    fits = height - side, width - side
    if min(fits) < 0 or (patch.position == "fixed" and min(fits) < margin):
        raise ConfigError(f"patch size {patch.size} (a {side} px square with margin {margin} px) does not fit a "
                          f"{height}x{width} image; lower patch.size (pixels at 32 px)")
    if patch.position == "random":
        tops = torch.randint(0, fits[0] + 1, (n,), generator=generator)
        lefts = torch.randint(0, fits[1] + 1, (n,), generator=generator)
        return tops, lefts
    vertical, horizontal = corner.split("-")
    top = margin if vertical == "top" else fits[0] - margin
    left = margin if horizontal == "left" else fits[1] - margin
    return torch.full((n,), top), torch.full((n,), left)


def stamp(
    images: torch.Tensor, patch: PatchConfig, generator: torch.Generator | None = None,
    corner: Corner = DEFAULT_CORNER, margin: int = DEFAULT_MARGIN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(stamped copy, masks [N,H,W])`` of uint8 ``images``; the mask is exactly the recoloured pixels."""
    n, _, height, width = images.shape
    tops, lefts = patch_origins(patch, n, height, width, generator, corner, margin)
    masks = square_masks(tops.to(images.device), lefts.to(images.device), patch_side(patch, height, width), height, width)
    return torch.where(masks[:, None], patch_colour(images, patch), images), masks


def describe(patch: PatchConfig) -> str:
    """``rgb(255, 0, 255), 3 px at 32 px, fixed``: which patch a probe stamped, for tables and records."""
    colour = "mean colour" if patch.colour == "mean" else f"rgb{tuple(patch.colour)}"
    return f"{colour}, {patch.size} px at 32 px, {patch.position}"


def patch_colour(images: torch.Tensor, patch: PatchConfig) -> torch.Tensor:
    """The uint8 colour stamped on each image, ``[N or 1,3,1,1]``: the configured RGB, or each image's own mean
    colour (``"mean"``: a flat square in the image's average colour, the salience sweep's least salient patch)."""
    if patch.colour == "mean":
        return images.float().mean((2, 3), keepdim=True).round().to(torch.uint8)
    return torch.tensor(patch.colour, dtype=torch.uint8, device=images.device).view(1, 3, 1, 1)


def poison_split(split: Split, patch: PatchConfig, seed: int) -> tuple[Split, torch.Tensor]:
    """``(split with patches, poisoned [N] bool)``: ``round(fraction * n_target)`` target images, seeded.

    Labels are unchanged (clean-label poisoning); the chosen images and, for random positions,
    the patch positions depend only on ``seed`` and the labels.
    """
    generator = torch.Generator().manual_seed(seed)
    candidates = (split.labels == patch.target_class).nonzero().squeeze(1)
    if len(candidates) == 0:
        raise ConfigError(f"no training image has the patch target class {patch.target_class}")
    return stamp_chosen(split, choose(candidates, patch.fraction, generator), patch, generator)


def control_split(split: Split, patch: PatchConfig, seed: int) -> tuple[Split, torch.Tensor]:
    """``(split with patches, stamped [N] bool)`` for a control model: the patch carries no label information.

    ``round(fraction * n_c)`` images of *every* class c get the same patch, so the patch is as
    present and as salient as in ``poison_split`` but P(patch | class) is the same for all
    classes; ``target_class`` is ignored. Labels are unchanged; seeded like ``poison_split``.
    """
    generator = torch.Generator().manual_seed(seed)
    per_class = [(split.labels == c).nonzero().squeeze(1) for c in split.labels.unique().tolist()]
    chosen = torch.cat([choose(candidates, patch.fraction, generator) for candidates in per_class]).sort().values
    return stamp_chosen(split, chosen, patch, generator)


def training_split(split: Split, patch: PatchConfig, seed: int) -> tuple[Split, torch.Tensor]:
    """The training data of a patch variant: ``control_split`` for a control twin, else ``poison_split``."""
    return (control_split if patch.control else poison_split)(split, patch, seed)


def choose(candidates: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """``round(fraction * len(candidates))`` of ``candidates`` drawn without replacement, sorted."""
    count = round(fraction * len(candidates))
    return candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values


def stamp_chosen(
    split: Split, chosen: torch.Tensor, patch: PatchConfig, generator: torch.Generator
) -> tuple[Split, torch.Tensor]:
    """``(copy of split with the patch on the images at sorted indices chosen, stamped [N] bool)``."""
    stamped, _ = stamp(split.images[chosen], patch, generator)
    images = split.images.clone()
    images[chosen] = stamped
    marked = torch.zeros(len(split), dtype=torch.bool)
    marked[chosen] = True
    return Split(images, split.labels), marked
