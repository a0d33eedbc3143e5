"""Concept probe sets made offline at the dataset's resolution: colour, texture and shape.

Every function is batched over uint8 images ``[N,3,H,W]`` and seeded through a ``torch.Generator``
so a probe set is the same on every rerun. Colour changes keep each pixel's luminance (Y of YIQ),
so only chroma moves; textures come from scikit-image's bundled photographs (brick, grass,
gravel) and procedural generators; shapes from GrabCut masks (:mod:`xaiquest.data.masks`).
Definitions and sizes: ``docs/concepts.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)

NAMED_COLOURS = {"red": (220, 30, 30), "green": (40, 170, 40), "blue": (30, 60, 220), "yellow": (230, 210, 40)}
"""Plain colour concepts (RGB); each example is the colour with mild per-pixel noise."""

SKIMAGE_TEXTURES = ("brick", "grass", "gravel")
"""The texture photographs scikit-image ships (512x512 grey)."""

GREY, WHITE = 128, 255
"""Silhouette fill and the background of shape probes (Geirhos et al. use a plain background)."""

CONTENT_CROP = 12
"""Side of the central crop of an image whose tiling is its 'texture' in a cue-conflict image."""


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """Float ``[N,1,H,W]``: the Y (luma) channel of YIQ, 0-255."""
    return torch.einsum("c,nchw->nhw", RGB_TO_YIQ[0], images.float())[:, None]


def hue_rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate the chroma plane (I, Q) by ``degrees`` keeping Y: same luminance, other hues (up to clipping)."""
    yiq = torch.einsum("dc,nchw->ndhw", RGB_TO_YIQ, images.float())
    angle = math.radians(degrees)
    i, q = yiq[:, 1], yiq[:, 2]
    rotated = torch.stack([yiq[:, 0], i * math.cos(angle) - q * math.sin(angle), i * math.sin(angle) + q * math.cos(angle)], 1)
    return _to_uint8(torch.einsum("dc,nchw->ndhw", YIQ_TO_RGB, rotated))


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma replicated on the three channels: no colour information left."""
    return _to_uint8(luminance(images).expand(-1, 3, -1, -1))


def boost_channel(images: torch.Tensor, channel: int, factor: float = 1.5) -> torch.Tensor:
    """One colour channel multiplied by ``factor`` (a colour cast)."""
    scale = torch.ones(1, 3, 1, 1)
    scale[0, channel] = factor
    return _to_uint8(images.float() * scale)


def colour_patches(colour: tuple[int, int, int], n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` plain fields of ``colour`` with mild (sd 12) pixel noise so examples are not identical."""
    base = torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1)
    return _to_uint8(base + 12 * torch.randn(n, 3, size, size, generator=generator))


def skimage_texture(name: str, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random 2*size crops of a scikit-image texture photograph, area-downsampled to ``size``, grey on 3 channels."""
    from skimage import data as skdata

    picture = torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)())).float()
    crop = 2 * size
    tops = torch.randint(0, picture.shape[0] - crop, (n,), generator=generator)
    lefts = torch.randint(0, picture.shape[1] - crop, (n,), generator=generator)
    rows = (tops[:, None] + torch.arange(crop))[:, :, None]
    cols = (lefts[:, None] + torch.arange(crop))[:, None, :]
    crops = picture[rows, cols][:, None]
    return _to_uint8(F.avg_pool2d(crops, 2).expand(-1, 3, -1, -1))


def _grid(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    return ys.expand(n, -1, -1), xs.expand(n, -1, -1)


def _two_tone(pattern: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Bool ``[N,H,W]`` -> uint8 images in a random dark and a random light grey."""
    n = len(pattern)
    dark = torch.randint(0, 90, (n, 1, 1, 1), generator=generator).float()
    light = torch.randint(160, 256, (n, 1, 1, 1), generator=generator).float()
    return _to_uint8(torch.where(pattern[:, None], light, dark).expand(-1, 3, -1, -1))


def stripes(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Straight stripes, random orientation, period 3-8 pixels and phase."""
    ys, xs = _grid(n, size)
    angle = torch.rand(n, 1, 1, generator=generator) * math.pi
    period = 3 + 5 * torch.rand(n, 1, 1, generator=generator)
    phase = torch.rand(n, 1, 1, generator=generator) * period
    position = xs * torch.cos(angle) + ys * torch.sin(angle) + phase
    return _two_tone((position % period) < period / 2, generator)


def dots(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """A square lattice of round dots, random spacing 4-8 pixels and offset."""
    ys, xs = _grid(n, size)
    spacing = torch.randint(4, 9, (n, 1, 1), generator=generator).float()
    offset = torch.rand(n, 2, 1, 1, generator=generator) * spacing[:, None]
    dy = (ys + offset[:, 0]) % spacing - spacing / 2
    dx = (xs + offset[:, 1]) % spacing - spacing / 2
    return _two_tone(dy**2 + dx**2 <= (spacing / 4) ** 2, generator)


def checkerboard(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Checkerboards with random square side 2-6 pixels and offset."""
    ys, xs = _grid(n, size)
    side = torch.randint(2, 7, (n, 1, 1), generator=generator).float()
    offset = torch.rand(n, 2, 1, 1, generator=generator) * side[:, None]
    cells = torch.floor((ys + offset[:, 0]) / side) + torch.floor((xs + offset[:, 1]) / side)
    return _two_tone(cells % 2 == 1, generator)


def band_noise(n: int, size: int, generator: torch.Generator, cell: int) -> torch.Tensor:
    """Grey value noise at one spatial frequency: i.i.d. noise on a ``cell``-pixel grid, upsampled bilinearly."""
    coarse = torch.randn(n, 1, -(-size // cell) + 1, -(-size // cell) + 1, generator=generator)
    smooth = F.interpolate(coarse, scale_factor=cell, mode="bilinear", align_corners=False)[..., :size, :size]
    smooth = smooth / smooth.flatten(1).std(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    return _to_uint8((128 + 45 * smooth).expand(-1, 3, -1, -1))


Generator = Callable[[int, int, torch.Generator], torch.Tensor]


def _colour(name: str) -> Generator:
    return lambda n, size, generator: colour_patches(NAMED_COLOURS[name], n, size, generator)


def _photo(name: str) -> Generator:
    return lambda n, size, generator: skimage_texture(name, n, size, generator)


def _noise(cell: int) -> Generator:
    return lambda n, size, generator: band_noise(n, size, generator, cell)


IMAGE_FREE_CONCEPTS: dict[str, tuple[str, Generator]] = {
    **{name: ("colour", _colour(name)) for name in NAMED_COLOURS},
    **{name: ("texture", _photo(name)) for name in SKIMAGE_TEXTURES},
    "stripes": ("texture", stripes),
    "dots": ("texture", dots),
    "checkerboard": ("texture", checkerboard),
    "noise_fine": ("texture", _noise(1)),
    "noise_medium": ("texture", _noise(4)),
    "noise_coarse": ("texture", _noise(8)),
}
"""Concepts generated from nothing: name -> (family, generator(n, size, generator))."""

SHAPE_CONCEPTS = ("silhouette", "outline")
"""Concepts made from test images' GrabCut masks."""


def concept_family(name: str) -> str:
    return "shape" if name in SHAPE_CONCEPTS else IMAGE_FREE_CONCEPTS[name][0]


def silhouettes(masks: torch.Tensor) -> torch.Tensor:
    """The object's mask filled with neutral grey on a white background: shape only."""
    return torch.where(masks[:, None], torch.tensor(GREY, dtype=torch.uint8), torch.tensor(WHITE, dtype=torch.uint8)).expand(-1, 3, -1, -1).contiguous()


def outlines(masks: torch.Tensor) -> torch.Tensor:
    """The object's contour (mask minus its 3x3 erosion) in black on white: the bounding shape, no fill."""
    eroded = -F.max_pool2d(-masks[:, None].float(), 3, stride=1, padding=1)
    edge = masks[:, None] & (eroded[:, :1] < 0.5)
    return torch.where(edge, torch.tensor(0, dtype=torch.uint8), torch.tensor(WHITE, dtype=torch.uint8)).expand(-1, 3, -1, -1).contiguous()


def content_texture(images: torch.Tensor, size: int, crop: int = CONTENT_CROP) -> torch.Tensor:
    """Each image's central ``crop`` x ``crop`` patch (mostly object), mirror-tiled to ``size``: its texture without its shape."""
    top = (images.shape[-2] - crop) // 2
    left = (images.shape[-1] - crop) // 2
    patch = images[..., top : top + crop, left : left + crop]
    pair = torch.cat([patch, patch.flip(-1)], -1)
    tile = torch.cat([pair, pair.flip(-2)], -2)
    reps = -(-size // tile.shape[-1])
    return tile.repeat(1, 1, reps, reps)[..., :size, :size].contiguous()


def cue_conflict(masks: torch.Tensor, donor_images: torch.Tensor) -> torch.Tensor:
    """Each silhouette (class A) filled with the tiled content texture of its donor (class B), white around it."""
    texture = content_texture(donor_images, masks.shape[-1])
    return torch.where(masks[:, None], texture, torch.tensor(WHITE, dtype=torch.uint8))


def edge_masks(images: torch.Tensor) -> torch.Tensor:
    """Bool ``[N,H,W]`` Canny edges of the luminance (OpenCV, thresholds 100/200 on 0-255)."""
    grey = luminance(images)[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return torch.from_numpy(np.stack([cv2.Canny(g, 100, 200) > 0 for g in grey]))


COLOUR_NAMES = ("red", "orange", "yellow", "green", "blue", "purple", "black", "white", "grey")
"""Per-pixel colour names for dissection (HSV rules, after Bau et al.'s colour concepts)."""

HUE_BINS = {"red": (-20, 20), "orange": (20, 45), "yellow": (45, 70), "green": (70, 170), "blue": (170, 260),
            "purple": (260, 340)}
"""Hue ranges in degrees for the chromatic names (red wraps around 0)."""


def colour_name_masks(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{name: bool [N,H,W]}``: each pixel gets one colour name from its hue, saturation and value."""
    x = images.float() / 255
    value, _ = x.max(1)
    chroma = value - x.min(1).values
    saturation = chroma / value.clamp_min(1e-6)
    r, g, b = x.unbind(1)
    safe = chroma.clamp_min(1e-6)
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    hue = torch.where(hue >= 340, hue - 360, hue)
    dark, pale = value < 0.2, (saturation < 0.2) & (value >= 0.2)
    chromatic = ~dark & ~pale
    masks = {name: chromatic & (hue >= lo) & (hue < hi) for name, (lo, hi) in HUE_BINS.items()}
    masks["black"] = dark
    masks["white"] = pale & (value > 0.8)
    masks["grey"] = pale & (value <= 0.8)
    return masks
