"""Layer-wise metrics: CKA properties, edge alignment, spectral energy, hooks and figures (fast, offline)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from xaiquest.errors import ConfigError
from xaiquest.models import build_model, named_depths
from xaiquest.stress import (
    collect_activations,
    depth_metric_figure,
    edge_alignment,
    edge_magnitude,
    first_layer_filters_figure,
    high_frequency_energy,
    layerwise_table,
    linear_cka,
)
from xaiquest.stress.layerwise import filter_tiles


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def smooth_images(n: int) -> torch.Tensor:
    """uint8 images with real structure: upsampled 4x4 noise, so they have edges but no pixel noise."""
    coarse = torch.rand(n, 3, 4, 4) * 255
    return F.interpolate(coarse, size=32, mode="bilinear", align_corners=False).round().to(torch.uint8)


def reference_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al. (2019) eq. for linear CKA in feature space: ||Y'X||^2 / (||X'X|| ||Y'Y||)."""
    x = (x - x.mean(0)).double()
    y = (y - y.mean(0)).double()
    return ((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())).item()


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_identical_inputs_is_one(debiased: bool) -> None:
    x = torch.randn(100, 30)
    assert linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-6)


def test_cka_matches_the_feature_space_formula() -> None:
    x, y = torch.randn(80, 12), torch.randn(80, 7)
    y = y + x[:, :7]  # related, so the value is far from 0 and 1
    assert linear_cka(x, y) == pytest.approx(reference_cka(x, y), rel=1e-5)


def test_cka_of_independent_features_is_near_zero() -> None:
    x, y = torch.randn(2000, 20), torch.randn(2000, 20)
    assert 0 < linear_cka(x, y) < 0.03  # the plain estimate is biased by about D/N = 0.01
    assert abs(linear_cka(x, y, debiased=True)) < 0.005


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(debiased: bool) -> None:
    x, z = torch.randn(200, 16), torch.randn(200, 10)
    z = z + x[:, :10] * 0.5
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    transformed = 3.5 * x @ q + 2.0  # rotation, scale and shift
    assert linear_cka(x, transformed, debiased) == pytest.approx(1.0, abs=1e-5)
    assert linear_cka(transformed, z, debiased) == pytest.approx(linear_cka(x, z, debiased), abs=1e-5)
    stretched = x * torch.linspace(0.1, 5, 16)  # anisotropic scaling is not an invariance
    assert linear_cka(x, stretched, debiased) < 0.99


def test_cka_flattens_feature_maps_and_checks_inputs() -> None:
    maps = torch.randn(20, 4, 5, 5)
    assert linear_cka(maps, maps.flatten(1) * 2) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        linear_cka(torch.randn(5, 3), torch.randn(6, 3))
    with pytest.raises(ValueError):
        linear_cka(torch.randn(3, 3), torch.randn(3, 3), debiased=True)


def test_edge_alignment_is_one_for_the_edge_map_and_low_for_noise() -> None:
    images = smooth_images(6)
    edges = edge_magnitude(images)
    assert edges.shape == (6, 32, 32) and (edges >= 0).all()
    assert edge_alignment(edges[:, None], images) == pytest.approx(1.0, abs=1e-5)
    pooled = F.avg_pool2d(edges[:, None], 2).expand(6, 5, 16, 16)  # lower resolution, several channels
    assert edge_alignment(pooled, images) == pytest.approx(1.0, abs=1e-5)
    assert edge_alignment(-pooled, images) == pytest.approx(1.0, abs=1e-5)  # |activation|
    assert abs(edge_alignment(torch.randn(6, 8, 16, 16), images)) < 0.2


def test_edge_magnitude_hand_case() -> None:
    step = torch.zeros(1, 3, 6, 6, dtype=torch.uint8)
    step[:, :, :, 3:] = 100  # a vertical edge between columns 2 and 3
    edges = edge_magnitude(step)[0]
    assert torch.allclose(edges[:, 2], torch.full((6,), 400.0)) and torch.allclose(edges[:, 3], torch.full((6,), 400.0))
    assert (edges[:, :2] == 0).all() and (edges[:, 4:] == 0).all()


def test_high_frequency_energy_of_noise_exceeds_smooth_maps() -> None:
    noise = torch.randn(4, 8, 16, 16)
    rows = torch.arange(16).float()
    smooth = torch.sin(2 * torch.pi * rows / 16)[:, None].expand(16, 16) + torch.zeros(4, 8, 16, 16)
    checkerboard = (-1.0) ** (rows[:, None] + rows[None, :]) + torch.zeros(2, 1, 16, 16)
    assert high_frequency_energy(noise) == pytest.approx(0.8, abs=0.05)
    assert high_frequency_energy(smooth) == pytest.approx(0.0, abs=1e-6)
    assert high_frequency_energy(checkerboard) == pytest.approx(1.0, abs=1e-6)
    assert high_frequency_energy(smooth + 5.0) == pytest.approx(0.0, abs=1e-6)  # the mean is not counted


def test_collect_activations_hooks_every_depth_and_cleans_up() -> None:
    model = build_model("resnet_small", 10).train()
    images = smooth_images(5)
    activations = collect_activations(model, images, ["stem", "stage2"], batch_size=2)
    assert set(activations) == {"stem", "stage2"}
    assert activations["stem"].shape[0] == 5 and activations["stem"].ndim == 4
    model.eval()
    from xaiquest.data import to_float

    with torch.no_grad():
        expected = named_depths(model)["stem"](to_float(images))
    torch.testing.assert_close(activations["stem"], expected)
    assert not any(module._forward_hooks for module in model.modules())
    with pytest.raises(ConfigError):
        collect_activations(model, images, ["stage9"])


def test_collect_activations_restores_training_mode() -> None:
    model = build_model("resnet_small", 10).train()
    collect_activations(model, smooth_images(2), ["stem"])
    assert model.training


def test_layerwise_table_has_one_row_per_depth() -> None:
    model = build_model("vgg_small", 10)
    clean = smooth_images(12)
    noisy = (clean.float() + torch.randn(clean.shape) * 40).clamp(0, 255).to(torch.uint8)
    table = layerwise_table(model, clean, noisy)
    assert list(table["depth"]) == list(named_depths(model))
    assert list(table["relative_depth"]) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert table[["edge_alignment_clean", "hf_energy_clean", "hf_energy_noisy", "cka_clean_vs_noisy"]].notna().all().all()
    assert (table["cka_clean_vs_noisy"] <= 1 + 1e-9).all()
    assert table.loc[0, "hf_energy_noisy"] > table.loc[0, "hf_energy_clean"]
    same = layerwise_table(model, clean, clean, depths=["stage1"])
    assert same.loc[0, "cka_clean_vs_noisy"] == pytest.approx(1.0, abs=1e-6)


def test_first_layer_filters_figure_shows_every_stem_filter() -> None:
    model = build_model("resnet_small", 10)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    fig = first_layer_filters_figure(model)
    assert sum(1 for ax in fig.axes if ax.images) == conv.out_channels
    tiles = filter_tiles(torch.tensor([[[[0.0, 2.0]], [[-1.0, 0.0]], [[0.5, 0.0]]]]))
    assert tiles.shape == (1, 1, 2, 3)
    assert tiles.min() >= 0 and tiles.max() <= 1
    assert tiles[0, 0, 0].tolist() == [0.5, 0.25, 0.625] and tiles[0, 0, 1].tolist() == [1.0, 0.5, 0.5]


def test_depth_metric_figure_puts_architectures_on_relative_depth() -> None:
    table = pd.DataFrame(
        {
            "run": ["a"] * 3 + ["b"] * 5,
            "depth": ["stem", "stage1", "stage2", "stem", "stage1", "stage2", "stage3", "stage4"],
            "relative_depth": [0, 0.5, 1, 0, 0.25, 0.5, 0.75, 1],
            "cka_clean_vs_noisy": [0.9, 0.8, 0.7, 0.95, 0.9, 0.8, 0.7, 0.6],
            "hf_energy_clean": [0.3] * 8,
        }
    )
    fig = depth_metric_figure(table, ["cka_clean_vs_noisy", "hf_energy_clean"], "layers")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    assert list(fig.axes[0].lines[1].get_xdata()) == [0, 0.25, 0.5, 0.75, 1]
    assert [text.get_text() for text in fig.axes[0].get_legend().get_texts()] == ["a", "b"]
    assert [ax.get_title() for ax in fig.axes] == ["cka_clean_vs_noisy", "hf_energy_clean"]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    assert Image.open(buffer).size == (round(4.2 * 2 * 40), round(3.4 * 40))  # one 4.2-inch panel per metric
