"""Explanation-quality metrics on toy models and hand-computed cases (fast, offline)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import scipy.sparse.linalg
import scipy.stats
import torch
from torch import nn

from xaiquest.config import ExplainConfig
from xaiquest.explainers.quality import (
    agreement_matrix,
    cascading_randomisation,
    deletion_insertion,
    entropy,
    mass_inside,
    noisy_linear_impute,
    pointing_game,
    randomisation_order,
    road,
    sanity_flag,
    sparseness,
    spearman,
    ssim,
    top_k_overlap,
    topk_iou,
    win_rates,
)
from xaiquest.explainers.quality.faithfulness import gaussian_blur
from xaiquest.explain.stage import _explain_and_score, sanity_explainer
from xaiquest.models import build_model

REGION = (slice(2, 6), slice(2, 6))
"""The 4x4 block of an 8x8 image that RegionModel reads."""


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class RegionModel(nn.Module):
    """Two classes: logit 0 = 2 x mean of the REGION pixels, logit 1 = 0 - the evidence is known exactly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = 2 * x[:, :, REGION[0], REGION[1]].mean((1, 2, 3))
        return torch.stack([evidence, torch.zeros_like(evidence)], 1)


class SumModel(nn.Module):
    """Logit 0 = sum of all pixel values, logit 1 = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x.sum((1, 2, 3))
        return torch.stack([total, torch.zeros_like(total)], 1)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()


def region_setup(n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images bright in REGION, a map that ranks REGION first and a random map."""
    images = torch.randn(n, 3, 8, 8) * 0.1
    images[:, :, REGION[0], REGION[1]] += 3
    region_map = torch.rand(n, 8, 8) * 0.1
    region_map[:, REGION[0], REGION[1]] += 1
    return images, region_map, torch.rand(n, 8, 8), torch.zeros(n, dtype=torch.long)


# --- faithfulness ------------------------------------------------------------------------


def test_deletion_insertion_rewards_the_map_that_finds_the_evidence() -> None:
    images, region_map, random_map, targets = region_setup()
    good = deletion_insertion(RegionModel(), images, region_map, targets, steps=8, insertion_baseline="mean")
    bad = deletion_insertion(RegionModel(), images, random_map, targets, steps=8, insertion_baseline="mean")
    assert (good["deletion_auc"] < bad["deletion_auc"]).all()
    assert (good["insertion_auc"] > bad["insertion_auc"]).all()
    assert good["deletion_curve"].shape == (4, 9)


def test_deletion_insertion_hand_computed_curve() -> None:
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    result = deletion_insertion(
        SumModel(), image, image[:, 0], torch.tensor([0]), steps=4, insertion_baseline="mean", score="logit"
    )
    assert result["deletion_curve"].tolist() == [[10.0, 6.0, 3.0, 1.0, 0.0]]
    assert result["insertion_curve"].tolist() == [[0.0, 4.0, 7.0, 9.0, 10.0]]
    assert result["deletion_auc"].item() == pytest.approx(0.25 * (8 + 4.5 + 2 + 0.5))
    assert result["insertion_auc"].item() == pytest.approx(0.25 * (2 + 5.5 + 8 + 9.5))


def test_deletion_insertion_batching_matches_one_image_at_a_time() -> None:
    model, images, maps = small_cnn(), torch.randn(5, 3, 8, 8), torch.randn(5, 8, 8)
    targets = torch.tensor([0, 1, 2, 1, 0])
    batched = deletion_insertion(model, images, maps, targets, steps=8, batch_size=7)
    for i in range(5):
        single = deletion_insertion(model, images[i : i + 1], maps[i : i + 1], targets[i : i + 1], steps=8)
        for key in ("deletion_curve", "insertion_curve", "deletion_auc", "insertion_auc"):
            torch.testing.assert_close(batched[key][i : i + 1], single[key], atol=1e-6, rtol=1e-5)


def test_deletion_insertion_rejects_unknown_baseline_and_leaves_train_mode() -> None:
    model = small_cnn().train()
    images, maps, targets = torch.randn(2, 3, 8, 8), torch.randn(2, 8, 8), torch.tensor([0, 1])
    deletion_insertion(model, images, maps, targets, steps=2, deletion_baseline=torch.zeros(3, 1, 1))
    assert model.training
    with pytest.raises(Exception, match="baseline"):
        deletion_insertion(model, images, maps, targets, insertion_baseline="checkerboard")


def test_deletion_insertion_default_to_petsiuks_baselines() -> None:
    """Deletion ends at a constant image (the mean colour), insertion starts from a blurred copy."""
    model, images, maps = small_cnn(), torch.randn(3, 3, 8, 8), torch.randn(3, 8, 8)
    targets = torch.tensor([0, 1, 2])
    result = deletion_insertion(model, images, maps, targets, steps=4)
    with torch.no_grad():
        constant = model(torch.zeros_like(images)).softmax(1)[torch.arange(3), targets]
        blurred = model(gaussian_blur(images, 1)).softmax(1)[torch.arange(3), targets]
    torch.testing.assert_close(result["deletion_curve"][:, -1], constant)
    torch.testing.assert_close(result["insertion_curve"][:, 0], blurred)
    swapped = deletion_insertion(model, images, maps, targets, steps=4, deletion_baseline="blur", insertion_baseline="mean")
    torch.testing.assert_close(swapped["deletion_curve"][:, -1], blurred)
    torch.testing.assert_close(swapped["insertion_curve"][:, 0], constant)


def exact_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """ROAD's reference: one sparse linear system per image, solved directly."""
    height, width = removed.shape
    unknown = np.flatnonzero(removed.ravel())
    variable = {pixel: i for i, pixel in enumerate(unknown)}
    matrix = scipy.sparse.lil_matrix((len(unknown), len(unknown)))
    flat = image.reshape(image.shape[0], -1)
    rhs = np.zeros((len(unknown), image.shape[0]))
    for row, pixel in enumerate(unknown):
        y, x = divmod(pixel, width)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy or dx) and 0 <= y + dy < height and 0 <= x + dx < width:
                    weight, neighbour = (1 / 12 if dy and dx else 1 / 6), (y + dy) * width + x + dx
                    matrix[row, row] += weight
                    if neighbour in variable:
                        matrix[row, variable[neighbour]] -= weight
                    else:
                        rhs[row] += weight * flat[:, neighbour]
    filled = flat.copy()
    filled[:, unknown] = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs).T
    return filled.reshape(image.shape)


def test_batched_imputation_solves_roads_linear_system() -> None:
    images = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    removed = torch.rand(2, 12, 12) < 0.3
    removed[1, 2:10, 3:11] = True  # a large hole needs many CG steps
    filled = noisy_linear_impute(images, removed, noise_std=0.0)
    for i in range(2):
        expected = exact_imputation(images[i].numpy(), removed[i].numpy())
        np.testing.assert_allclose(filled[i].numpy(), expected, atol=1e-4)
    assert torch.equal(filled[:, :, ~removed[0]][0], images[0][:, ~removed[0]])


def test_road_rewards_the_map_that_finds_the_evidence_and_batches_exactly() -> None:
    images, region_map, random_map, targets = region_setup()
    kwargs = {"percentages": (0.25, 0.5), "noise_std": 0.0}
    good = road(RegionModel(), images, region_map, targets, **kwargs)
    bad = road(RegionModel(), images, random_map, targets, **kwargs)
    assert (good["road_gap"] > bad["road_gap"]).all()
    assert good["morf_curve"].shape == (4, 2) and good["morf_correct"].dtype == torch.bool
    model, maps = small_cnn(), torch.randn(4, 8, 8)
    batched = road(model, images, maps, targets, batch_size=3, **kwargs)
    single = road(model, images[2:3], maps[2:3], targets[2:3], **kwargs)
    torch.testing.assert_close(batched["morf_curve"][2:3], single["morf_curve"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched["road_gap"][2:3], single["road_gap"], atol=1e-5, rtol=1e-5)


# --- agreement ---------------------------------------------------------------------------


def test_topk_iou_identical_and_disjoint() -> None:
    maps = torch.rand(3, 10, 10)
    assert topk_iou(maps, maps).tolist() == [1.0, 1.0, 1.0]
    ramp = torch.arange(100.0).view(1, 10, 10)
    assert topk_iou(ramp, -ramp, k_frac=0.1).item() == 0.0


def test_spearman_self_negation_and_scipy() -> None:
    maps = torch.rand(4, 6, 6)
    torch.testing.assert_close(spearman(maps, maps), torch.ones(4))
    torch.testing.assert_close(spearman(maps, -maps), -torch.ones(4))
    other = (torch.rand(4, 6, 6) * 4).round()  # many ties: average ranks, as scipy
    tied = (maps * 4).round()
    ours = spearman(tied, other)
    expected = [scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(tied.numpy(), other.numpy())]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6)


def test_agreement_matrix_is_symmetric_with_unit_diagonal() -> None:
    maps = {"a": torch.rand(3, 8, 8), "b": torch.rand(3, 8, 8), "c": torch.rand(3, 8, 8)}
    iou, rank = agreement_matrix(maps)
    for table in (iou, rank):
        assert list(table.index) == list(table.columns) == ["a", "b", "c"]
        np.testing.assert_allclose(np.diag(table.to_numpy()), 1.0, atol=1e-6)
        np.testing.assert_allclose(table.to_numpy(), table.to_numpy().T)
    assert rank.loc["a", "b"] == pytest.approx(spearman(maps["a"], maps["b"]).mean().item())


# --- complexity --------------------------------------------------------------------------


def test_entropy_and_gini_extremes() -> None:
    uniform, one_hot = torch.ones(1, 4, 8), torch.zeros(1, 4, 8)
    one_hot[0, 1, 2] = -5.0  # sign does not matter
    assert entropy(uniform).item() == pytest.approx(math.log(32))
    assert entropy(one_hot).item() == pytest.approx(0.0)
    assert sparseness(uniform).item() == pytest.approx(0.0, abs=1e-6)
    assert sparseness(one_hot).item() == pytest.approx(1 - 1 / 32)


# --- localisation ------------------------------------------------------------------------


def test_localisation_hand_cases() -> None:
    maps = torch.tensor([[[0.9, 0.1], [0.5, 0.2]], [[0.1, 0.9], [0.2, 0.5]], [[0.3, 0.3], [0.3, 0.3]]])
    masks = torch.tensor([[[True, False], [True, False]]] * 2 + [[[False, False], [False, True]]])
    assert top_k_overlap(maps, masks).tolist() == [1.0, 0.0, 0.0]  # third: K=1, the tie goes to pixel (0, 0)
    assert pointing_game(maps, masks).tolist() == [True, False, True]  # third: a tied maximum lies inside
    signed = torch.tensor([[[1.0, -1.0], [3.0, 0.0]]])
    inside = torch.tensor([[[True, False], [False, False]]])
    assert mass_inside(signed, inside).item() == pytest.approx(0.25)
    assert mass_inside(signed, inside, mode="absolute").item() == pytest.approx(0.2)


def test_top_k_overlap_counts_the_share_of_k() -> None:
    maps = torch.arange(16.0).view(1, 4, 4)
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 3, :2] = True  # 12, 13 inside; K = 4 -> top pixels 15, 14, 13, 12
    masks[0, 0, :2] = True  # 0, 1 inside but never in the top 4
    assert top_k_overlap(maps, masks).item() == pytest.approx(0.5)


def test_win_rates_share_ties_across_images_and_seeds() -> None:
    rows = [
        (0, "A", 0.9), (0, "B", 0.5), (0, "C", 0.1),
        (1, "A", 0.5), (1, "B", 0.5), (1, "C", 0.2),
        (2, "A", 0.1), (2, "B", 0.3), (2, "C", 0.8),
    ]  # fmt: skip
    scores = pd.DataFrame(rows, columns=["image", "method", "score"])
    table = win_rates(scores).set_index("method")
    assert table["win_rate"].to_dict() == pytest.approx({"A": 0.5, "B": 0.5 / 3, "C": 1 / 3})
    assert table["contests"].to_dict() == {"A": 3, "B": 3, "C": 3}
    two_seeds = pd.concat([scores.assign(seed=0), scores.assign(seed=1, score=-scores["score"])])
    table = win_rates(two_seeds).set_index("method")  # seed 1 flips every ranking
    assert table["contests"].to_dict() == {"A": 6, "B": 6, "C": 6}
    assert table.loc["A", "wins"] == pytest.approx(1.5 + 1.0)  # seed 1: A is lowest on image 2 only
    assert win_rates(scores, higher_is_better=False).iloc[0]["method"] == "C"


# --- sanity ------------------------------------------------------------------------------


def input_gradient(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    x = images.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).gather(1, targets[:, None]).sum(), x)
    return gradient.abs().sum(1)


def edge_map(_model: nn.Module, images: torch.Tensor, _targets: torch.Tensor) -> torch.Tensor:
    """Ignores the model entirely: what a method that fails the sanity check looks like."""
    gray = images.mean(1)
    return torch.nn.functional.pad((gray[:, :, 1:] - gray[:, :, :-1]).abs(), (0, 1))


def test_ssim_of_identical_maps_is_one() -> None:
    maps = torch.rand(3, 16, 16)
    torch.testing.assert_close(ssim(maps, maps), torch.ones(3))
    assert (ssim(maps, torch.rand(3, 16, 16)) < 0.5).all()


def test_cascading_randomisation_separates_model_dependent_maps() -> None:
    model = build_model("fastnet", 10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, targets = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    gradient_table = cascading_randomisation(model, images, targets, input_gradient)
    assert list(gradient_table["layer"]) == ["none", "head", "stage3", "stage2", "stage1", "stem"]
    assert list(gradient_table.columns) == ["step", "layer", "spearman", "ssim"]
    assert gradient_table.loc[0, "spearman"] == pytest.approx(1.0)
    assert gradient_table["spearman"].iloc[-1] < 0.8 and gradient_table["ssim"].iloc[-1] < 0.3
    assert not sanity_flag(gradient_table)
    assert sanity_flag(gradient_table, measures=["spearman"], threshold=0.3)
    edge_table = cascading_randomisation(model, images, targets, edge_map)
    np.testing.assert_allclose(edge_table[["spearman", "ssim"]].to_numpy(), 1.0, atol=1e-6)
    assert sanity_flag(edge_table)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_randomisation_order_of_plain_models_looks_through_wrappers() -> None:
    wrapped = nn.Sequential(small_cnn())
    assert [name for name, _ in randomisation_order(wrapped)] == ["0.4", "0.0"]


# --- repeatability and the stage's quality row ------------------------------------------


def test_sanity_step_zero_shows_a_sampling_methods_own_noise() -> None:
    """With a new seed per call, step 0 (the untouched copy) is below 1 for SmoothGrad, exactly 1 for Grad-CAM."""
    model, images, targets = build_model("fastnet", 10).eval(), torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    cfg = ExplainConfig()
    noisy = cascading_randomisation(model, images, targets, sanity_explainer("smoothgrad", cfg))
    assert noisy.loc[0, "spearman"] < 0.99
    exact = cascading_randomisation(model, images, targets, sanity_explainer("gradcam", cfg))
    assert exact.loc[0, "spearman"] == pytest.approx(1.0)


def test_quality_row_names_its_baselines_and_measures_seed_repeatability() -> None:
    model, images, targets = build_model("fastnet", 10).eval(), torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2])
    cfg = ExplainConfig(sanity_images=1, deletion_steps=4, deletion_baseline="blur", insertion_baseline="mean")
    _, row = _explain_and_score("smoothgrad", model, images, targets, cfg)
    assert row["deletion_baseline"] == "blur" and row["insertion_baseline"] == "mean"
    assert 0 < row["seed_spearman"] < 0.999
    assert 0 < row["road_gap_seed_diff"] < 0.1
    _, deterministic = _explain_and_score("saliency", model, images, targets, cfg)
    assert math.isnan(deterministic["seed_spearman"])
    assert ExplainConfig().deletion_baseline == "mean" and ExplainConfig().insertion_baseline == "blur"
