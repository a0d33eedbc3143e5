"""Images/s of the batched corruption engine against a per-image NumPy/SciPy/OpenCV reference.

    python benchmarks/corruption_speed.py                                 # 2000 images, reference on 100
    python benchmarks/corruption_speed.py --images 10000 --threads 2      # the full-size suite, measured
    python benchmarks/corruption_speed.py --only glass_blur zoom_blur     # a few corruptions

The reference side works the way the CIFAR-10-C generator (``make_cifar_c.py``) does: a Python
loop over images, each corrupted alone with NumPy, SciPy, OpenCV and Pillow, from the same
parameter table (``corruption_parameters``). Where the generator called ImageMagick (motion blur,
snow) or read frost photographs, the reference here runs the same computation in NumPy (the
kernel ImageMagick applies, the engine's procedural frost texture), so both sides compute the same
thing. Both sides corrupt the same images at all five severities; the table reports images/s
(images x severities / seconds) per corruption, the speed-up, and the time the engine needs for
all 19 x 5 corruptions of 10,000 images (measured if ``--images`` is 10000, else extrapolated
linearly from ``--images``).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from xaiquest.data.corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt, corruption_parameters

try:
    import cv2
except ImportError as error:  # the reference generator needs OpenCV; the engine does not
    raise SystemExit("the per-image reference needs OpenCV: pip install opencv-python-headless") from error

FULL_SUITE_IMAGES = 10_000
Reference = Callable[[np.ndarray, dict[str, Any], np.random.Generator], np.ndarray]
REFERENCE: dict[str, Reference] = {}


def reference(name: str) -> Callable[[Reference], Reference]:
    def decorator(fn: Reference) -> Reference:
        REFERENCE[name] = fn
        return fn

    return decorator


# --- per-image reference (HWC uint8 in, HWC uint8 out), as make_cifar_c.py ------------------------


def unit(img: np.ndarray) -> np.ndarray:
    return img / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.uint8(np.clip(x, 0, 1) * 255)


def gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """scikit-image ``gaussian(..., multichannel=True)``: no smoothing across channels."""
    sigmas = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, sigmas, mode=mode, truncate=truncate)


def clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    size = img.shape[0]
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    zoomed = ndimage.zoom(img[top : top + crop, top : top + crop], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - size) // 2
    return zoomed[trim : trim + size, trim : trim + size]


def plasma_fractal(decay: float, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    maps = np.zeros((size, size))
    step, wibble = size, 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[0::step, 0::step]
        squares = corners + np.roll(corners, -1, 0)
        squares += np.roll(squares, -1, 1)
        maps[half::step, half::step] = wibbled_mean(squares)
        centres, corners = maps[half::step, half::step], maps[0::step, 0::step]
        maps[0::step, half::step] = wibbled_mean(centres + np.roll(centres, 1, 0) + corners + np.roll(corners, -1, 1))
        maps[half::step, 0::step] = wibbled_mean(centres + np.roll(centres, 1, 1) + corners + np.roll(corners, -1, 0))
        step //= 2
        wibble /= decay
    maps -= maps.min()
    return maps / maps.max()


def motion_blur_magick(img: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """What ImageMagick's ``MotionBlurImage`` computes (8-bit in, 8-bit out), per image."""
    width = 2 * math.ceil(radius) + 1
    taps = np.arange(width)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    rows, cols = np.arange(img.shape[0]), np.arange(img.shape[1])
    out = np.zeros(img.shape, dtype=np.float64)
    for i, weight in enumerate(weights):
        dx = math.ceil(i * math.cos(math.radians(angle)) - 0.5)
        dy = math.ceil(i * math.sin(math.radians(angle)) - 0.5)
        shifted = img[np.clip(rows + dy, 0, img.shape[0] - 1)][:, np.clip(cols + dx, 0, img.shape[1] - 1)]
        out += weight * shifted
    return np.floor(np.floor(out * 257 + 0.5) / 257).astype(np.uint8)


@reference("gaussian_noise")
def gaussian_noise(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return to_uint8(unit(img) + rng.normal(size=img.shape, scale=p["std"]))


@reference("shot_noise")
def shot_noise(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return to_uint8(rng.poisson(unit(img) * p["photons"]) / p["photons"])


@reference("impulse_noise")
def impulse_noise(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = unit(img)
    flipped = rng.random(x.shape) < p["amount"]
    salted = rng.random(x.shape) < 0.5
    x[flipped & salted] = 1
    x[flipped & ~salted] = 0
    return to_uint8(x)


@reference("speckle_noise")
def speckle_noise(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = unit(img)
    return to_uint8(x + x * rng.normal(size=x.shape, scale=p["std"]))


@reference("gaussian_blur")
def gaussian_blur(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return to_uint8(gaussian(unit(img), p["sigma"]))


@reference("glass_blur")
def glass_blur(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    delta = p["max_delta"]
    x = np.uint8(gaussian(unit(img), p["sigma"]) * 255)
    for _ in range(p["iterations"]):
        for h in range(32 - delta, delta, -1):
            for w in range(32 - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=(2,))
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return to_uint8(gaussian(x / 255.0, p["sigma"]))


@reference("defocus_blur")
def defocus_blur(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    grid = np.arange(-8, 8 + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= p["radius"] ** 2, dtype=np.float32)
    disk /= disk.sum()
    kernel = cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=p["alias_blur"])
    x = unit(img)
    return to_uint8(np.stack([cv2.filter2D(x[:, :, c], -1, kernel) for c in range(3)], -1))


@reference("motion_blur")
def motion_blur(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return motion_blur_magick(img, p["radius"], p["sigma"], rng.uniform(-45, 45))


@reference("zoom_blur")
def zoom_blur(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = unit(img).astype(np.float32)
    out = np.zeros_like(x)
    for factor in p["zoom_factors"]:
        out += clipped_zoom(x, factor)
    return to_uint8((x + out) / (len(p["zoom_factors"]) + 1))


@reference("snow")
def snow(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = np.array(img, dtype=np.float32) / 255.0
    layer = rng.normal(size=x.shape[:2], loc=p["loc"], scale=p["scale"])
    layer = clipped_zoom(layer[..., np.newaxis], p["zoom"])
    layer[layer < p["threshold"]] = 0
    layer = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    layer = motion_blur_magick(layer, p["blur_radius"], p["blur_sigma"], rng.uniform(-135, -45))
    layer = layer[..., np.newaxis] / 255.0
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(32, 32, 1)
    x = p["blend"] * x + (1 - p["blend"]) * np.maximum(x, gray * 1.5 + 0.5)
    return to_uint8(x + layer + np.rot90(layer, k=2))


@reference("frost")
def frost(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    haze = plasma_fractal(2.0, rng)
    ridges = (1 - np.abs(2 * plasma_fractal(1.5, rng) - 1)) ** 6
    texture = np.clip(0.3 + 0.35 * haze + 0.6 * ridges, 0, 1)[..., None] * np.array([0.82, 0.91, 1.0])
    return to_uint8(p["image_weight"] * unit(img) + p["frost_weight"] * texture)


@reference("fog")
def fog(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = unit(img)
    peak = x.max()
    x += p["thickness"] * plasma_fractal(p["decay"], rng)[..., np.newaxis]
    return to_uint8(x * peak / (peak + p["thickness"]))


@reference("spatter")
def spatter(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = np.array(img, dtype=np.float32) / 255.0
    liquid = gaussian(rng.normal(size=x.shape[:2], loc=p["loc"], scale=p["scale"]), p["sigma"])
    liquid[liquid < p["threshold"]] = 0
    if p["liquid"] == "water":
        dist = 255 - cv2.Canny((liquid * 255).astype(np.uint8), 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        shade = (liquid * dist).astype(np.float32)
        shade = shade / shade.max() * p["intensity"]
        return to_uint8(x + shade[..., None] * np.array([175, 238, 238]) / 255.0)
    mud = gaussian(np.where(liquid > p["threshold"], 1, 0).astype(np.float32), p["mud_sigma"])
    mud[mud < 0.8] = 0
    colour = np.array([63, 42, 20]) / 255.0
    return to_uint8(x * (1 - mud[..., None]) + colour * mud[..., None])


@reference("contrast")
def contrast(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = unit(img)
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return to_uint8((x - means) * p["factor"] + means)


@reference("brightness")
def brightness(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = rgb_to_hsv(unit(img))
    x[:, :, 2] = np.clip(x[:, :, 2] + p["value_shift"], 0, 1)
    return to_uint8(hsv_to_rgb(x))


@reference("saturate")
def saturate(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = rgb_to_hsv(unit(img))
    x[:, :, 1] = np.clip(x[:, :, 1] * p["factor"] + p["shift"], 0, 1)
    return to_uint8(hsv_to_rgb(x))


@reference("jpeg_compression")
def jpeg_compression(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    output = BytesIO()
    Image.fromarray(img).save(output, "JPEG", quality=p["quality"])
    return np.array(Image.open(output))


@reference("pixelate")
def pixelate(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    small = int(32 * p["factor"])
    return np.array(Image.fromarray(img).resize((small, small), Image.BOX).resize((32, 32), Image.BOX))


@reference("elastic_transform")
def elastic_transform(img: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    x = np.array(img, dtype=np.float32) / 255.0
    anchors = np.float32([[26, 26], [26, 6], [6, 6]])
    moved = anchors + rng.uniform(-p["affine"], p["affine"], size=anchors.shape).astype(np.float32)
    x = cv2.warpAffine(x, cv2.getAffineTransform(anchors, moved), (32, 32), borderMode=cv2.BORDER_REFLECT_101)
    dx = gaussian(rng.uniform(-1, 1, size=(32, 32)), p["sigma"], mode="reflect", truncate=3) * p["alpha"]
    dy = gaussian(rng.uniform(-1, 1, size=(32, 32)), p["sigma"], mode="reflect", truncate=3) * p["alpha"]
    cols, rows, channels = np.meshgrid(np.arange(32), np.arange(32), np.arange(3))
    indices = (rows + dy[..., None]).reshape(-1), (cols + dx[..., None]).reshape(-1), channels.reshape(-1)
    return to_uint8(ndimage.map_coordinates(x, indices, order=1, mode="reflect").reshape(x.shape))


# --- timing -----------------------------------------------------------------------------------------


def benchmark_images(n: int, data: Path | None) -> torch.Tensor:
    """CIFAR-10 test images if ``data`` is given, else smooth random images (JPEG-like content)."""
    if data is not None:
        from xaiquest.data import load_dataset

        test = load_dataset(data, Path(".cache/xaiquest"), download=False).test.images
        return test[torch.arange(n) % len(test)].contiguous()
    low = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    smooth = F.interpolate(low, size=32, mode="bilinear", align_corners=False)
    grain = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.1
    return ((smooth * 0.9 + grain) * 255).round().clamp(0, 255).to(torch.uint8)


def time_engine(images: torch.Tensor, name: str) -> float:
    """Seconds for all severities (after one small warm-up call per severity)."""
    for severity in SEVERITIES:
        corrupt(images[:8], name, severity)
    started = time.perf_counter()
    for severity in SEVERITIES:
        corrupt(images, name, severity, seed=1)
    return time.perf_counter() - started


def time_reference(images: np.ndarray, name: str) -> float:
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for severity in SEVERITIES:
        params = corruption_parameters(name, severity)
        for img in images:
            REFERENCE[name](img, params, rng)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images per severity for the engine")
    parser.add_argument("--reference-images", type=int, default=100, help="images per severity for the reference")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (torch and OpenCV)")
    parser.add_argument("--only", nargs="+", choices=ALL_CORRUPTIONS, default=list(ALL_CORRUPTIONS))
    parser.add_argument("--data", type=Path, default=None, help="CIFAR-10 folder for real test images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    images = benchmark_images(args.images, args.data)
    reference_images = images[: args.reference_images].permute(0, 2, 3, 1).numpy()
    per_severity = len(SEVERITIES)
    print(f"engine: {args.images} images, reference: {args.reference_images} images, "
          f"{per_severity} severities each, {args.threads} thread(s), torch {torch.__version__}\n")
    print("| corruption | engine img/s | per-image reference img/s | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    engine_total = reference_total = 0.0
    for name in args.only:
        engine_s = time_engine(images, name)
        reference_s = time_reference(reference_images, name)
        engine_total += engine_s
        reference_total += reference_s
        engine_rate = per_severity * args.images / engine_s
        reference_rate = per_severity * args.reference_images / reference_s
        speed_up = engine_rate / reference_rate
        print(f"| {name} | {engine_rate:,.0f} | {reference_rate:,.0f} | {speed_up:,.0f}x |", flush=True)
    engine_rate = len(args.only) * per_severity * args.images / engine_total
    reference_rate = len(args.only) * per_severity * args.reference_images / reference_total
    print(f"| **all {len(args.only)} x {per_severity}** | **{engine_rate:,.0f}** | **{reference_rate:,.0f}** "
          f"| **{engine_rate / reference_rate:,.0f}x** |")
    full_suite = engine_total * FULL_SUITE_IMAGES / args.images
    reference_suite = reference_total * FULL_SUITE_IMAGES / args.reference_images
    how = "measured" if args.images == FULL_SUITE_IMAGES else f"extrapolated from {args.images} images"
    print(f"\n{len(args.only)} corruptions x {per_severity} severities x {FULL_SUITE_IMAGES:,} images: engine "
          f"{full_suite:.1f} s ({how}), per-image reference {reference_suite / 60:.1f} min (extrapolated)")


if __name__ == "__main__":
    main()
