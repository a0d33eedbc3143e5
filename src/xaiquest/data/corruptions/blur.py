"""Blur corruptions and the filtering primitives the other families reuse.

Filters are expressed once per batch: a 1-D filter along an axis, border handling included, is
a 32 x 32 matrix, so a separable Gaussian is two small matrix products and a 2-D kernel a sum of
such pairs (one per singular value); zoom blur is one precomputed 1024 x 1024 operator (applied
block by block over its band); the per-image motion kernels are a sum over the kernel's taps of
per-image shifted copies.
Border handling follows the tool the reference used for each step (scipy.ndimage/scikit-image
``nearest`` or ``reflect``, OpenCV's default ``BORDER_REFLECT_101``, ImageMagick's edge pixels).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from xaiquest.data.corruptions.engine import Params, floor_to_uint8, register_corruption, to_unit, uniform

# --- filtering primitives ----------------------------------------------------------------------------


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's sampled Gaussian: radius ``int(truncate * sigma + 0.5)``, normalised to sum 1."""
    radius = int(truncate * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return np.ones(1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return taps / taps.sum()


def padded_index(size: int, radius: int, mode: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """Source index of each position of a length-``size`` signal extended by ``radius`` per side.

    ``nearest`` repeats the edge value, ``reflect`` mirrors including the edge (scipy
    ``reflect``, OpenCV ``BORDER_REFLECT``), ``mirror`` mirrors about the edge pixel (scipy
    ``mirror``, OpenCV ``BORDER_REFLECT_101``); extensions wider than the signal keep mirroring.
    """
    index = torch.arange(-radius, size + radius, device=device)
    if mode == "nearest":
        return index.clamp(0, size - 1)
    if mode == "reflect":
        index = index.remainder(2 * size)
        return torch.where(index < size, index, 2 * size - 1 - index)
    if mode == "mirror":
        index = index.remainder(2 * size - 2)
        return torch.where(index < size, index, 2 * size - 2 - index)
    raise ValueError(f"unknown border mode {mode!r}; available: nearest, reflect, mirror")


@lru_cache(maxsize=64)
def _axis_operator(size: int, kernel: tuple[float, ...], mode: str) -> torch.Tensor:
    matrix = torch.zeros(size, size, dtype=torch.float64)
    rows = torch.arange(size)
    source = padded_index(size, (len(kernel) - 1) // 2, mode)
    for tap, weight in enumerate(kernel):
        matrix.index_put_((rows, source[rows + tap]), torch.full((size,), weight, dtype=torch.float64), accumulate=True)
    return matrix


def axis_operator(size: int, kernel: np.ndarray, mode: str, like: torch.Tensor) -> torch.Tensor:
    """``size x size`` matrix of the 1-D correlation with an odd ``kernel`` under border ``mode``,
    so that filtering a whole batch along an axis is one small matrix product."""
    return _axis_operator(size, tuple(float(w) for w in kernel), mode).to(device=like.device, dtype=like.dtype)


def filter_separable(x: torch.Tensor, kernel: np.ndarray, mode: str) -> torch.Tensor:
    """Correlate the last two dims of ``x`` with the 1-D ``kernel`` along both axes."""
    if len(kernel) == 1:
        return x * float(kernel[0])
    rows = axis_operator(x.shape[-2], kernel, mode, x)
    cols = axis_operator(x.shape[-1], kernel, mode, x)
    return rows @ x @ cols.T


def filter_2d(x: torch.Tensor, kernel: np.ndarray, mode: str) -> torch.Tensor:
    """Correlate the last two dims of ``x`` with an odd 2-D ``kernel`` (OpenCV ``filter2D``), as a
    sum of separable filters: one per singular value of the kernel (at most its size, 1 for a box)."""
    left, singular, right = np.linalg.svd(kernel)
    out = torch.zeros_like(x)
    for k in np.flatnonzero(singular > 1e-12 * singular[0]):
        rows = axis_operator(x.shape[-2], left[:, k] * singular[k], mode, x)
        cols = axis_operator(x.shape[-1], right[k], mode, x)
        out += rows @ x @ cols.T
    return out


def gaussian_filter(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """scikit-image ``gaussian`` over the last two dims (its default border is ``nearest``)."""
    return filter_separable(x, gaussian_kernel1d(sigma, truncate), mode)


def motion_kernel(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick's one-sided motion-blur weights: ``2*ceil(radius)+1`` taps exp(-i^2 / 2 sigma^2)."""
    taps = np.arange(2 * math.ceil(radius) + 1)
    weights = np.exp(-(taps**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def motion_blur_batch(x: torch.Tensor, weights: np.ndarray, angles: torch.Tensor) -> torch.Tensor:
    """ImageMagick ``MotionBlurImage`` of every image along its own angle (degrees), edge pixels
    repeated: tap i samples the pixel (round(i cos a), round(i sin a)) away, rounding halves down.

    Computed as one weighted sum per tap of shifted copies, each copy gathered as contiguous
    image rows at a per-image offset into a padded ``[N, H, C, W]`` layout.
    """
    n, channels, height, width = x.shape
    steps = torch.arange(len(weights), device=x.device, dtype=torch.float64)
    radians = torch.deg2rad(angles.to(torch.float64)).unsqueeze(1)
    shift_x = torch.ceil(steps * torch.cos(radians) - 0.5).long()  # [N, taps]
    shift_y = torch.ceil(steps * torch.sin(radians) - 0.5).long()
    top, bottom = max(0, -int(shift_y.min())), max(0, int(shift_y.max()))  # pad only as far as taps reach
    left, right = max(0, -int(shift_x.min())), max(0, int(shift_x.max()))
    padded = F.pad(x, (left, right, top, bottom), mode="replicate").permute(0, 2, 1, 3).contiguous()
    padded_h, padded_w = height + top + bottom, width + left + right
    storage = padded.view(-1)
    runs = storage.as_strided((storage.numel() - width + 1, width), (1, 1))  # every run of `width` values
    image_start = torch.arange(n, device=x.device) * padded_h * channels * padded_w
    row_start = (torch.arange(height, device=x.device) + top) * channels * padded_w
    channel_start = torch.arange(channels, device=x.device) * padded_w
    start = image_start.view(n, 1, 1) + row_start.view(1, height, 1) + channel_start.view(1, 1, channels) + left
    shift = shift_y * channels * padded_w + shift_x  # [N, taps]
    out = torch.zeros(n * height * channels, width, dtype=x.dtype, device=x.device)
    for tap, weight in enumerate(weights.tolist()):
        out.add_(runs.index_select(0, (start + shift[:, tap].view(n, 1, 1)).view(-1)), alpha=weight)
    return out.view(n, height, channels, width).permute(0, 2, 1, 3).contiguous()


def imagemagick_8bit(x: torch.Tensor) -> torch.Tensor:
    """ImageMagick's (Q16) 8-bit result of a filter value ``x`` in [0, 255]: rounded to 16 bits
    (x 257), then truncated to 8 bits on writing the PNG."""
    return torch.floor(torch.floor(x * 257 + 0.5) / 257).clamp_(0, 255)


def clipped_zoom_matrix(size: int, factor: float) -> np.ndarray:
    """The reference's ``clipped_zoom`` of one axis as a ``size x size`` matrix: crop the central
    ``ceil(size / factor)`` pixels, zoom them with scipy's order-1 ``zoom`` (corner-aligned linear
    interpolation to ``round(crop * factor)`` pixels) and keep the central ``size``."""
    crop = math.ceil(size / factor)
    top = (size - crop) // 2
    zoomed = round(crop * factor)
    trim = (zoomed - size) // 2
    source = np.arange(trim, trim + size) * (crop - 1) / (zoomed - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, crop - 1)
    frac = source - low
    matrix = np.zeros((size, size))
    np.add.at(matrix, (np.arange(size), top + low), 1 - frac)
    np.add.at(matrix, (np.arange(size), top + high), frac)
    return matrix


_ZOOM_BLOCKS = 8  # output pixels per block: 4 image rows


@lru_cache(maxsize=16)
def zoom_blur_operator(size: int, factors: tuple[float, ...]) -> tuple[torch.Tensor, tuple[tuple[int, int], ...]]:
    """Transposed ``size^2 x size^2`` operator of zoom blur, (x + sum of clipped zooms) / (K + 1),
    and for each block of output pixels the range of input pixels it reads: zooms of at most
    1.25 move a pixel by a few pixels, so each block reads a band of the input."""
    total = np.eye(size * size)
    for factor in factors:
        axis = clipped_zoom_matrix(size, factor)
        total += np.kron(axis, axis)
    operator = total.T / (len(factors) + 1)
    width = size * size // _ZOOM_BLOCKS
    bands = []
    for block in range(_ZOOM_BLOCKS):
        reads = np.flatnonzero(operator[:, block * width : (block + 1) * width].any(1))
        bands.append((int(reads[0]), int(reads[-1]) + 1))
    return torch.from_numpy(operator).float(), tuple(bands)


def apply_zoom_blur(flat: torch.Tensor, factors: tuple[float, ...]) -> torch.Tensor:
    """``flat`` ``[M, size^2]`` through the zoom-blur operator, one matrix product per block of
    output pixels over its input band only (4x fewer multiply-adds than the dense product)."""
    operator, bands = zoom_blur_operator(math.isqrt(flat.shape[1]), factors)
    operator = operator.to(flat.device)
    width = operator.shape[1] // len(bands)
    blocks = [flat[:, lo:hi] @ operator[lo:hi, b * width : (b + 1) * width] for b, (lo, hi) in enumerate(bands)]
    return torch.cat(blocks, 1)


DENSE_ZOOM_MAX = 32
"""Largest side for the dense zoom-blur operator: it has side^4 entries (1 M at 32 px, 2.5 G at 224)."""


def separable_zoom_blur(x: torch.Tensor, factors: tuple[float, ...]) -> torch.Tensor:
    """The same average for larger images, each clipped zoom applied as ``A @ x @ A.T`` (the
    reference zooms rows and columns alike), so memory and time grow with side^3, not side^4."""
    total = x.clone()
    for factor in factors:
        axis = torch.as_tensor(clipped_zoom_matrix(x.shape[-1], factor), dtype=x.dtype, device=x.device)
        total += axis @ x @ axis.T
    return total / (len(factors) + 1)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's defocus ``disk``: the pixels within ``radius`` averaged, then smoothed by a
    3x3 Gaussian of ``alias_blur`` (OpenCV ``GaussianBlur``); cropped to its non-zero support
    (the reference's 17x17 grid adds only zeros)."""
    half = math.ceil(radius) + 1
    grid = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    smooth = np.exp(-(np.arange(-1, 2) ** 2) / (2.0 * alias_blur**2))
    smooth /= smooth.sum()
    kernel = np.zeros_like(disk)
    for dy in range(3):
        for dx in range(3):
            kernel += smooth[dy] * smooth[dx] * np.roll(disk, (dy - 1, dx - 1), axis=(0, 1))
    support = np.flatnonzero(kernel.sum(axis=0) > 0)
    trim = min(support[0], len(grid) - 1 - support[-1])
    return kernel[trim : len(grid) - trim, trim : len(grid) - trim]


def glass_offsets(n: int, max_delta: int, iterations: int, generator: torch.Generator, size: int) -> torch.Tensor:
    """Offsets ``[iterations, 2 (dy, dx), n, size, size]`` from ``randint(-max_delta, max_delta)``
    (high exclusive, as NumPy's: -1 or 0 for max_delta 1), one per pixel and iteration."""
    shape = (iterations, 2, n, size, size)
    return torch.randint(-max_delta, max_delta, shape, generator=generator, device=generator.device)


def glass_shuffle(x: torch.Tensor, offsets: torch.Tensor, max_delta: int) -> torch.Tensor:
    """The reference's local pixel "swap" loop, vectorised exactly.

    The reference visits rows and columns ``size - max_delta`` down to ``max_delta + 1`` and runs
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with (h', w') = (h + dy, w + dx). On NumPy pixel
    views that tuple assignment copies rather than swaps: ``x[h, w]`` takes the value of
    ``x[h', w']``, which keeps its own. With max_delta 1 the source lies up or left of the visited
    pixel, so it has not been visited yet and still holds its value from the start of the
    iteration: each iteration is one parallel gather. (Larger deltas would read visited pixels,
    so the loop would not be parallel; no severity uses them.)
    """
    if max_delta != 1:
        raise ValueError(f"glass_shuffle reproduces the reference loop only for max_delta=1, got {max_delta}")
    n, channels, height, width = x.shape
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    visited = (rows > max_delta) & (rows <= height - max_delta) & (cols > max_delta) & (cols <= width - max_delta)
    flat = x.reshape(n, channels, height * width)
    for shift_y, shift_x in offsets:
        source = (rows + shift_y * visited) * width + cols + shift_x * visited
        flat = flat.gather(2, source.view(n, 1, -1).expand(n, channels, -1))
    return flat.view_as(x)


# --- corruptions ------------------------------------------------------------------------------------


@register_corruption(
    "defocus_blur",
    "blur",
    [{"radius": r, "alias_blur": a} for r, a in ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))],
)
def defocus_blur(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Convolution with an anti-aliased disk (OpenCV ``filter2D``, reflect-101 borders)."""
    return floor_to_uint8(filter_2d(to_unit(images), disk_kernel(p["radius"], p["alias_blur"]), "mirror"))


@register_corruption(
    "glass_blur",
    "blur",
    [
        {"sigma": s, "max_delta": d, "iterations": i}
        for s, d, i in ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
    ],
)
def glass_blur(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur, 8-bit quantisation, local pixel shuffling, Gaussian blur again."""
    blurred = floor_to_uint8(gaussian_filter(to_unit(images), p["sigma"]))
    offsets = glass_offsets(images.shape[0], p["max_delta"], p["iterations"], generator, images.shape[-1])
    shuffled = glass_shuffle(blurred, offsets, p["max_delta"])
    return floor_to_uint8(gaussian_filter(to_unit(shuffled), p["sigma"]))


@register_corruption(
    "motion_blur",
    "blur",
    [{"radius": r, "sigma": s} for r, s in ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))],
)
def motion_blur(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """ImageMagick motion blur at an angle drawn uniformly from (-45, 45) degrees per image."""
    angles = uniform(generator, (images.shape[0],), -45.0, 45.0)
    weights = motion_kernel(p["radius"], p["sigma"])
    return imagemagick_8bit(motion_blur_batch(images.float(), weights, angles)).to(torch.uint8)


def _reference_zoom_factors(stop: float) -> tuple[float, ...]:
    """``np.arange(1, stop, 0.01)`` exactly as the reference evaluates it (floating-point rounding
    gives 7, 12, 16, 21 and 26 factors, up to 1.06, 1.11, 1.15, 1.20 and 1.25)."""
    return tuple(float(f) for f in np.arange(1, stop, 0.01))


@register_corruption(
    "zoom_blur",
    "blur",
    [{"zoom_factors": _reference_zoom_factors(stop)} for stop in (1.06, 1.11, 1.16, 1.21, 1.26)],
)
def zoom_blur(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Average of the image and its central zooms by each factor: one linear operator per batch."""
    n, channels, height, width = images.shape
    if width > DENSE_ZOOM_MAX:
        return floor_to_uint8(separable_zoom_blur(to_unit(images), p["zoom_factors"]))
    flat = to_unit(images).view(n * channels, height * width)
    return floor_to_uint8(apply_zoom_blur(flat, p["zoom_factors"]).view_as(images))


@register_corruption("gaussian_blur", "blur", [{"sigma": s} for s in (0.4, 0.6, 0.7, 0.8, 1.0)])
def gaussian_blur(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """scikit-image ``gaussian`` (radius ``int(4 sigma + 0.5)``, nearest borders)."""
    return floor_to_uint8(gaussian_filter(to_unit(images), p["sigma"]))
