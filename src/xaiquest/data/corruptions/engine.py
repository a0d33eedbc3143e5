"""Registry and entry point of the batched CIFAR-10-C corruption engine.

The reference generator (Hendrycks & Dietterich 2019, ``make_cifar_c.py``) corrupts one PIL
image at a time with NumPy, scikit-image, OpenCV and ImageMagick; generating the 19 x 5 x 10,000
images takes hours. Here every corruption is one registered function that corrupts a whole
uint8 batch with tensor ops on the batch's device, with the reference's parameter table attached,
so the parameters are inspectable (``benchmarks/corruption_speed.py`` times it against the
reference generator side by side).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xaiquest.data.corruptions.sizing import sized_parameters
from xaiquest.data.pixels import CIFAR_PIXELS, rows_per_batch
from xaiquest.errors import DataError
from xaiquest.registry import Registry

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 corruptions of the CIFAR-10-C benchmark (mCE), in the reference generator's order."""

EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out corruptions the reference releases for validation."""

ALL_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS

FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "brightness", "spatter"),
    "digital": ("contrast", "saturate", "elastic_transform", "pixelate", "jpeg_compression"),
}
"""The paper's grouping (Hendrycks & Dietterich 2019: brightness counts as weather), each extra
corruption placed with its benchmark relatives."""

Params = Mapping[str, Any]
CorruptionFn = Callable[[torch.Tensor, Params, torch.Generator], torch.Tensor]
"""(uint8 images [N,3,S,S], parameters of one severity for size S, seeded generator) -> uint8 images."""


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str
    apply: CorruptionFn
    table: tuple[Params, ...]  # parameters of severities 1..5


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register_corruption(name: str, family: str, table: Sequence[Params]) -> Callable[[CorruptionFn], CorruptionFn]:
    """Register ``fn`` under ``name`` with its reference parameters, one mapping per severity."""
    if len(table) != len(SEVERITIES):
        raise ValueError(f"corruption {name!r} needs {len(SEVERITIES)} parameter sets, got {len(table)}")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; available: {', '.join(FAMILIES)}")

    def decorator(fn: CorruptionFn) -> CorruptionFn:
        CORRUPTIONS.register(name)(Corruption(name, family, fn, tuple(dict(p) for p in table)))
        return fn

    return decorator


def _check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(map(str, SEVERITIES))}; got {severity!r}")
    return severity


def corruption_parameters(name: str, severity: int, size: int = 32) -> dict[str, Any]:
    """The parameters ``corrupt(images, name, severity)`` uses on ``size``-px images (a copy):
    the CIFAR-10-C set at 32 px, following the size otherwise (``sizing``)."""
    return sized_parameters(name, severity, CORRUPTIONS.get(name).table[_check_severity(severity) - 1], size)


CORRUPT_PIXELS = 10_000 * CIFAR_PIXELS
"""Most pixels ``corrupt`` processes in one piece: the CIFAR-10 test set, so every 32-px call the audit makes
is one piece, as before. At 224 px that is 204 images; all 2,000 at once held several float copies
(7.3 GiB peak in the 224-px memory benchmark)."""


def _stream_seed(name: str, seed: int, piece: int = 0) -> int:
    """Different corruptions draw independent noise for one seed; severities share it on purpose,
    so the severities of one image differ only by the parameters. Piece 0 is the stream of a batch
    corrupted in one piece; each further piece of a large batch has its own."""
    return zlib.crc32(f"{name}:{seed}".encode() if piece == 0 else f"{name}:{seed}:{piece}".encode())


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``images`` (uint8 ``[N,3,S,S]``) under corruption ``name`` at ``severity`` 1..5, with the
    parameters of the images' size (``corruption_parameters``).

    The batch is corrupted on the images' device in pieces of at most ``CORRUPT_PIXELS`` pixels
    (one piece for up to 10,000 CIFAR images), which bounds the float copies at large sizes. The
    result is deterministic for (batch, name, seed, device): each piece's random draws come from a
    generator seeded by ``name``, ``seed`` and the piece, laid out by position, so an image's
    result depends on its position and on the batch size but not on the other images' content
    (except for shot noise on CPU, whose Poisson sampler draws a content-dependent amount).
    Corrupting the halves of a batch separately therefore gives other noise than corrupting it
    whole; seed chunks differently, e.g. ``seed=base + chunk``, when generating a dataset in
    pieces. CPU and CUDA generators differ.
    """
    spec = CORRUPTIONS.get(name)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise DataError(f"corrupt() needs square uint8 images [N,3,S,S], got {images.dtype} {list(images.shape)}")
    params = corruption_parameters(name, severity, images.shape[-1])
    if images.shape[0] == 0:
        return images.clone()
    rows = rows_per_batch(len(images), images, CORRUPT_PIXELS)
    pieces = [spec.apply(piece, params, torch.Generator(device=images.device).manual_seed(_stream_seed(name, seed, k)))
              for k, piece in enumerate(images.split(rows))]
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


# --- helpers shared by the corruption modules ------------------------------------------------------


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1], the reference's ``np.array(x) / 255.``."""
    return images.float() / 255


def floor_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 as the reference's final ``np.uint8(np.clip(x, 0, 1) * 255)``:
    truncation, not rounding."""
    return (x.clamp(0, 1) * 255).floor_().to(torch.uint8)


def uniform(generator: torch.Generator, shape: Sequence[int], low: float, high: float) -> torch.Tensor:
    """U(low, high) float32 samples on the generator's device."""
    sample = torch.rand(tuple(shape), generator=generator, device=generator.device)
    return sample.mul_(high - low).add_(low)


def normal(generator: torch.Generator, shape: Sequence[int], mean: float, std: float) -> torch.Tensor:
    """N(mean, std) float32 samples on the generator's device."""
    sample = torch.randn(tuple(shape), generator=generator, device=generator.device)
    return sample.mul_(std).add_(mean)
