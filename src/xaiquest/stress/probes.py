"""Stress probes: controlled edits of uint8 images, each with an intensity axis to sweep.

A probe is ``(images uint8 [N,3,H,W], intensity, generator) -> (perturbed uint8, changed bool [N,H,W])``;
``changed`` marks the pixels the probe edited, so the focus-shift metrics can ask whether an
explanation moved onto (or away from) them. Background probes also take the foreground masks
and labels (:func:`apply_probe` passes them on). Intensities and choices: ``docs/stress.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from xaiquest.data import to_float
from xaiquest.data.corruptions import corrupt
from xaiquest.data.masks import other_class_donors
from xaiquest.errors import ConfigError
from xaiquest.registry import Registry
from xaiquest.stress import background
from xaiquest.patch import square_masks

Intensity = int | float | str
Probed = tuple[torch.Tensor, torch.Tensor]
"""``(perturbed uint8 [N,3,H,W], changed bool [N,H,W])``."""
ProbeFn = Callable[..., Probed]

CHANNELS = "RGB"
LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights, as PIL's ``convert("L")``."""


@dataclass(frozen=True)
class Probe:
    """A registered probe, the intensities a sweep visits, and whether it needs foreground masks."""

    name: str
    intensities: tuple[Intensity, ...]
    uses_foreground: bool
    description: str
    apply: ProbeFn


PROBES: Registry[Probe] = Registry("stress probe")


def register_probe(
    name: str, intensities: Sequence[Intensity], uses_foreground: bool = False
) -> Callable[[ProbeFn], ProbeFn]:
    """Register ``fn`` under ``name``; its docstring's first line is the description."""

    def decorator(fn: ProbeFn) -> ProbeFn:
        description = (fn.__doc__ or "").strip().splitlines()[0]
        PROBES.register(name)(Probe(name, tuple(intensities), uses_foreground, description, fn))
        return fn

    return decorator


def apply_probe(
    name: str,
    images: torch.Tensor,
    intensity: Intensity,
    generator: torch.Generator | None = None,
    *,
    foreground: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run probe ``name``; background probes get ``foreground`` (GrabCut is run when it is None) and ``labels``.

    Pass precomputed ``foreground`` masks when sweeping several background probes: GrabCut is the
    slow part.
    """
    probe = PROBES.get(name)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"probes need uint8 images [N,3,H,W], got {images.dtype} {list(images.shape)}")
    if probe.uses_foreground:
        masks = background.foreground_masks(images) if foreground is None else foreground
        return probe.apply(images, intensity, generator, foreground=masks, labels=labels)
    return probe.apply(images, intensity, generator)


def everywhere(images: torch.Tensor) -> torch.Tensor:
    """The changed mask of a global edit: every pixel."""
    n, _, height, width = images.shape
    return torch.ones(n, height, width, dtype=torch.bool, device=images.device)


def stream_seed(generator: torch.Generator | None) -> int:
    """A seed for functions that take an int seed, drawn from ``generator`` (0 without one)."""
    return 0 if generator is None else int(torch.randint(2**31 - 1, (), generator=generator))


# --- occlusion --------------------------------------------------------------------------------


def occlude(images: torch.Tensor, masks: torch.Tensor) -> Probed:
    """Masked pixels set to the dataset mean colour (grey, and zero input for a normalised model)."""
    return torch.where(masks[:, None], background.mean_colour(images.device), images), masks


def occluded_area(masks: torch.Tensor) -> torch.Tensor:
    """Share of each image's pixels a mask covers, ``[N]`` in [0, 1]."""
    return masks.flatten(1).float().mean(1)


def check_side(side: Intensity, height: int, width: int) -> int:
    """An occluder side must be a whole number of pixels that fits the image."""
    if not isinstance(side, int) or not 1 <= side <= min(height, width):
        raise ConfigError(f"occluder side must be an integer in 1..{min(height, width)}, got {side!r}")
    return side


@register_probe("occlusion_centre", intensities=(4, 8, 12, 16))
def occlusion_centre(images: torch.Tensor, side: Intensity, generator: torch.Generator | None = None) -> Probed:
    """Grey square of side ``side`` px at the image centre, where CIFAR objects usually are."""
    n, _, height, width = images.shape
    side = check_side(side, height, width)
    tops = torch.full((n,), (height - side) // 2, device=images.device)
    lefts = torch.full((n,), (width - side) // 2, device=images.device)
    return occlude(images, square_masks(tops, lefts, side, height, width))


@register_probe("occlusion_border", intensities=(4, 8, 12, 16))
def occlusion_border(images: torch.Tensor, side: Intensity, generator: torch.Generator | None = None) -> Probed:
    """Grey square of side ``side`` px touching a random edge, at a random position along it (context, not object)."""
    n, _, height, width = images.shape
    side = check_side(side, height, width)
    edge = torch.randint(0, 4, (n,), generator=generator)  # 0 top, 1 bottom, 2 left, 3 right
    along = torch.rand(n, generator=generator)
    free_rows, free_cols = height - side, width - side
    slide_rows = (along * (free_rows + 1)).long().clamp_max(free_rows)
    slide_cols = (along * (free_cols + 1)).long().clamp_max(free_cols)
    tops = torch.where(edge == 0, 0, torch.where(edge == 1, free_rows, slide_rows))
    lefts = torch.where(edge == 2, 0, torch.where(edge == 3, free_cols, slide_cols))
    return occlude(images, square_masks(tops.to(images.device), lefts.to(images.device), side, height, width))


# --- colour -----------------------------------------------------------------------------------


@register_probe("channel_drop", intensities=tuple(CHANNELS))
def channel_drop(images: torch.Tensor, channel: Intensity, generator: torch.Generator | None = None) -> Probed:
    """One colour channel (``"R"``, ``"G"`` or ``"B"``) set to its dataset mean: its information removed."""
    if channel not in tuple(CHANNELS):
        raise ConfigError(f"channel_drop intensity must be one of R, G, B, got {channel!r}")
    index = CHANNELS.index(str(channel))
    dropped = images.clone()
    dropped[:, index] = background.mean_colour(images.device)[0, index]
    return dropped, everywhere(images)


def permutation_index(order: str) -> list[int]:
    """``"GBR"`` -> ``[1, 2, 0]``: output channel k is input channel ``order[k]``."""
    if sorted(order) != sorted(CHANNELS):
        raise ConfigError(f"a channel order is a permutation of RGB such as 'BGR', got {order!r}")
    return [CHANNELS.index(c) for c in order]


@register_probe("channel_permutation", intensities=("RBG", "GRB", "GBR", "BRG", "BGR"))
def channel_permutation(images: torch.Tensor, order: Intensity, generator: torch.Generator | None = None) -> Probed:
    """Colour channels reordered (``"BGR"``: output R = input B, ...): shapes kept, hues changed."""
    return images[:, permutation_index(str(order))], everywhere(images)


@register_probe("grayscale", intensities=("luma",))
def grayscale(images: torch.Tensor, mode: Intensity, generator: torch.Generator | None = None) -> Probed:
    """BT.601 luma copied to all three channels: colour removed, brightness kept."""
    if mode != "luma":
        raise ConfigError(f"grayscale has the single intensity 'luma', got {mode!r}")
    weights = torch.tensor(LUMA, device=images.device).view(1, 3, 1, 1)
    luma = (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    return luma.expand_as(images).contiguous(), everywhere(images)


# --- corruptions ------------------------------------------------------------------------------


def corrupted(images: torch.Tensor, name: str, severity: Intensity, generator: torch.Generator | None) -> Probed:
    if not isinstance(severity, int):
        raise ConfigError(f"{name} severity must be an integer 1..5, got {severity!r}")
    return corrupt(images, name, severity, stream_seed(generator)), everywhere(images)


@register_probe("noise", intensities=(1, 2, 3, 4, 5))
def noise(images: torch.Tensor, severity: Intensity, generator: torch.Generator | None = None) -> Probed:
    """CIFAR-10-C gaussian noise at severity 1..5."""
    return corrupted(images, "gaussian_noise", severity, generator)


@register_probe("blur", intensities=(1, 2, 3, 4, 5))
def blur(images: torch.Tensor, severity: Intensity, generator: torch.Generator | None = None) -> Probed:
    """CIFAR-10-C gaussian blur at severity 1..5."""
    return corrupted(images, "gaussian_blur", severity, generator)


# --- object vs background -----------------------------------------------------------------------


@register_probe("object_only", intensities=("mean", "blur"), uses_foreground=True)
def object_only(
    images: torch.Tensor, fill: Intensity, generator: torch.Generator | None = None, *,
    foreground: torch.Tensor, labels: torch.Tensor | None = None,
) -> Probed:
    """Background replaced by the mean colour or a strong blur: is the object alone enough?"""
    return background.object_only(images, foreground, str(fill)), ~foreground


@register_probe("background_only", intensities=("mean", "inpaint"), uses_foreground=True)
def background_only(
    images: torch.Tensor, fill: Intensity, generator: torch.Generator | None = None, *,
    foreground: torch.Tensor, labels: torch.Tensor | None = None,
) -> Probed:
    """Object replaced by the mean colour or inpainted from its surroundings: is the context enough?"""
    return background.background_only(images, foreground, str(fill)), foreground


@register_probe("background_swap", intensities=("other_class",), uses_foreground=True)
def background_swap(
    images: torch.Tensor, mode: Intensity, generator: torch.Generator | None = None, *,
    foreground: torch.Tensor, labels: torch.Tensor | None = None,
) -> Probed:
    """Object pasted onto the background of an image of another class (another image without labels)."""
    if mode != "other_class":
        raise ConfigError(f"background_swap has the single intensity 'other_class', got {mode!r}")
    if labels is None:
        labels = torch.arange(len(images), device=images.device)  # every image its own class
    donors = other_class_donors(labels, generator)
    swapped = background.background_swap(images, foreground, images[donors], foreground[donors])
    return swapped, ~foreground


# --- occlusion sensitivity ------------------------------------------------------------------------


def window_masks(height: int, width: int, window: int, stride: int, device: torch.device) -> torch.Tensor:
    """Bool ``[P,H,W]``: every ``window`` x ``window`` occluder position on a ``stride`` grid, row-major."""
    tops = torch.arange(0, height - window + 1, stride, device=device)
    lefts = torch.arange(0, width - window + 1, stride, device=device)
    grid_tops, grid_lefts = torch.meshgrid(tops, lefts, indexing="ij")
    return square_masks(grid_tops.flatten(), grid_lefts.flatten(), window, height, width)


def occlusion_sensitivity(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    window: int = 8,
    stride: int = 4,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Maps ``[N,H,W]``: drop in target probability when a grey window covers each pixel (Zeiler & Fergus 2014).

    Every window position of every image is one forward input; they run ``batch_size`` at a time.
    A pixel's value is the mean drop over the windows covering it (0 where none does). Images
    are uint8 on the model's device; the occluder is the mean colour (normalised zero).
    """
    n, _, height, width = images.shape
    if not 1 <= window <= min(height, width) or stride < 1:
        raise ConfigError(f"occlusion window must be in 1..{min(height, width)} and stride >= 1, got {window}, {stride}")
    windows = window_masks(height, width, window, stride, images.device)
    keep = (~windows)[:, None].float()  # [P,1,H,W]
    per_chunk = max(1, batch_size // len(windows))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            drops = []
            for start in range(0, n, per_chunk):
                chunk = to_float(images[start : start + per_chunk])
                chunk_targets = targets[start : start + per_chunk, None]
                clean = model(chunk).softmax(1).gather(1, chunk_targets)  # [n,1]
                occluded = (chunk[:, None] * keep).flatten(0, 1)  # [n*P,3,H,W]
                probs = model(occluded).softmax(1).view(len(chunk), len(windows), -1)
                drops.append(clean - probs.gather(2, chunk_targets[:, None].expand(-1, len(windows), 1)).squeeze(2))
    finally:
        model.train(was_training)
    cover = windows.flatten(1).float()  # [P,H*W]
    maps = torch.cat(drops) @ cover / cover.sum(0).clamp_min(1)
    return maps.view(n, height, width).float().cpu()
