"""Weather corruptions: fog, frost, snow and spatter, with their random layers drawn for the whole batch.

The reference builds each random layer per image (a diamond-square heightmap for fog, a crop of a
frost photograph, a motion-blurred snow layer from ImageMagick, an OpenCV-embossed liquid layer
for spatter). Here each layer is one ``[N, ...]`` tensor; frost crops the reference's own
photographs, shipped in ``frost/`` (Apache-2.0, see the LICENSE there and the repository's NOTICE).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from xaiquest.data.corruptions.blur import (
    clipped_zoom_matrix,
    filter_2d,
    gaussian_filter,
    imagemagick_8bit,
    motion_blur_batch,
    motion_kernel,
)
from xaiquest.data.corruptions.engine import (
    Params,
    floor_to_uint8,
    normal,
    register_corruption,
    to_unit,
    uniform,
)
from xaiquest.data.corruptions.sizing import size_position

_SIZE = 32
_GRAY = (0.299, 0.587, 0.114)  # OpenCV RGB2GRAY weights


def plasma_fractal(n: int, decay: float, generator: torch.Generator, size: int = _SIZE) -> torch.Tensor:
    """``n`` diamond-square heightmaps in [0, 1] (``[n, size, size]``), the reference's ``plasma_fractal``:
    midpoints get the mean of their neighbours plus wibble * U(-wibble, wibble), with wibble starting
    at 100 and divided by ``decay`` per octave (a smaller decay keeps more fine detail)."""
    maps = torch.zeros(n, size, size, device=generator.device)
    step, wibble = size, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        return total / 4 + wibble * uniform(generator, total.shape, -wibble, wibble)

    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]
        squares = corners + corners.roll(-1, 1)
        maps[:, half::step, half::step] = wibbled_mean(squares + squares.roll(-1, 2))
        centres = maps[:, half::step, half::step]
        maps[:, ::step, half::step] = wibbled_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        maps[:, half::step, ::step] = wibbled_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step //= 2
        wibble /= decay
    maps -= maps.amin((1, 2), keepdim=True)
    return maps / maps.amax((1, 2), keepdim=True)


def fractal_of_size(n: int, decay: float, generator: torch.Generator, size: int) -> torch.Tensor:
    """``plasma_fractal`` on the next power of two >= ``size``, cropped (ImageNet-C: 256 cropped to 224)."""
    return plasma_fractal(n, decay, generator, max(_SIZE, 1 << (size - 1).bit_length()))[:, :size, :size]


FROST_PHOTOS: tuple[str, ...] = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
FROST_DRAWN = 5
"""The reference draws ``np.random.randint(5)``: frost6.jpg is shipped with the others but never picked."""
FROST_SCALE = 0.2  # the reference's cv2.resize(frost, (0, 0), fx=0.2, fy=0.2)


@lru_cache(maxsize=1)
def _frost_originals() -> tuple[np.ndarray, ...]:
    """The drawable frost photographs as OpenCV reads them (BGR, full size). Read once per process."""
    folder = files("xaiquest.data.corruptions") / "frost"
    photos = []
    for name in FROST_PHOTOS[:FROST_DRAWN]:
        bgr = cv2.imread(str(folder / name))
        if bgr is None:
            raise FileNotFoundError(f"frost photograph {folder / name} is missing; reinstall xaiquest")
        photos.append(bgr)
    return tuple(photos)


def frost_scale(size: int) -> float:
    """How much the photographs are resized for ``size``-px images: CIFAR-10-C's 0.2 up to 32 px,
    ImageNet-C's full size (1.0) from 224 px, log-interpolated by ``size_position`` in between (as
    every other parameter, ``sizing.py``); never so small that a photo has no room for a crop (above
    224 px, or for smaller photographs, the photos are enlarged until the shortest side is ``size + 1``)."""
    t = size_position(size)
    shortest = min(min(photo.shape[:2]) for photo in _frost_originals())
    return max((1 - t) * FROST_SCALE + t * 1.0, (size + 1) / shortest)


@lru_cache(maxsize=4)
def frost_photos(scale: float = FROST_SCALE) -> tuple[torch.Tensor, torch.Tensor]:
    """The drawable frost photographs as the reference prepares them (OpenCV read, bilinear resize by
    ``scale``, 0.2 in CIFAR-10-C, BGR -> RGB): uint8 ``[FROST_DRAWN, H_max, W_max, 3]`` zero-padded to
    the largest, and each photo's ``(height, width)`` as int64 ``[FROST_DRAWN, 2]``."""
    photos = [cv2.resize(bgr, (0, 0), fx=scale, fy=scale)[..., ::-1] for bgr in _frost_originals()]
    sizes = torch.tensor([photo.shape[:2] for photo in photos])
    stack = torch.zeros(len(photos), *sizes.amax(0).tolist(), 3, dtype=torch.uint8)
    for index, photo in enumerate(photos):
        stack[index, : photo.shape[0], : photo.shape[1]] = torch.from_numpy(np.ascontiguousarray(photo))
    return stack, sizes


def frost_crops(n: int, generator: torch.Generator, size: int = _SIZE) -> torch.Tensor:
    """``n`` random ``size x size`` crops of the frost photographs (resized by ``frost_scale(size)``),
    uint8 ``[n, 3, size, size]``: the reference's photo ``randint(5)`` and corner
    ``randint(0, h - size), randint(0, w - size)`` (upper bounds exclusive), all gathered at once from
    the padded stack."""
    device = generator.device
    stack, sizes = (t.to(device) for t in frost_photos(frost_scale(size)))
    pick = torch.randint(0, len(stack), (n,), generator=generator, device=device)
    room = sizes[pick] - size  # [n, 2], >= 1 by frost_scale
    corner = (uniform(generator, (n, 2), 0.0, 1.0) * room).long().minimum(room - 1)
    offsets = torch.arange(size, device=device)
    rows = (corner[:, 0:1] + offsets).view(n, size, 1)
    cols = (corner[:, 1:2] + offsets).view(n, 1, size)
    return stack[pick.view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)


def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma ``[N, 1, H, W]`` of RGB ``[N, 3, H, W]`` (OpenCV ``COLOR_RGB2GRAY``)."""
    weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


# --- spatter's OpenCV pipeline, batched -----------------------------------------------------------

_TAN_22_5 = int(0.4142135623730950488 * (1 << 15) + 0.5)  # OpenCV Canny's fixed-point tan(22.5 deg)
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_EMBOSS = np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
_BOX_3 = np.full((3, 3), 1 / 9)


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """3x3 binary dilation of ``[N, H, W]``."""
    wide = mask.clone()
    wide[..., 1:] |= mask[..., :-1]
    wide[..., :-1] |= mask[..., 1:]
    out = wide.clone()
    out[:, 1:] |= wide[:, :-1]
    out[:, :-1] |= wide[:, 1:]
    return out


def canny(image: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV ``Canny`` (3x3 Sobel with replicated borders, L1 magnitude, non-maximum suppression
    in four directions, hysteresis over 8-neighbours) of 8-bit-valued ``[N, H, W]``; bool edges."""
    padded = F.pad(image.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1).int()
    across = padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]  # Sobel: smooth rows ...
    grad_x = across[..., 2:] - across[..., :-2]  # ... differentiate columns
    along = padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:]
    grad_y = along[:, 2:] - along[:, :-2]
    magnitude = grad_x.abs() + grad_y.abs()
    around = F.pad(magnitude, (1, 1, 1, 1))  # neighbours outside the image count as 0
    height, width = magnitude.shape[-2:]

    def neighbour(dy: int, dx: int) -> torch.Tensor:
        return around[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    tan_x = grad_x.abs() * _TAN_22_5
    scaled_y = grad_y.abs() << 15
    horizontal = scaled_y < tan_x
    vertical = scaled_y > tan_x + (grad_x.abs() << 16)
    falling = (grad_x < 0) != (grad_y < 0)  # gradient along the anti-diagonal
    diagonal_a = torch.where(falling, neighbour(-1, 1), neighbour(-1, -1))
    diagonal_b = torch.where(falling, neighbour(1, -1), neighbour(1, 1))
    is_peak = torch.where(
        horizontal,
        (magnitude > neighbour(0, -1)) & (magnitude >= neighbour(0, 1)),
        torch.where(
            vertical,
            (magnitude > neighbour(-1, 0)) & (magnitude >= neighbour(1, 0)),
            (magnitude > diagonal_a) & (magnitude > diagonal_b),
        ),
    )
    candidate = is_peak & (magnitude > int(low))
    edges = candidate & (magnitude > int(high))
    while True:  # hysteresis: grow strong edges through connected candidates until stable
        grown = candidate & _dilate(edges)
        if torch.equal(grown, edges):
            return edges
        edges = grown


# OpenCV's 5x5 chamfer metric for DIST_L2 (steps 1, 1.4 and 2.1969 px) in its 16-bit fixed point
_CHAMFER_STEP, _CHAMFER_DIAGONAL, _CHAMFER_KNIGHT = 65536, 91750, 143976
_CHAMFER_FAR = 1 << 30


def chamfer_distance(zero: torch.Tensor) -> torch.Tensor:
    """OpenCV ``distanceTransform(DIST_L2, 5)``: distance of every pixel of ``[N, H, W]`` to the
    nearest True pixel of ``zero`` (``2^14`` where there is none), in pixels.

    OpenCV makes a forward and a backward raster pass; within a row each pixel also relaxes from
    its horizontal neighbour (step 1), a running minimum of ``candidate - x`` that ``cummin``
    solves, so each pass is one vectorised step per row.
    """
    n, height, width = zero.shape
    step, diagonal, knight = _CHAMFER_STEP, _CHAMFER_DIAGONAL, _CHAMFER_KNIGHT
    rows = torch.where(zero, 0, _CHAMFER_FAR).int().permute(1, 0, 2)  # [H, N, W]: rows contiguous
    done = F.pad(rows, (2, 2, 0, 0, 2, 2), value=_CHAMFER_FAR)  # 2 far rows and columns around
    ramp = torch.arange(width, device=zero.device, dtype=torch.int32) * step

    def relax(y: int, near: int, far: int, backward: bool) -> None:
        """Update row ``y`` from rows ``near`` (1 away) and ``far`` (2 away), then along the row."""
        r1, r2 = done[near], done[far]
        candidate = torch.minimum(done[y, :, 2:-2], r1[:, 2:-2] + step)
        candidate = torch.minimum(candidate, torch.minimum(r1[:, 1:-3], r1[:, 3:-1]) + diagonal)
        candidate = torch.minimum(candidate, torch.minimum(r1[:, :-4], r1[:, 4:]) + knight)
        candidate = torch.minimum(candidate, torch.minimum(r2[:, 1:-3], r2[:, 3:-1]) + knight)
        if backward:
            done[y, :, 2:-2] = (candidate + ramp).flip(-1).cummin(-1).values.flip(-1) - ramp
        else:
            done[y, :, 2:-2] = (candidate - ramp).cummin(-1).values + ramp

    for y in range(2, height + 2):
        relax(y, y - 1, y - 2, backward=False)
    for y in range(height + 1, 1, -1):
        relax(y, y + 1, y + 2, backward=True)
    return done[2:-2, :, 2:-2].permute(1, 0, 2).float() / step


def equalize_hist(image: torch.Tensor) -> torch.Tensor:
    """OpenCV ``equalizeHist`` of each 8-bit-valued image in ``[N, 1, H, W]``."""
    n = image.shape[0]
    values = image.reshape(n, -1).long()
    ones = torch.ones_like(values, dtype=torch.float32)
    hist = torch.zeros(n, 256, device=image.device).scatter_add_(1, values, ones)
    first = (hist > 0).float().argmax(1, keepdim=True)
    first_count = hist.gather(1, first)
    # OpenCV rounds sum * scale computed in float32: emulate both roundings exactly
    scale = (255 / (values.shape[1] - first_count.double()).clamp_min(1)).float()
    lut = ((hist.cumsum(1) - first_count).double() * scale.double()).float().round()
    constant = first_count == values.shape[1]  # OpenCV leaves a one-valued image unchanged
    lut = torch.where(constant, torch.arange(256, device=image.device, dtype=torch.float32), lut)
    return lut.gather(1, values).view_as(image)


def wrap_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The reference's ``(x * 255).astype(np.uint8)`` of non-negative ``x``: truncated and, above
    255, wrapped modulo 256 as NumPy's C cast does on x86 (1.2 becomes 306 - 256 = 50), kept as
    floats. Severity-3 spatter's liquid exceeds 1; the wrap is kept for comparability with
    published CIFAR-10-C numbers."""
    return torch.floor(x * 255).remainder_(256)


def water_drops(liquid: torch.Tensor, intensity: float) -> torch.Tensor:
    """Spatter's water layer ``[N, 1, H, W]`` in [0, intensity]: the liquid, as the reference's
    wrapped 8-bit layer, shaded by an embossed, histogram-equalised distance-to-edge map (OpenCV
    pipeline of the reference)."""
    liquid = wrap_to_uint8(liquid)
    edges = canny(liquid.squeeze(1), 50, 150)
    distance = chamfer_distance(edges).clamp_max(20).unsqueeze(1)
    distance = torch.floor(filter_2d(distance, _BOX_3, "mirror") + 1e-4)
    distance = equalize_hist(distance)
    distance = filter_2d(distance, _EMBOSS, "mirror").clamp(0, 255)
    distance = filter_2d(distance, _BOX_3, "mirror").round()
    shade = liquid * distance
    return shade / shade.amax((2, 3), keepdim=True).clamp_min(1e-12) * intensity


# --- corruptions ------------------------------------------------------------------------------------


@register_corruption(
    "fog",
    "weather",
    [{"thickness": t, "decay": d} for t, d in ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))],
)
def fog(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Add a plasma heightmap, then rescale so the image's peak value is kept."""
    x = to_unit(images)
    peak = x.amax((1, 2, 3), keepdim=True)
    fogged = x + p["thickness"] * fractal_of_size(x.shape[0], p["decay"], generator, x.shape[-1]).unsqueeze(1)
    return floor_to_uint8(fogged * peak / (peak + p["thickness"]))


@register_corruption(
    "frost",
    "weather",
    [{"image_weight": a, "frost_weight": b} for a, b in ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))],
)
def frost(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Blend the image with a crop of a frost photograph: image_weight * x + frost_weight * frost,
    in float64 on the 0..255 scale and truncated to uint8, the reference's exact arithmetic; the crop
    is as large as the image (``frost_crops``)."""
    crops = frost_crops(images.shape[0], generator, images.shape[-1])
    blend = p["image_weight"] * images.double() + p["frost_weight"] * crops.double()
    return blend.clamp_(0, 255).to(torch.uint8)


@register_corruption(
    "snow",
    "weather",
    [
        {"loc": a, "scale": b, "zoom": z, "threshold": t, "blur_radius": r, "blur_sigma": s, "blend": k}
        for a, b, z, t, r, s, k in (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        )
    ],
)
def snow(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """Gaussian flakes, zoomed and thresholded, motion-blurred downward (8-bit, as the reference's
    PNG round trip through ImageMagick), added twice (also rotated by 180 degrees) to the image
    brightened towards 1.5 * gray + 0.5."""
    x = to_unit(images)
    n = x.shape[0]
    size = x.shape[-1]
    flakes = normal(generator, (n, 1, size, size), p["loc"], p["scale"])
    zoom = torch.as_tensor(clipped_zoom_matrix(size, p["zoom"]), dtype=x.dtype, device=x.device)
    flakes = zoom @ flakes @ zoom.T
    flakes = torch.where(flakes < p["threshold"], 0.0, flakes).clamp(0, 1).mul(255).floor()
    angles = uniform(generator, (n,), -135.0, -45.0)
    weights = motion_kernel(p["blur_radius"], p["blur_sigma"])
    flakes = imagemagick_8bit(motion_blur_batch(flakes, weights, angles)) / 255
    lifted = torch.maximum(x, gray(x) * 1.5 + 0.5)
    x = p["blend"] * x + (1 - p["blend"]) * lifted
    return floor_to_uint8(x + flakes + flakes.flip(2, 3))


_WATER = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
_MUD = (63 / 255, 42 / 255, 20 / 255)


@register_corruption(
    "spatter",
    "weather",
    [
        {"liquid": "water", "loc": 0.62, "scale": 0.1, "sigma": 0.7, "threshold": 0.7, "intensity": 0.5},
        {"liquid": "water", "loc": 0.65, "scale": 0.1, "sigma": 0.8, "threshold": 0.7, "intensity": 0.5},
        {"liquid": "water", "loc": 0.65, "scale": 0.3, "sigma": 1, "threshold": 0.69, "intensity": 0.5},
        {"liquid": "mud", "loc": 0.65, "scale": 0.1, "sigma": 0.7, "threshold": 0.69, "mud_sigma": 0.6},
        {"liquid": "mud", "loc": 0.65, "scale": 0.1, "sigma": 0.5, "threshold": 0.68, "mud_sigma": 0.6},
    ],
)
def spatter(images: torch.Tensor, p: Params, generator: torch.Generator) -> torch.Tensor:
    """A blurred, thresholded Gaussian liquid layer: shaded turquoise water drops added to the
    image (severities 1-3) or opaque brown mud splashes pasted over it (4-5)."""
    x = to_unit(images)
    liquid = normal(generator, (x.shape[0], 1, x.shape[-1], x.shape[-1]), p["loc"], p["scale"])
    liquid = gaussian_filter(liquid, p["sigma"])
    liquid = torch.where(liquid < p["threshold"], 0.0, liquid)
    if p["liquid"] == "water":
        colour = torch.tensor(_WATER, device=x.device).view(1, 3, 1, 1)
        return floor_to_uint8(x + water_drops(liquid, p["intensity"]) * colour)
    mud = gaussian_filter((liquid > p["threshold"]).float(), p["mud_sigma"])
    mud = torch.where(mud < 0.8, 0.0, mud)
    colour = torch.tensor(_MUD, device=x.device).view(1, 3, 1, 1)
    return floor_to_uint8(x * (1 - mud) + colour * mud)
