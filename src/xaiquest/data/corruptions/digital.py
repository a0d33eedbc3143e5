"""Digital corruptions: colour changes in HSV, contrast, JPEG, pixelation and elastic warps."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from xaiquest.data.corruptions.blur import gaussian_filter
from xaiquest.data.corruptions.engine import Params, floor_to_uint8, register_corruption, to_unit, uniform

# --- colour -----------------------------------------------------------------------------------------

# Which of (v, t, p, q) each RGB channel takes in each of the six hue sectors (scikit-image hsv2rgb).
_SECTOR_SOURCES = ((0, 3, 2, 2, 1, 0), (1, 0, 0, 3, 2, 2), (2, 2, 1, 0, 0, 3))


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """scikit-image ``rgb2hsv`` on ``[N, 3, H, W]`` in [0, 1] (hue in [0, 1), 0 for greys)."""
    red, green, blue = x.unbind(1)
    value = x.amax(1)
    delta = value - x.amin(1)
    chromatic = delta > 0
    safe_delta = torch.where(chromatic, delta, 1.0)
    hue = torch.where(
        blue == value,
        4 + (red - green) / safe_delta,
        torch.where(green == value, 2 + (blue - red) / safe_delta, (green - blue) / safe_delta),
    )
    hue = torch.where(chromatic, (hue / 6).remainder(1), 0.0)
    saturation = torch.where(chromatic, delta / torch.where(chromatic, value, 1.0), 0.0)
    return torch.stack((hue, saturation, value), 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """scikit-image ``hsv2rgb`` on ``[N, 3, H, W]``."""
    hue, saturation, value = hsv.unbind(1)
    sector = torch.floor(hue * 6)
    frac = hue * 6 - sector
    candidates = torch.stack(
        (value, value * (1 - (1 - frac) * saturation), value * (1 - saturation), value * (1 - frac * saturation)), 1
    )  # v, t, p, q
    sources = torch.tensor(_SECTOR_SOURCES, device=hsv.device)[:, sector.long().remainder(6)]  # [3, N, H, W]
    return candidates.gather(1, sources.transpose(0, 1))


def _unit64(images: torch.Tensor) -> torch.Tensor:
    """Float64 [0, 1] images: the HSV round trip often lands exactly on an 8-bit level, which
    float32 misses by one ulp in ~5 % of the values (the reference computes in float64)."""
    return images.double() / 255


@register_corruption("brightness", "weather", [{"value_shift": c} for c in (0.05, 0.1, 0.15, 0.2, 0.3)])
def brightness(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Add ``value_shift`` to the HSV value channel (clipped to 1)."""
    hsv = rgb_to_hsv(_unit64(images))
    hsv[:, 2] = (hsv[:, 2] + p["value_shift"]).clamp(0, 1)
    return floor_to_uint8(hsv_to_rgb(hsv))


@register_corruption(
    "saturate",
    "digital",
    [{"factor": a, "shift": b} for a, b in ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))],
)
def saturate(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """HSV saturation s becomes clip(s * factor + shift, 0, 1)."""
    hsv = rgb_to_hsv(_unit64(images))
    hsv[:, 1] = (hsv[:, 1] * p["factor"] + p["shift"]).clamp(0, 1)
    return floor_to_uint8(hsv_to_rgb(hsv))


@register_corruption("contrast", "digital", [{"factor": c} for c in (0.75, 0.5, 0.4, 0.3, 0.15)])
def contrast(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Shrink every channel towards its own mean by ``factor``."""
    x = to_unit(images)
    means = x.mean((2, 3), keepdim=True)
    return floor_to_uint8((x - means) * p["factor"] + means)


# --- compression and resolution ---------------------------------------------------------------------


@register_corruption("jpeg_compression", "digital", [{"quality": q} for q in (80, 65, 58, 50, 40)])
def jpeg_compression(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """JPEG encode + decode at ``quality`` (libjpeg through torchvision's batched list API, on CPU)."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg  # loads torchvision on first use only

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io is deprecated, still fastest here
        encoded = encode_jpeg(list(images.cpu()), quality=p["quality"])
        decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB)
    return torch.stack(decoded).to(images.device)


@lru_cache(maxsize=32)
def pil_box_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """Pillow's ``Image.BOX`` resampling of one axis as an ``out_size x in_size`` matrix: output
    pixel i averages the input pixels whose centres fall in ((i + 0.5) * scale +- support], where
    support is half a pixel for enlarging (nearest neighbour) and half the scale for shrinking."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    matrix = np.zeros((out_size, in_size))
    for out in range(out_size):
        centre = (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        position = (np.arange(first, last) + 0.5 - centre) / filter_scale
        matrix[out, first:last] = (position > -0.5) & (position <= 0.5)
    return torch.from_numpy(matrix / matrix.sum(1, keepdims=True)).float()


def _round_half_up(x: torch.Tensor) -> torch.Tensor:
    """Pillow's 8-bit rounding after each resampling pass."""
    return torch.floor(x + 0.5).clamp_(0, 255)


@register_corruption("pixelate", "digital", [{"factor": c} for c in (0.95, 0.9, 0.85, 0.75, 0.65)])
def pixelate(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Pillow BOX resize to ``int(32 * factor)`` pixels and back: an average over the pixels
    under each small pixel (width pass, then height pass, 8-bit in between), then nearest-neighbour
    enlarging (what BOX does when enlarging)."""
    size = images.shape[-1]
    small = int(size * p["factor"])
    shrink = pil_box_matrix(size, small).to(images.device)
    nearest = pil_box_matrix(small, size).argmax(1).to(images.device)
    x = _round_half_up(images.float() @ shrink.T)
    x = _round_half_up(shrink @ x)
    return x.index_select(2, nearest).index_select(3, nearest).to(torch.uint8)


# --- elastic ----------------------------------------------------------------------------------------

_ANCHORS = ((26.0, 26.0), (26.0, 6.0), (6.0, 6.0))  # (x, y): centre 16 +- 32 // 3, as the reference


def _sample(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Bilinear samples of ``x`` at pixel coordinates ``[N, H, W]`` with mirrored borders: about the
    edge pixels (OpenCV reflect-101) if ``align_corners``, else about the image edges (scipy reflect)."""
    height, width = x.shape[-2:]
    if align_corners:
        grid = torch.stack((cols * (2 / (width - 1)) - 1, rows * (2 / (height - 1)) - 1), -1)
    else:
        grid = torch.stack(((2 * cols + 1) / width - 1, (2 * rows + 1) / height - 1), -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=align_corners)


def _pixel_grid(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height, device=like.device, dtype=like.dtype)
    cols = torch.arange(width, device=like.device, dtype=like.dtype)
    return torch.meshgrid(rows, cols, indexing="ij")


def elastic_warp(x: torch.Tensor, moved: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor) -> torch.Tensor:
    """The reference's two warps of ``x`` ``[N, C, H, W]``: OpenCV ``warpAffine`` by the affine map
    taking the anchor points to ``moved`` ``[N, 3, 2]`` (bilinear, reflect-101 borders), then
    scipy ``map_coordinates`` at (row + shift_y, col + shift_x) (bilinear, reflect borders)."""
    n, _, height, width = x.shape
    anchors = torch.tensor(_ANCHORS, device=x.device, dtype=x.dtype)
    ones = torch.ones(n, 3, 1, device=x.device, dtype=x.dtype)
    # the inverse map (output -> source) solved from the three correspondences directly
    inverse = torch.linalg.solve(torch.cat((moved, ones), 2), anchors.expand(n, 3, 2))  # [N, 3, 2]
    rows, cols = _pixel_grid(height, width, x)
    points = torch.stack((cols, rows, torch.ones_like(cols)), -1).view(1, -1, 3)
    source = (points @ inverse).view(n, height, width, 2)
    warped = _sample(x, source[..., 1], source[..., 0], align_corners=True)
    return _sample(warped, rows + shift_y, cols + shift_x, align_corners=False)


@register_corruption(
    "elastic_transform",
    "digital",
    [
        {"alpha": 32 * a, "sigma": 32 * s, "affine": 32 * b}
        for a, s, b in ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
    ],
)
def elastic_transform(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """A random affine warp (three anchor points moved by U(-affine, affine) each), then a
    displacement field of uniform noise smoothed by a Gaussian of ``sigma`` (scipy ``reflect``
    borders, truncated at 3 sigma) and scaled by ``alpha`` pixels."""
    x = to_unit(images)
    n, _, height, width = x.shape
    moved = torch.tensor(_ANCHORS, device=x.device) + uniform(generator, (n, 3, 2), -p["affine"], p["affine"])
    fields = uniform(generator, (2, n, height, width), -1.0, 1.0)
    shift_x, shift_y = gaussian_filter(fields, p["sigma"], mode="reflect", truncate=3.0) * p["alpha"]
    return floor_to_uint8(elastic_warp(x, moved, shift_y, shift_x))
