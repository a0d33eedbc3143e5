"""The batched CIFAR-10-C engine: every corruption and severity pins a property of the reference
definition (``make_cifar_c.py``), so a wrong parameter or formula fails; plus the API contract,
errors, the gallery and the loader of the released .npy files."""

from __future__ import annotations

import math
import shutil
import subprocess
from io import BytesIO
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from matplotlib.figure import Figure
from PIL import Image
from scipy import ndimage
from torchvision.io import decode_jpeg, encode_jpeg

from xaiquest.data import load_dataset, stratified_indices
from xaiquest.data.cifar10c import load_cifar10c, load_cifar10c_labels
from xaiquest.data.corruptions import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    FAMILIES,
    SEVERITIES,
    corrupt,
    corruption_parameters,
)
from xaiquest.data.corruptions.blur import glass_offsets, glass_shuffle, motion_blur_batch, motion_kernel
from xaiquest.data.corruptions.digital import elastic_warp
from xaiquest.data.corruptions.weather import FROST_PHOTOS, frost_crops, plasma_fractal, water_drops
from xaiquest.errors import DataError, UnknownNameError
from xaiquest.figures import save_figure
from xaiquest.figures.corruptions import gallery_figure

from synthetic import class_coloured_split, write_image_folder

# The parameter table of make_cifar_c.py (Hendrycks & Dietterich 2019), severity 1..5, written out
# independently of the engine's so that a typo on either side fails.
REFERENCE_TABLE: dict[str, list[dict]] = {
    "gaussian_noise": [{"std": c} for c in (0.04, 0.06, 0.08, 0.09, 0.10)],
    "shot_noise": [{"photons": c} for c in (500, 250, 100, 75, 50)],
    "impulse_noise": [{"amount": c} for c in (0.01, 0.02, 0.03, 0.05, 0.07)],
    "speckle_noise": [{"std": c} for c in (0.06, 0.1, 0.12, 0.16, 0.2)],
    "defocus_blur": [
        {"radius": r, "alias_blur": a} for r, a in ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))
    ],
    "glass_blur": [
        {"sigma": s, "max_delta": d, "iterations": i}
        for s, d, i in ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
    ],
    "motion_blur": [{"radius": r, "sigma": s} for r, s in ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))],
    "zoom_blur": [{"zoom_factors": tuple(np.arange(1, stop, 0.01))} for stop in (1.06, 1.11, 1.16, 1.21, 1.26)],
    "gaussian_blur": [{"sigma": s} for s in (0.4, 0.6, 0.7, 0.8, 1)],
    "snow": [
        dict(zip(("loc", "scale", "zoom", "threshold", "blur_radius", "blur_sigma", "blend"), c))
        for c in (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        )
    ],
    "frost": [
        {"image_weight": a, "frost_weight": b} for a, b in ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
    ],
    "fog": [{"thickness": t, "decay": d} for t, d in ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))],
    "spatter": [
        {"liquid": "water", "loc": 0.62, "scale": 0.1, "sigma": 0.7, "threshold": 0.7, "intensity": 0.5},
        {"liquid": "water", "loc": 0.65, "scale": 0.1, "sigma": 0.8, "threshold": 0.7, "intensity": 0.5},
        {"liquid": "water", "loc": 0.65, "scale": 0.3, "sigma": 1, "threshold": 0.69, "intensity": 0.5},
        {"liquid": "mud", "loc": 0.65, "scale": 0.1, "sigma": 0.7, "threshold": 0.69, "mud_sigma": 0.6},
        {"liquid": "mud", "loc": 0.65, "scale": 0.1, "sigma": 0.5, "threshold": 0.68, "mud_sigma": 0.6},
    ],
    "brightness": [{"value_shift": c} for c in (0.05, 0.1, 0.15, 0.2, 0.3)],
    "contrast": [{"factor": c} for c in (0.75, 0.5, 0.4, 0.3, 0.15)],
    "saturate": [{"factor": a, "shift": b} for a, b in ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))],
    "elastic_transform": [
        {"alpha": 32 * a, "sigma": 32 * s, "affine": 32 * b}
        for a, s, b in ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
    ],
    "pixelate": [{"factor": c} for c in (0.95, 0.9, 0.85, 0.75, 0.65)],
    "jpeg_compression": [{"quality": q} for q in (80, 65, 58, 50, 40)],
}
CASES = [(name, severity) for name in ALL_CORRUPTIONS for severity in SEVERITIES]
DETERMINISTIC = {
    "defocus_blur", "zoom_blur", "gaussian_blur", "brightness", "contrast", "saturate", "pixelate", "jpeg_compression"
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The batches here are tiny: thread start-up would cost more than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def case_id(case: tuple[str, int]) -> str:
    return f"{case[0]}-{case[1]}"


def smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    """Natural-looking test images: upsampled 8x8 colour noise plus a little grain."""
    generator = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(n, 3, 8, 8, generator=generator), size=32, mode="bilinear", align_corners=False)
    grain = torch.rand(n, 3, 32, 32, generator=generator) * 0.1
    return ((low * 0.9 + grain) * 255).round().clamp(0, 255).to(torch.uint8)


def constant_images(n: int, value: int) -> torch.Tensor:
    return torch.full((n, 3, 32, 32), value, dtype=torch.uint8)


def impulse_image(n: int = 1) -> torch.Tensor:
    """A single white pixel in the middle of black images."""
    images = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 16, 16] = 255
    return images


def as_hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


def reference_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-image ``gaussian(x, sigma, multichannel=True)`` on HWC floats."""
    return ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest", truncate=4.0)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.uint8(np.clip(x, 0, 1) * 255)


def assert_close_levels(actual: np.ndarray, expected: np.ndarray, exact_fraction: float = 0.99) -> None:
    """Within one grey level everywhere (float32 vs float64), exactly equal almost everywhere."""
    difference = np.abs(actual.astype(int) - expected.astype(int))
    assert difference.max() <= 1
    assert np.mean(difference == 0) >= exact_fraction


# --- registry, API contract, errors ------------------------------------------------------------------


def test_registry_has_the_19_corruptions_by_family_and_benchmark_split() -> None:
    assert sorted(CORRUPTIONS.names()) == sorted(ALL_CORRUPTIONS) == sorted(REFERENCE_TABLE)
    assert len(BENCHMARK_CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert set(EXTRA_CORRUPTIONS) == {"speckle_noise", "gaussian_blur", "spatter", "saturate"}
    assert sorted(n for names in FAMILIES.values() for n in names) == sorted(ALL_CORRUPTIONS)
    for family, names in FAMILIES.items():
        assert all(CORRUPTIONS.get(name).family == family for name in names)


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_parameters_match_the_reference_table(name: str) -> None:
    for severity in SEVERITIES:
        actual, expected = corruption_parameters(name, severity), REFERENCE_TABLE[name][severity - 1]
        assert sorted(actual) == sorted(expected)
        for key, value in expected.items():
            assert actual[key] == (value if isinstance(value, str) else pytest.approx(value)), key


def test_zoom_blur_uses_the_reference_arange_quirk() -> None:
    """np.arange(1, 1.06, 0.01) has 7 values (up to 1.06), not 6: the reference zooms one step further."""
    counts = [len(corruption_parameters("zoom_blur", s)["zoom_factors"]) for s in SEVERITIES]
    peaks = [max(corruption_parameters("zoom_blur", s)["zoom_factors"]) for s in SEVERITIES]
    assert counts == [7, 12, 16, 21, 26]
    assert peaks == pytest.approx([1.06, 1.11, 1.15, 1.20, 1.25])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_output_contract_determinism_and_no_cross_image_leak(case: tuple[str, int]) -> None:
    name, severity = case
    images = smooth_images(4)
    before = images.clone()
    out = corrupt(images, name, severity, seed=3)
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
    assert torch.equal(images, before), "the input must not be modified"
    assert torch.equal(out, corrupt(images, name, severity, seed=3))
    # an image's result depends on its position in the batch, not on the other images' content
    # (shot noise excepted: torch.poisson draws a rate-dependent amount from the stream)
    others = torch.cat((smooth_images(3, seed=9), images[3:]))
    assert torch.equal(corrupt(others, name, severity, seed=3)[3], out[3]) != (name == "shot_noise")
    others = torch.cat((images[:1], smooth_images(3, seed=9)))
    assert torch.equal(corrupt(others, name, severity, seed=3)[0], out[0])


@pytest.mark.parametrize("name", sorted(set(ALL_CORRUPTIONS) - DETERMINISTIC))
def test_random_corruptions_differ_across_seeds(name: str) -> None:
    images = smooth_images(4)
    assert not torch.equal(corrupt(images, name, 3, seed=0), corrupt(images, name, 3, seed=1))


def test_severities_of_one_seed_share_the_random_layer() -> None:
    """Frost of a black image is frost_weight * crop: the same crop at every severity."""
    black = constant_images(2, 0)
    weak, strong = corrupt(black, "frost", 2, seed=5).float(), corrupt(black, "frost", 5, seed=5).float()
    assert torch.corrcoef(torch.stack((weak.flatten(), strong.flatten())))[0, 1] > 0.99


def test_unknown_names_and_severities_fail_listing_the_allowed_values() -> None:
    images = smooth_images(1)
    with pytest.raises(UnknownNameError, match="gaussian_noise.*zoom_blur"):
        corrupt(images, "gausian_noise", 1)
    for bad in (0, 6, "3", 2.0, True):
        with pytest.raises(ValueError, match="1, 2, 3, 4, 5"):
            corrupt(images, "fog", bad)
        with pytest.raises(ValueError, match="1, 2, 3, 4, 5"):
            corruption_parameters("fog", bad)
    with pytest.raises(UnknownNameError, match="available"):
        corruption_parameters("rain", 1)


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(2, 3, 32, 32), torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
     torch.zeros(2, 3, 32, 48, dtype=torch.uint8)],
)
def test_images_that_are_not_square_uint8_nx3_are_rejected(bad: torch.Tensor) -> None:
    with pytest.raises(DataError, match=r"square uint8 images \[N,3,S,S\]"):
        corrupt(bad, "contrast", 1)


def test_an_empty_batch_stays_empty() -> None:
    empty = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    assert corrupt(empty, "snow", 2).shape == empty.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_cuda_batches_stay_on_cuda(name: str) -> None:
    images = smooth_images(8).cuda()
    out = corrupt(images, name, 5)
    assert out.device == images.device and out.dtype == torch.uint8
    if name in DETERMINISTIC - {"jpeg_compression"}:
        assert (out.cpu().int() - corrupt(images.cpu(), name, 5).int()).abs().max() <= 1


# --- noise ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_has_the_reference_std(severity: int) -> None:
    std = REFERENCE_TABLE["gaussian_noise"][severity - 1]["std"]
    grey = constant_images(16, 128)
    change = corrupt(grey, "gaussian_noise", severity).float() - 128
    assert change.std().item() / 255 == pytest.approx(std, rel=0.03)
    assert change.mean().item() == pytest.approx(-0.5, abs=0.3)  # truncation to uint8, as the reference


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shot_noise_variance_is_poisson_with_the_reference_photon_count(severity: int) -> None:
    photons = REFERENCE_TABLE["shot_noise"][severity - 1]["photons"]
    value = 128 / 255
    out = corrupt(constant_images(16, 128), "shot_noise", severity).float() / 255
    assert out.var().item() == pytest.approx(value / photons, rel=0.06)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_flips_the_reference_fraction_to_salt_or_pepper(severity: int) -> None:
    amount = REFERENCE_TABLE["impulse_noise"][severity - 1]["amount"]
    out = corrupt(constant_images(16, 128), "impulse_noise", severity)
    changed = out != 128
    assert changed.float().mean().item() == pytest.approx(amount, rel=0.1)
    assert set(out[changed].unique().tolist()) == {0, 255}
    assert (out[changed] == 255).float().mean().item() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_speckle_noise_ratio_has_the_reference_std(severity: int) -> None:
    std = REFERENCE_TABLE["speckle_noise"][severity - 1]["std"]
    out = corrupt(constant_images(16, 128), "speckle_noise", severity).float()
    assert ((out + 0.5) / 128 - 1).std().item() == pytest.approx(std, rel=0.03)


# --- blur -----------------------------------------------------------------------------------------


def test_border_modes_follow_scipy_and_opencv() -> None:
    from xaiquest.data.corruptions.blur import padded_index

    assert padded_index(4, 2, "nearest").tolist() == [0, 0, 0, 1, 2, 3, 3, 3]
    assert padded_index(4, 2, "reflect").tolist() == [1, 0, 0, 1, 2, 3, 3, 2]
    assert padded_index(4, 2, "mirror").tolist() == [2, 1, 0, 1, 2, 3, 2, 1]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_blur_impulse_response_is_the_reference_kernel(severity: int) -> None:
    sigma = REFERENCE_TABLE["gaussian_blur"][severity - 1]["sigma"]
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    expected = np.zeros((32, 32))
    expected[16 - radius : 17 + radius, 16 - radius : 17 + radius] = np.outer(taps, taps)
    out = corrupt(impulse_image(), "gaussian_blur", severity)[0, 0].numpy()
    assert_close_levels(out, to_uint8(expected))
    smooth = smooth_images(4)
    reference = np.stack([to_uint8(reference_gaussian(x / 255.0, sigma)) for x in as_hwc(smooth)])
    assert_close_levels(as_hwc(corrupt(smooth, "gaussian_blur", severity)), reference)


def reference_disk(radius: float, alias_blur: float) -> np.ndarray:
    """make_cifar_c.py's ``disk``: 17x17 aliased disk, normalised, smoothed by OpenCV's 3x3 Gaussian."""
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    smooth = np.exp(-np.arange(-1, 2) ** 2 / (2 * alias_blur**2))
    smooth /= smooth.sum()
    rows = ndimage.correlate1d(disk, smooth, axis=0, mode="mirror")
    return ndimage.correlate1d(rows, smooth, axis=1, mode="mirror")


@pytest.mark.parametrize("severity", SEVERITIES)
def test_defocus_blur_impulse_response_is_the_reference_disk(severity: int) -> None:
    p = REFERENCE_TABLE["defocus_blur"][severity - 1]
    expected = np.zeros((32, 32))
    expected[8:25, 8:25] = reference_disk(p["radius"], p["alias_blur"])
    out = corrupt(impulse_image(), "defocus_blur", severity)[0, 0].numpy()
    assert_close_levels(out, to_uint8(expected))


def magick_motion_blur(img: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """What ImageMagick's MotionBlurImage computes on an 8-bit HWC image, written out per tap."""
    width = 2 * math.ceil(radius) + 1
    weights = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    weights /= weights.sum()
    out = np.zeros(img.shape)
    for i, weight in enumerate(weights):
        dx = math.ceil(i * math.cos(math.radians(angle)) - 0.5)
        dy = math.ceil(i * math.sin(math.radians(angle)) - 0.5)
        out += weight * img[np.clip(np.arange(32) + dy, 0, 31)][:, np.clip(np.arange(32) + dx, 0, 31)]
    return np.floor(np.floor(out * 257 + 0.5) / 257)  # Q16 rounding, then 8-bit PNG truncation


@pytest.mark.parametrize("severity", SEVERITIES)
def test_motion_blur_centre_weight_and_reach_follow_the_reference_radius_and_sigma(severity: int) -> None:
    p = REFERENCE_TABLE["motion_blur"][severity - 1]
    width = 2 * math.ceil(p["radius"]) + 1
    weights = np.exp(-np.arange(width) ** 2 / (2 * p["sigma"] ** 2))
    weights /= weights.sum()
    out = corrupt(impulse_image(24), "motion_blur", severity)[:, 0].numpy()
    assert (out[:, 16, 16] == math.floor(math.floor(255 * weights[0] * 257 + 0.5) / 257)).all()
    rows, cols = np.nonzero(out.max(0))
    dx, dy = cols - 16, rows - 16
    assert (dx <= 0).all() and (np.abs(dy) <= -dx + 1).all(), "one-sided, within +-45 degrees"
    visible = np.flatnonzero(255 * weights >= 1)[-1]  # the last tap that shows after 8-bit truncation
    assert visible * math.cos(math.pi / 4) - 1 <= max(-dx.min(), np.abs(dy).max()) <= width - 1


def test_motion_blur_batch_is_imagemagick_per_image() -> None:
    images = smooth_images(6)
    angles = torch.tensor([-44.9, -20.0, 0.0, 13.3, 45.0, -100.0])
    out = motion_blur_batch(images.double(), motion_kernel(9, 2.5), angles)
    for img, angle, result in zip(as_hwc(images), angles.tolist(), out.permute(0, 2, 3, 1).numpy()):
        expected = magick_motion_blur(img.astype(np.float64), 9, 2.5, angle)
        np.testing.assert_allclose(np.floor(np.floor(result * 257 + 0.5) / 257), expected)


def _imagemagick() -> str | None:
    for tool in ("magick", "convert", "convert-im6.q16"):
        path = shutil.which(tool)
        version = subprocess.run([path, "-version"], capture_output=True, text=True).stdout if path else ""
        if version.startswith("Version: ImageMagick"):
            return path
    return None


@pytest.mark.skipif(_imagemagick() is None, reason="needs ImageMagick")
def test_motion_blur_matches_imagemagick_itself(tmp_path: Path) -> None:
    image = smooth_images(1)
    Image.fromarray(as_hwc(image)[0]).save(tmp_path / "in.png")
    for angle in (-31.5, 12.0):
        command = [_imagemagick(), tmp_path / "in.png", "-motion-blur", f"8x2+{angle}", tmp_path / "out.png"]
        subprocess.run(command, check=True)
        expected = np.array(Image.open(tmp_path / "out.png").convert("RGB"))
        ours = motion_blur_batch(image.float(), motion_kernel(8, 2), torch.tensor([angle]))
        ours = torch.floor(torch.floor(ours * 257 + 0.5) / 257)
        np.testing.assert_array_equal(as_hwc(ours.to(torch.uint8))[0], expected)


def reference_clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    crop = int(np.ceil(32 / factor))
    top = (32 - crop) // 2
    zoomed = ndimage.zoom(img[top : top + crop, top : top + crop], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - 32) // 2
    return zoomed[trim : trim + 32, trim : trim + 32]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_averages_the_reference_zooms(severity: int) -> None:
    factors = REFERENCE_TABLE["zoom_blur"][severity - 1]["zoom_factors"]
    images = smooth_images(2)
    expected = []
    for img in as_hwc(images):
        x = (img / 255.0).astype(np.float32)
        total = sum(reference_clipped_zoom(x, factor) for factor in factors)
        expected.append(to_uint8((x + total) / (len(factors) + 1)))
    assert_close_levels(as_hwc(corrupt(images, "zoom_blur", severity)), np.stack(expected))


def reference_glass_loop(x: np.ndarray, offsets: np.ndarray, delta: int) -> np.ndarray:
    """make_cifar_c.py's loop, NumPy tuple assignment on pixel views included; offsets [it, 2, H, W]."""
    x = x.copy()
    for iteration in range(offsets.shape[0]):
        for h in range(32 - delta, delta, -1):
            for w in range(32 - delta, delta, -1):
                dy, dx = offsets[iteration, :, h, w]
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return x


@pytest.mark.parametrize("severity", SEVERITIES)
def test_glass_blur_is_the_reference_loop_between_two_blurs(severity: int) -> None:
    p = REFERENCE_TABLE["glass_blur"][severity - 1]
    images = smooth_images(2)
    out = CORRUPTIONS.get("glass_blur").apply(images, p, torch.Generator().manual_seed(4))
    offsets = glass_offsets(2, p["max_delta"], p["iterations"], torch.Generator().manual_seed(4), 32).numpy()
    expected = []
    for n, img in enumerate(as_hwc(images)):
        x = np.uint8(reference_gaussian(img / 255.0, p["sigma"]) * 255)
        x = reference_glass_loop(x, offsets[:, :, n], p["max_delta"])
        expected.append(to_uint8(reference_gaussian(x / 255.0, p["sigma"])))
    assert_close_levels(as_hwc(out), np.stack(expected))


def test_glass_shuffle_moves_pixels_by_at_most_delta_per_iteration() -> None:
    """Severity 1 blurs with a radius-0 kernel, so its output is the shuffle itself: pixels come
    from at most one pixel up and/or left, inside rows/cols 2..31, 3/4 of them moved."""
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    coded = torch.stack((rows * 8, cols * 8, torch.full_like(rows, 128))).to(torch.uint8).expand(16, 3, 32, 32)
    out = corrupt(coded.contiguous(), "glass_blur", 1).long()
    shift_y, shift_x = out[:, 0] // 8 - rows, out[:, 1] // 8 - cols
    assert set(shift_y.unique().tolist()) == {-1, 0} and set(shift_x.unique().tolist()) == {-1, 0}
    assert (shift_y[:, :2] == 0).all() and (shift_x[:, :, :2] == 0).all()
    moved = ((shift_y != 0) | (shift_x != 0))[:, 2:, 2:].float().mean().item()
    assert moved == pytest.approx(0.75, abs=0.03)
    offsets = glass_offsets(1, 1, 2, torch.Generator().manual_seed(0), 32)
    twice = glass_shuffle(coded[:1].contiguous(), offsets, 1).long()
    assert (twice[:, 0] // 8 - rows).min() >= -2 and (twice[:, 1] // 8 - cols).min() >= -2


# --- weather --------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", SEVERITIES)
def test_fog_keeps_the_peak_and_lifts_the_floor_by_the_reference_thickness(severity: int) -> None:
    """On a constant image v the heightmap spans [0, 1], so the output spans [v^2 / (v + t), v]."""
    thickness = REFERENCE_TABLE["fog"][severity - 1]["thickness"]
    value = 200 / 255
    out = corrupt(constant_images(4, 200), "fog", severity)
    assert (out == out[:, :1]).all(), "fog is grey"
    assert (out.amax((1, 2, 3)) - math.floor(255 * value)).abs().max() <= 1
    low = math.floor(255 * value * value / (value + thickness))
    assert (out.amin((1, 2, 3)) - low).abs().max() <= 1


def test_fog_heightmap_gets_rougher_as_the_decay_falls() -> None:
    roughness = []
    for decay in (3, 2.5, 2, 1.75):
        maps = plasma_fractal(64, decay, torch.Generator().manual_seed(0))
        assert maps.amin().item() == 0 and maps.amax().item() == 1
        roughness.append((maps[:, 1:] - maps[:, :-1]).abs().mean().item())
    assert roughness == sorted(roughness)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_fog_strengthens_with_severity(severity: int) -> None:
    images = smooth_images(16)
    change = [(corrupt(images, "fog", s).float() - images).abs().mean() for s in (severity, min(severity + 1, 5))]
    assert change[0] <= change[1]


def reference_frost_photos() -> list[np.ndarray]:
    """The photos make_cifar_c.py's frost can draw, prepared as it does: cv2.imread (BGR),
    cv2.resize(fx=0.2, fy=0.2), and ``[..., [2, 1, 0]]`` to RGB; randint(5) never picks frost6."""
    cv2 = pytest.importorskip("cv2")
    folder = Path(str(files("xaiquest.data.corruptions") / "frost"))
    names = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"]
    return [cv2.resize(cv2.imread(str(folder / name)), (0, 0), fx=0.2, fy=0.2)[..., [2, 1, 0]] for name in names]


def reference_frost_crops(n: int, seed: int) -> np.ndarray:
    """``n`` crops [n, 32, 32, 3] uint8 drawn as make_cifar_c.py draws them."""
    photos, rng = reference_frost_photos(), np.random.RandomState(seed)
    crops = []
    for _ in range(n):
        photo = photos[rng.randint(5)]
        x_start, y_start = rng.randint(0, photo.shape[0] - 32), rng.randint(0, photo.shape[1] - 32)
        crops.append(photo[x_start : x_start + 32, y_start : y_start + 32])
    return np.stack(crops)


def test_frost_photos_ship_with_their_licence_and_source_notice() -> None:
    folder = files("xaiquest.data.corruptions") / "frost"
    for name in (*FROST_PHOTOS, "LICENSE"):
        assert (folder / name).is_file(), name
    assert "Apache License" in (folder / "LICENSE").read_text()
    notice = Path(__file__).resolve().parents[1] / "NOTICE"
    assert "hendrycks/robustness" in notice.read_text() and "frost" in notice.read_text()


def test_frost_crops_have_the_reference_crop_statistics() -> None:
    """Issue 11: the procedural texture's crops averaged (0.506, 0.562, 0.617) with a crop-to-crop
    spread of 0.039, the reference's photo crops (0.565, 0.648, 0.695) and 0.153."""
    n = 3000
    reference = torch.from_numpy(reference_frost_crops(n, seed=0)).permute(0, 3, 1, 2).double() / 255
    black = corrupt(constant_images(n, 0), "frost", 1, seed=0).double() / 255 / 0.2  # = the crop, +- 1 level
    for crops, tolerance in ((reference, 0.0), (black, 0.02)):
        means, spread = crops.mean((0, 2, 3)), crops.mean((1, 2, 3)).std()
        assert torch.allclose(means, torch.tensor([0.565, 0.648, 0.695], dtype=torch.float64), atol=0.015 + tolerance)
        assert spread.item() == pytest.approx(0.153, abs=0.015 + tolerance)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_frost_perturbs_images_as_much_as_the_reference(severity: int) -> None:
    """Mean absolute perturbation of the same images, engine / reference, is ~1 (0.80-0.91 before)."""
    p = REFERENCE_TABLE["frost"][severity - 1]
    images = smooth_images(400, seed=3)
    ours = (corrupt(images, "frost", severity, seed=1).double() - images.double()).abs().mean()
    x = as_hwc(images).astype(np.float64)
    reference = np.uint8(np.clip(p["image_weight"] * x + p["frost_weight"] * reference_frost_crops(400, seed=1), 0, 255))
    ratio = ours.item() / np.abs(reference - x).mean()
    assert ratio == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_frost_is_the_reference_blend_of_image_and_crop(severity: int) -> None:
    p = REFERENCE_TABLE["frost"][severity - 1]
    images = smooth_images(16)
    crops = frost_crops(16, torch.Generator().manual_seed(7))
    out = CORRUPTIONS.get("frost").apply(images, p, torch.Generator().manual_seed(7))
    x, crop = as_hwc(images), as_hwc(crops)
    expected = np.uint8(np.clip(p["image_weight"] * np.array(x) + p["frost_weight"] * crop, 0, 255))
    np.testing.assert_array_equal(as_hwc(out), expected)
    photos = reference_frost_photos()
    for c in crop[:4]:  # every crop is a window of one of the five drawable photos
        assert any(
            (np.lib.stride_tricks.sliding_window_view(photo, (32, 32, 3)) == c).all((-3, -2, -1)).any() for photo in photos
        )


@pytest.mark.parametrize("severity", SEVERITIES)
def test_snow_brightens_by_the_reference_blend_and_doubles_the_layer_by_rotation(severity: int) -> None:
    blend = REFERENCE_TABLE["snow"][severity - 1]["blend"]
    out = corrupt(constant_images(8, 0), "snow", severity)
    asymmetry = (out.int() - out.flip(2, 3).int()).abs()
    assert asymmetry.max() <= 1 and asymmetry.float().mean() < 0.01, "layer + layer rotated by 180 degrees"
    assert out.amin().item() == math.floor(255 * (1 - blend) * 0.5)
    assert (out == out[:, :1]).all(), "snow is white"


@pytest.mark.parametrize("severity", SEVERITIES)
def test_snow_strengthens_with_severity(severity: int) -> None:
    images = smooth_images(16)
    change = [(corrupt(images, "snow", s).float() - images).abs().mean() for s in (severity, min(severity + 1, 5))]
    assert change[0] <= change[1]


@pytest.mark.parametrize("severity", (1, 2, 3))
def test_water_spatter_adds_pale_turquoise_up_to_the_reference_intensity(severity: int) -> None:
    intensity = REFERENCE_TABLE["spatter"][severity - 1]["intensity"]
    images = smooth_images(8)
    out = corrupt(images, "spatter", severity)
    assert (out >= images).all()
    black = corrupt(constant_images(8, 0), "spatter", severity).long()
    assert torch.equal(black[:, 1], black[:, 2]) and (black[:, 0] <= black[:, 1]).all()
    assert ((black[:, 1].amax((1, 2)) - math.floor(intensity * 238)).abs() <= 1).all()


@pytest.mark.parametrize("severity", (4, 5))
def test_mud_spatter_pastes_opaque_brown(severity: int) -> None:
    images = smooth_images(8)
    out = corrupt(images, "spatter", severity).float()
    changed = (out != images.float()).any(1)
    assert changed.float().mean() > 0.003
    mud = torch.tensor([63.0, 42.0, 20.0]).view(1, 3, 1, 1)
    # m >= 0.8 where pasted: at most 20 % of the image's own value shows through
    near_mud = (out - mud).abs() <= 0.2 * torch.maximum(images.float(), mud) + 1
    assert near_mud[changed.unsqueeze(1).expand_as(out)].all()


@pytest.mark.parametrize("severity", (2, 3))
def test_water_drops_follow_the_opencv_pipeline_on_the_wrapped_8_bit_liquid(severity: int) -> None:
    """make_cifar_c.py verbatim: ``(liquid_layer * 255).astype(np.uint8)`` wraps values above 1
    (severity 3's liquid reaches ~1.2) and the wrapped layer shades the drops."""
    cv2 = pytest.importorskip("cv2")
    p = REFERENCE_TABLE["spatter"][severity - 1]
    generator = np.random.default_rng(0)
    shape = (32, 32, 1)
    liquid = np.stack([reference_gaussian(generator.normal(p["loc"], p["scale"], shape), p["sigma"])[..., 0] for _ in range(16)])
    liquid[liquid < p["threshold"]] = 0
    assert (liquid > 1).any() == (severity == 3)
    expected = []
    for liquid_layer in liquid:
        with np.errstate(invalid="ignore"):
            liquid_layer = (liquid_layer * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid_layer, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        shade = liquid_layer * cv2.blur(dist, (3, 3)).astype(np.float32)
        expected.append(shade / shade.max() * p["intensity"])
    ours = water_drops(torch.from_numpy(liquid).unsqueeze(1), p["intensity"]).squeeze(1).numpy()
    np.testing.assert_allclose(ours, np.stack(expected), atol=1e-5)


# --- digital --------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", SEVERITIES)
def test_brightness_shifts_the_hsv_value_by_the_reference_amount(severity: int) -> None:
    shift = REFERENCE_TABLE["brightness"][severity - 1]["value_shift"]
    images = smooth_images(8)
    out = corrupt(images, "brightness", severity)
    value_in = images.amax(1).float()
    value_out = out.amax(1).float()
    assert ((value_out - torch.clamp(value_in + 255 * shift, max=255)).abs() <= 1).all()
    expected = []
    for img in as_hwc(images):
        hsv = rgb_to_hsv(img / 255.0)
        hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0, 1)
        expected.append(to_uint8(hsv_to_rgb(hsv)))
    assert_close_levels(as_hwc(out), np.stack(expected), exact_fraction=0.999)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_saturate_scales_the_hsv_saturation_as_the_reference(severity: int) -> None:
    p = REFERENCE_TABLE["saturate"][severity - 1]
    images = smooth_images(8)
    out = corrupt(images, "saturate", severity)
    hsv_in, hsv_out = rgb_to_hsv(as_hwc(images) / 255.0), rgb_to_hsv(as_hwc(out) / 255.0)
    bright = hsv_in[..., 2] > 0.5
    expected_s = np.clip(hsv_in[..., 1] * p["factor"] + p["shift"], 0, 1)
    assert np.abs(hsv_out[..., 1] - expected_s)[bright].max() < 0.02
    expected = []
    for hsv in hsv_in:
        hsv[..., 1] = np.clip(hsv[..., 1] * p["factor"] + p["shift"], 0, 1)
        expected.append(to_uint8(hsv_to_rgb(hsv)))
    assert_close_levels(as_hwc(out), np.stack(expected), exact_fraction=0.999)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_scales_the_spread_and_keeps_the_channel_means(severity: int) -> None:
    factor = REFERENCE_TABLE["contrast"][severity - 1]["factor"]
    images = smooth_images(8).float()
    out = corrupt(images.to(torch.uint8), "contrast", severity).float()
    ratio = out.std((2, 3)) / images.std((2, 3))
    assert ratio.flatten().tolist() == pytest.approx([factor] * ratio.numel(), abs=0.02)
    drop = images.mean((2, 3)) - out.mean((2, 3))  # truncation to uint8 lowers values by < 1 level
    assert ((drop >= -0.01) & (drop < 1)).all()


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_is_pillow_box_down_and_up(severity: int) -> None:
    small = int(32 * REFERENCE_TABLE["pixelate"][severity - 1]["factor"])
    images = smooth_images(4)
    out = corrupt(images, "pixelate", severity)
    expected = [
        np.array(Image.fromarray(img).resize((small, small), Image.BOX).resize((32, 32), Image.BOX))
        for img in as_hwc(images)
    ]
    np.testing.assert_array_equal(as_hwc(out), np.stack(expected))
    distinct_columns = (out[..., 1:] != out[..., :-1]).any(2).any(1).sum(-1) + 1
    assert distinct_columns.tolist() == [small] * 4


@pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
@pytest.mark.parametrize("severity", SEVERITIES)
def test_jpeg_is_libjpeg_at_the_reference_quality(severity: int) -> None:
    quality = REFERENCE_TABLE["jpeg_compression"][severity - 1]["quality"]
    images = smooth_images(4)
    out = corrupt(images, "jpeg_compression", severity)
    expected = torch.stack([decode_jpeg(encode_jpeg(img, quality=quality)) for img in images])
    assert torch.equal(out, expected)
    pil = []
    for img in as_hwc(images):
        buffer = BytesIO()
        Image.fromarray(img).save(buffer, "JPEG", quality=quality)
        pil.append(np.array(Image.open(buffer)))
    assert np.abs(as_hwc(out).astype(int) - np.stack(pil)).mean() < 0.5, "close to the reference's Pillow"


def coordinate_image(n: int) -> torch.Tensor:
    """Red encodes the column and green the row (8 levels per pixel), so a warp can be read back."""
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    coded = torch.stack((cols * 8, rows * 8, torch.full_like(rows, 128))).to(torch.uint8)
    return coded.expand(n, 3, 32, 32).contiguous()


def warp_residual(severity: int) -> tuple[float, float]:
    """(largest displacement, std of the displacement left after the best affine fit) in the interior."""
    out = corrupt(coordinate_image(16), "elastic_transform", severity).double()
    axis = torch.arange(32.0, dtype=torch.float64)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    inner = (slice(None), slice(8, 24), slice(8, 24))
    shift = torch.stack(((out[:, 0] + 0.5) / 8 - cols, (out[:, 1] + 0.5) / 8 - rows), -1)[inner].reshape(16, -1, 2)
    design = torch.stack((cols, rows, torch.ones_like(rows)), -1)[8:24, 8:24].reshape(1, -1, 3).expand(16, -1, 3)
    fit = torch.linalg.lstsq(design, shift).solution
    return shift.abs().max().item(), (shift - design @ fit).std().item()


@pytest.mark.parametrize("severity", SEVERITIES)
def test_elastic_affine_reach_and_local_distortion_follow_the_reference(severity: int) -> None:
    """The anchors move by at most ``affine`` px, so the interior (barycentric weights of the
    anchor triangle summing to at most 2.6 in absolute value) moves by at most ~3x that; the
    non-affine part grows from none (alpha 0) as alpha / sigma grows with severity."""
    p = REFERENCE_TABLE["elastic_transform"][severity - 1]
    reach, residual = warp_residual(severity)
    assert reach <= 3 * p["affine"] + p["alpha"] + 0.5
    if severity == 1:
        assert residual < 0.1
    else:
        assert residual > warp_residual(severity - 1)[1]


def test_elastic_warp_is_opencv_warp_affine_then_scipy_map_coordinates() -> None:
    cv2 = pytest.importorskip("cv2")
    generator = np.random.default_rng(1)
    images = smooth_images(4)
    anchors = np.float32([[26, 26], [26, 6], [6, 6]])
    moved = anchors + generator.uniform(-2.5, 2.5, (4, 3, 2)).astype(np.float32)
    fields = ndimage.gaussian_filter(generator.uniform(-1, 1, (2, 4, 32, 32)), (0, 0, 1.3, 1.3), mode="reflect", truncate=3)
    dx, dy = (fields * 3.2).astype(np.float32)
    ours = elastic_warp(images.float() / 255, torch.from_numpy(moved), torch.from_numpy(dy), torch.from_numpy(dx))
    cols, rows, channels = np.meshgrid(np.arange(32), np.arange(32), np.arange(3))
    for n, img in enumerate(as_hwc(images)):
        affine = cv2.getAffineTransform(anchors, moved[n])
        x = cv2.warpAffine(img.astype(np.float32) / 255, affine, (32, 32), borderMode=cv2.BORDER_REFLECT_101)
        index = (rows + dy[n][..., None]).ravel(), (cols + dx[n][..., None]).ravel(), channels.ravel()
        expected = ndimage.map_coordinates(x, index, order=1, mode="reflect").reshape(x.shape)
        np.testing.assert_allclose(ours[n].permute(1, 2, 0).numpy(), expected, atol=5e-3)  # OpenCV: 1/32 px grid


# --- gallery and released files -------------------------------------------------------------------


def test_gallery_shows_every_corruption_at_every_severity_beside_the_clean_image(tmp_path: Path) -> None:
    image = smooth_images(1)[0]
    figure = gallery_figure(image)
    assert isinstance(figure, Figure) and len(figure.axes) == 1
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", *(f"severity {s}" for s in SEVERITIES)]
    assert [t.get_text() for t in ax.get_yticklabels()] == [n.replace("_", " ") for n in ALL_CORRUPTIONS]
    mosaic = ax.get_images()[0].get_array()
    assert mosaic.shape == (36 * len(ALL_CORRUPTIONS), 36 * 6, 3)
    np.testing.assert_array_equal(mosaic[2:34, 2:34], as_hwc(image[None])[0])  # the clean tile comes first
    tile = mosaic[36 * 3 + 2 : 36 * 3 + 34, 36 * 2 + 2 : 36 * 2 + 34]  # row 4, severity 2
    np.testing.assert_array_equal(tile, as_hwc(corrupt(image[None], ALL_CORRUPTIONS[3], 2))[0])
    save_figure(figure, tmp_path / "gallery.png")
    assert (tmp_path / "gallery.png").stat().st_size > 0
    with pytest.raises(DataError):
        gallery_figure(smooth_images(2))


def write_release(folder: Path, names: list[str], per_severity: int = 10) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    labels = np.tile(generator.integers(0, 10, per_severity), 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    arrays = {}
    for name in names:
        arrays[name] = generator.integers(0, 256, (5 * per_severity, 32, 32, 3), dtype=np.uint8)
        np.save(folder / f"{name}.npy", arrays[name])
    return arrays


def test_cifar10c_loader_returns_severity_image_chw_tensors(tmp_path: Path) -> None:
    arrays = write_release(tmp_path, ["fog", "pixelate"])
    loaded = load_cifar10c(tmp_path, ["fog", "pixelate"])
    assert list(loaded) == ["fog", "pixelate", "labels"]
    fog = loaded["fog"]
    assert fog.dtype == torch.uint8 and fog.shape == (5, 10, 3, 32, 32)
    np.testing.assert_array_equal(fog[2, 7].permute(1, 2, 0).numpy(), arrays["fog"][2 * 10 + 7])
    labels = load_cifar10c_labels(tmp_path)
    assert labels.dtype == torch.int64 and labels.shape == (10,)
    assert torch.equal(loaded["labels"], labels)
    np.save(tmp_path / "labels.npy", np.random.default_rng(1).integers(0, 10, 50).astype(np.uint8))
    with pytest.raises(DataError, match="different labels for different severities"):
        load_cifar10c(tmp_path, ["fog"])


def test_cifar10c_missing_file_names_it_and_the_fix(tmp_path: Path) -> None:
    write_release(tmp_path, ["fog"])
    with pytest.raises(DataError, match=r"snow\.npy is missing.*--cifar10c PATH"):
        load_cifar10c(tmp_path, ["fog", "snow"])
    with pytest.raises(DataError, match=r"labels\.npy is missing"):
        load_cifar10c(tmp_path / "nowhere", ["fog"])
    with pytest.raises(UnknownNameError):
        load_cifar10c(tmp_path, ["rain"])


@pytest.mark.parametrize(
    "array, found",
    [
        (np.zeros((45, 32, 32, 3), np.uint8), r"\(45, 32, 32, 3\) uint8"),
        (np.zeros((50, 32, 32), np.uint8), r"\(50, 32, 32\) uint8"),
        (np.zeros((50, 32, 32, 3), np.float32), r"\(50, 32, 32, 3\) float32"),
    ],
)
def test_cifar10c_wrong_shape_or_dtype_names_file_found_and_expected(
    tmp_path: Path, array: np.ndarray, found: str
) -> None:
    write_release(tmp_path, [])
    np.save(tmp_path / "fog.npy", array)
    with pytest.raises(DataError, match=rf"fog\.npy has shape {found}; expected \(50, 32, 32, 3\) uint8.*--cifar10c"):
        load_cifar10c(tmp_path, ["fog"])


def test_cifar10c_labels_must_split_into_five_equal_severities(tmp_path: Path) -> None:
    write_release(tmp_path, ["fog"])
    np.save(tmp_path / "labels.npy", np.zeros(49, np.uint8))
    with pytest.raises(DataError, match=r"labels\.npy has shape \(49,\); expected \(5 \* n,\)"):
        load_cifar10c(tmp_path, ["fog"])
    (tmp_path / "labels.npy").write_text("not numpy")
    with pytest.raises(DataError, match="not a readable .npy"):
        load_cifar10c_labels(tmp_path)


def test_cifar10c_subset_comes_from_the_files_own_labels_with_image_folder_data(tmp_path: Path) -> None:
    """Issue 11: image-folder test data load class by class while the release follows the original
    test order, so rows picked by the project's test positions were not a stratified subset of the
    release. The subset is drawn from labels.npy: stratified, and each image keeps its own label."""
    original = class_coloured_split(per_class=8, seed=0).subset(torch.randperm(80, generator=torch.Generator().manual_seed(1)))
    data = load_dataset(write_image_folder(tmp_path / "png", class_coloured_split(2, seed=2), original), tmp_path / "cache")
    assert torch.equal(data.test.labels, data.test.labels.sort().values), "image folders load class by class"
    release = tmp_path / "cifar10c"
    release.mkdir()
    np.save(release / "labels.npy", np.tile(original.labels.numpy(), 5).astype(np.uint8))
    np.save(release / "fog.npy", np.tile(as_hwc(original.images), (5, 1, 1, 1)))
    real = load_cifar10c(release, ["fog"], n=20, seed=0)
    _, clean_rows = stratified_indices(data.test.labels, 20, 0)
    assert torch.equal(torch.bincount(real["labels"], minlength=10), torch.full((10,), 2))
    assert torch.equal(torch.bincount(real["labels"]), torch.bincount(data.test.labels[clean_rows]))
    position = {image.numpy().tobytes(): i for i, image in enumerate(original.images)}
    for image, label in zip(real["fog"][0], real["labels"]):
        assert original.labels[position[image.numpy().tobytes()]] == label
    assert torch.equal(real["fog"][4], real["fog"][0])
    assert len(load_cifar10c(release, ["fog"])["labels"]) == 80
