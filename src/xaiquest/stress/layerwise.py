"""Layer-wise view of a model: what each named depth responds to, and how much noise changes it.

Per depth (``stem``, ``stage1``, ...): alignment of activation energy with input edges, the share
of high spatial frequencies in the feature maps, and the linear CKA between the representations
of clean and noisy copies of the same images. Definitions: ``docs/stress.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from xaiquest.data import to_float
from xaiquest.errors import ConfigError
from xaiquest.inference import collect_activations
from xaiquest.metrics.representation import linear_cka
from xaiquest.models import named_depths
from xaiquest.stress.probes import LUMA

SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])

HF_CUTOFF = 0.5
"""High frequency = radial frequency above half the Nyquist frequency (0.25 cycles/pixel)."""


def edge_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude ``[N,H,W]`` of the luma of uint8 images (replicated borders: no frame edge)."""
    luma = (images.float() * torch.tensor(LUMA, device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    kernels = torch.stack([SOBEL, SOBEL.T])[:, None].to(images.device)
    gradients = F.conv2d(padded, kernels)
    return gradients.norm(dim=1)


def row_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of matching rows of ``[N,D]`` tensors, ``[N]``; NaN for a constant row."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def edge_alignment(activations: torch.Tensor, images: torch.Tensor) -> float:
    """Mean over images of corr(channel-mean |activation|, input edge magnitude area-downsampled to h x w).

    Near 1: the depth's energy sits on edges (an edge detector); near 0: unrelated to edges.
    Images whose maps are constant (e.g. 1x1) have no correlation and are skipped (NaN if all are).
    """
    energy = activations.abs().mean(1)
    edges = F.adaptive_avg_pool2d(edge_magnitude(images)[:, None].to(energy.device), energy.shape[-2:])[:, 0]
    return row_correlation(energy.flatten(1), edges.flatten(1)).nanmean().item()


def high_frequency_energy(activations: torch.Tensor, cutoff: float = HF_CUTOFF) -> float:
    """Mean over channel maps of the share of spectral energy above ``cutoff`` x Nyquist (radially).

    Each ``h x w`` map has its mean removed (DC is not structure), then ``|FFT2|^2`` is split at
    the radius ``sqrt(fy^2 + fx^2) > cutoff`` with frequencies in units of Nyquist. White noise
    scores about 0.8 at the default cutoff, a smooth map near 0. Constant maps are skipped.
    """
    height, width = activations.shape[-2:]
    maps = activations.float() - activations.float().mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(maps).abs().square()
    fy = torch.fft.fftfreq(height, device=maps.device) * 2
    fx = torch.fft.fftfreq(width, device=maps.device) * 2
    high = (fy[:, None].square() + fx[None, :].square()).sqrt() > cutoff
    share = (power * high).sum((-2, -1)) / power.sum((-2, -1))
    return share.nanmean().item()


def layerwise_table(
    model: nn.Module,
    clean_images: torch.Tensor,
    noisy_images: torch.Tensor,
    depths: Sequence[str] | None = None,
    debiased: bool = False,
) -> pd.DataFrame:
    """One row per depth: edge alignment and HF energy on clean and noisy images, CKA(clean, noisy).

    ``noisy_images`` are noisy copies of ``clean_images`` (same order). Edge alignment uses the
    *clean* images' edges for both: it asks whether the depth still follows the object's
    structure under noise. ``relative_depth`` = index / (depths - 1), 0 = stem, 1 = last stage.
    """
    names = list(depths or named_depths(model))
    clean = collect_activations(model, clean_images, names)
    noisy = collect_activations(model, noisy_images, names)
    rows = [
        {
            "depth": depth,
            "depth_index": index,
            "relative_depth": index / max(len(names) - 1, 1),
            "edge_alignment_clean": edge_alignment(clean[depth], clean_images),
            "edge_alignment_noisy": edge_alignment(noisy[depth], clean_images),
            "hf_energy_clean": high_frequency_energy(clean[depth]),
            "hf_energy_noisy": high_frequency_energy(noisy[depth]),
            "cka_clean_vs_noisy": linear_cka(clean[depth], noisy[depth], debiased),
        }
        for index, depth in enumerate(names)
    ]
    return pd.DataFrame(rows)


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first convolution on the RGB input (the stem's), as registered."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3), None)
    if conv is None:
        raise ConfigError(f"{type(model).__name__} has no convolution on 3-channel input")
    return conv


def filter_tiles(weight: torch.Tensor) -> np.ndarray:
    """RGB tiles ``[O,k,k,3]`` in [0, 1]: each filter scaled by its own max |weight|, zero at mid-grey."""
    weight = weight.detach().float().cpu()
    scale = weight.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-12)
    return (0.5 + weight / (2 * scale)).permute(0, 2, 3, 1).numpy()


def first_layer_filters_figure(model: nn.Module, title: str = "first-layer filters") -> Figure:
    """The stem's first conv filters as RGB tiles (per-filter scale, grey = 0), in a near-square grid."""
    tiles = filter_tiles(first_conv(model).weight)
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    fig = Figure(figsize=(0.6 * columns, 0.6 * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile in zip(axes.flat, tiles):
        ax.imshow(tile, interpolation="nearest")
    fig.suptitle(f"{title} ({tiles.shape[1]}x{tiles.shape[2]})", fontsize=8)
    return fig


def depth_metric_figure(table: pd.DataFrame, metrics: str | Sequence[str], title: str = "") -> Figure:
    """One panel per metric: relative depth on x (0 = stem, 1 = last stage), one line per ``run``.

    Architectures have different numbers of stages, so depth is relative; each point is labelled
    with its depth name.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    fig = Figure(figsize=(4.2 * len(metrics), 3.4))
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    for ax, metric in zip(axes, metrics):
        for run, rows in table.groupby("run", sort=False):
            rows = rows.sort_values("relative_depth")
            ax.plot(rows["relative_depth"], rows[metric], marker="o", label=str(run))
            for _, row in rows.iterrows():
                ax.annotate(row["depth"], (row["relative_depth"], row[metric]), fontsize=5, alpha=0.6)
        ax.set_xlabel("relative depth (0 = stem, 1 = last stage)", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
