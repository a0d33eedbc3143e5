"""A planted spurious cue: a small coloured square stamped on part of one class's training images.

The model can learn "patch => target class" instead of the class itself; stamping the same patch
on test images of *other* classes then measures how much it relies on the cue (attack success),
and the stamp's mask is a known ground-truth region for explanation localisation metrics.
Poisoning is clean-label: stamped training images keep their (target) label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torchmetrics.functional.classification import multiclass_f1_score

from xaiquest.data import Split
from xaiquest.errors import ConfigError

Position = Literal["fixed", "random"]
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class PatchSpec:
    """What to plant, where, and on how many training images of ``target_class``.

    ``position="fixed"`` puts the square in ``corner``, ``margin`` pixels from both edges;
    ``"random"`` draws a uniform position per image where the square fits entirely.
    """

    target_class: int
    fraction: float
    colour: tuple[int, int, int] = (255, 0, 255)
    size: int = 3
    position: Position = "fixed"
    corner: Corner = "bottom-right"
    margin: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ConfigError(f"patch fraction must be in [0, 1], got {self.fraction}")
        if self.size < 1 or self.margin < 0:
            raise ConfigError(f"patch size must be >= 1 and margin >= 0, got {self.size} and {self.margin}")
        if len(self.colour) != 3 or not all(0 <= c <= 255 for c in self.colour):
            raise ConfigError(f"patch colour must be three values in 0..255, got {self.colour}")
        if self.position not in ("fixed", "random"):
            raise ConfigError(f"patch position must be 'fixed' or 'random', got {self.position!r}")
        if self.corner not in CORNERS:
            raise ConfigError(f"patch corner must be one of {', '.join(CORNERS)}, got {self.corner!r}")


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
    spec: PatchSpec, n: int, height: int, width: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners ``(tops [N], lefts [N])`` of the patch on ``n`` images of size ``height`` x ``width``."""
    fits = height - spec.size, width - spec.size
    if min(fits) < 0 or (spec.position == "fixed" and min(fits) < spec.margin):
        raise ConfigError(f"a {spec.size}px patch with margin {spec.margin} does not fit a {height}x{width} image")
    if spec.position == "random":
        tops = torch.randint(0, fits[0] + 1, (n,), generator=generator)
        lefts = torch.randint(0, fits[1] + 1, (n,), generator=generator)
        return tops, lefts
    vertical, horizontal = spec.corner.split("-")
    top = spec.margin if vertical == "top" else fits[0] - spec.margin
    left = spec.margin if horizontal == "left" else fits[1] - spec.margin
    return torch.full((n,), top), torch.full((n,), left)


def stamp(
    images: torch.Tensor, spec: PatchSpec, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(stamped copy, masks [N,H,W])`` of uint8 ``images``; the mask is exactly the recoloured pixels."""
    n, _, height, width = images.shape
    tops, lefts = patch_origins(spec, n, height, width, generator)
    masks = square_masks(tops.to(images.device), lefts.to(images.device), spec.size, height, width)
    colour = torch.tensor(spec.colour, dtype=torch.uint8, device=images.device).view(1, 3, 1, 1)
    return torch.where(masks[:, None], colour, images), masks


def poison_split(split: Split, spec: PatchSpec, seed: int) -> tuple[Split, torch.Tensor]:
    """``(split with patches, poisoned [N] bool)``: ``round(fraction * n_target)`` target images, seeded.

    Labels are unchanged (clean-label poisoning); the chosen images and, for random positions,
    the patch positions depend only on ``seed`` and the labels.
    """
    generator = torch.Generator().manual_seed(seed)
    candidates = (split.labels == spec.target_class).nonzero().squeeze(1)
    if len(candidates) == 0:
        raise ConfigError(f"no training image has the patch target class {spec.target_class}")
    count = round(spec.fraction * len(candidates))
    chosen = candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values
    stamped, _ = stamp(split.images[chosen], spec, generator)
    images = split.images.clone()
    images[chosen] = stamped
    poisoned = torch.zeros(len(split), dtype=torch.bool)
    poisoned[chosen] = True
    return Split(images, split.labels), poisoned


def reliance_metrics(
    clean_logits: torch.Tensor, stamped_logits: torch.Tensor, labels: torch.Tensor, target_class: int
) -> dict[str, float | list[float]]:
    """How much predictions follow the patch, from logits ``[N,C]`` on the same test images without and with it.

    ``attack_success``: share of non-target images predicted as the target once stamped (compare
    with ``target_rate_clean``, the same share without the patch). ``target_recall_without_patch``:
    recall of the target class on clean images - it drops when the model learned the patch
    instead of the class. F1 per class (index = class) on clean and stamped predictions.
    """
    if clean_logits.shape != stamped_logits.shape or clean_logits.shape[:1] != labels.shape:
        raise ValueError(
            f"expected clean and stamped logits [N,C] and labels [N], got {tuple(clean_logits.shape)}, "
            f"{tuple(stamped_logits.shape)} and {tuple(labels.shape)}"
        )
    num_classes = clean_logits.shape[1]
    clean, stamped = clean_logits.argmax(1), stamped_logits.argmax(1)
    others, targets = labels != target_class, labels == target_class

    def f1(predicted: torch.Tensor) -> list[float]:
        return multiclass_f1_score(predicted, labels, num_classes, average="none", zero_division=0).tolist()

    return {
        "clean_accuracy": (clean == labels).float().mean().item(),
        "stamped_accuracy": (stamped == labels).float().mean().item(),
        "attack_success": (stamped[others] == target_class).float().mean().item(),
        "target_rate_clean": (clean[others] == target_class).float().mean().item(),
        "target_recall_without_patch": (clean[targets] == target_class).float().mean().item(),
        "target_recall_with_patch": (stamped[targets] == target_class).float().mean().item(),
        "f1_clean": f1(clean),
        "f1_stamped": f1(stamped),
    }
