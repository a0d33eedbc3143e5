"""Stress library: planted patch, probes, GrabCut masks, focus shift and figures on hand-made cases (fast, offline)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from matplotlib.figure import Figure
from torch import nn

from xaiquest.data import Split
from xaiquest.data.corruptions import corrupt
from xaiquest.errors import ConfigError, UnknownNameError
from xaiquest.stress import (
    PROBES,
    apply_probe,
    background_only,
    background_swap,
    before_after_figure,
    centre_of_mass,
    centre_prior,
    com_displacement,
    fallback_share,
    focus_shift_table,
    foreground_masks,
    mask_gallery_figure,
    mean_colour,
    object_only,
    occluded_area,
    occlusion_sensitivity,
    other_class_donors,
    patch_figure,
    permutation_index,
    probe_curve_figure,
    rank_correlation,
    reliance_metrics,
    share_on_region,
)
from xaiquest.config import ExperimentConfig, PatchConfig, load_config
from xaiquest.patch import at_image_side, patch_side, poison_split, stamp, stamp_parameters
from xaiquest.pipeline import plan_line
from xaiquest.runs import AuditData, run_keys, stress_keys, train_fingerprint
from xaiquest.store import RunStore, fingerprint
from xaiquest.stress.probes import stream_seed

MEAN = mean_colour()[0, :, 0, 0]


def random_images(n: int, seed: int = 0, low: int = 1, high: int = 254) -> torch.Tensor:
    """uint8 images avoiding 0 and 255, so a stamped (255, 0, 255) pixel differs in every channel."""
    return torch.randint(low, high, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def disc_images(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A red disc (radius 8) on a slightly noisy blue-grey background, and the disc's mask."""
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    disc = (rows - 16) ** 2 + (cols - 15) ** 2 < 64
    noise = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 6
    background = torch.tensor([70.0, 90.0, 130.0]).view(1, 3, 1, 1)
    images = torch.where(disc, torch.tensor([210.0, 40.0, 30.0]).view(1, 3, 1, 1), background) + noise
    return images.round().clamp(0, 255).to(torch.uint8), disc.expand(n, 32, 32)


def png_bytes(fig: Figure) -> int:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return len(buffer.getvalue())


# --- planted patch ------------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["fixed", "random"])
def test_stamp_mask_is_exactly_the_recoloured_pixels(position: str) -> None:
    images = random_images(16)
    spec = PatchConfig(target_class=0, fraction=1.0, size=3, position=position)
    stamped, masks = stamp(images, spec, torch.Generator().manual_seed(1))
    assert masks.dtype == torch.bool and masks.shape == (16, 32, 32)
    assert torch.equal((stamped != images).any(1), masks)
    assert (stamped.permute(0, 2, 3, 1)[masks] == torch.tensor([255, 0, 255], dtype=torch.uint8)).all()
    assert (masks.sum((1, 2)) == 9).all()
    rows, cols = masks.any(2), masks.any(1)
    assert (rows.sum(1) == 3).all() and (cols.sum(1) == 3).all()  # one 3x3 square, not scattered pixels


def test_fixed_patch_sits_in_its_corner_with_the_margin() -> None:
    images = random_images(2)
    _, bottom_right = stamp(images, PatchConfig(target_class=0, fraction=1.0, size=3), margin=1)
    assert bottom_right[0, 28:31, 28:31].all() and bottom_right[0].sum() == 9
    _, top_left = stamp(images, PatchConfig(target_class=0, fraction=1.0, size=4), corner="top-left", margin=0)
    assert top_left[1, :4, :4].all() and top_left[1].sum() == 16


def test_random_patch_is_deterministic_and_varies() -> None:
    images = random_images(32)
    spec = PatchConfig(target_class=0, fraction=1.0, position="random")
    first = stamp(images, spec, torch.Generator().manual_seed(3))[1]
    again = stamp(images, spec, torch.Generator().manual_seed(3))[1]
    assert torch.equal(first, again)
    assert len({tuple(m.nonzero()[0].tolist()) for m in first}) > 10


def test_poison_split_stamps_exactly_round_p_target_images() -> None:
    labels = torch.tensor([0] * 20 + [1] * 37 + [2] * 13)
    split = Split(random_images(len(labels)), labels)
    spec = PatchConfig(target_class=1, fraction=0.3)
    poisoned_split, poisoned = poison_split(split, spec, seed=5)
    assert poisoned.sum() == round(0.3 * 37) == 11
    assert (labels[poisoned] == 1).all()
    assert torch.equal(poisoned_split.labels, labels)
    changed = (poisoned_split.images != split.images).flatten(1).any(1)
    assert torch.equal(changed, poisoned)
    again_split, again = poison_split(split, spec, seed=5)
    assert torch.equal(again, poisoned) and torch.equal(again_split.images, poisoned_split.images)
    assert not torch.equal(poison_split(split, spec, seed=6)[1], poisoned)


@pytest.mark.parametrize(("side", "stamped", "margin"), [(32, 3, 1), (64, 6, 2), (224, 21, 7)])
def test_the_patch_scales_with_the_image_side(side: int, stamped: int, margin: int) -> None:
    images = torch.full((2, 3, side, side), 7, dtype=torch.uint8)
    _, masks = stamp(images, PatchConfig(target_class=0, fraction=1.0, size=3))
    end = side - margin
    assert (masks.sum((1, 2)) == stamped * stamped).all()
    assert masks[:, end - stamped : end, end - stamped : end].all()  # the same corner, the margin scaled too
    _, random_masks = stamp(images, PatchConfig(size=3, position="random"), torch.Generator().manual_seed(0))
    assert (random_masks.sum((1, 2)) == stamped * stamped).all()


def test_the_size_rule_rounds_half_up_and_keeps_one_pixel() -> None:
    assert [at_image_side(1, s) for s in (15, 16, 47, 48, 80)] == [0, 1, 1, 2, 3]  # 0.47, 0.5, 1.47, 1.5, 2.5
    assert patch_side(PatchConfig(size=1), 8, 8) == 1 and patch_side(PatchConfig(size=3), 64, 48) == 5  # shorter side


def test_at_32_px_fingerprints_are_unchanged_and_elsewhere_record_the_stamped_side() -> None:
    patch = PatchConfig(size=3)
    assert stamp_parameters(patch, 32) == {**patch.model_dump(), "corner": "bottom-right", "margin": 1}
    assert stamp_parameters(patch, 64) | {"size": 3, "margin": 1} == stamp_parameters(patch, 32)
    assert (stamp_parameters(patch, 64)["size"], stamp_parameters(patch, 64)["margin"]) == (6, 2)


@pytest.mark.parametrize(("side", "unchanged"), [(32, True), (64, False)])
def test_a_train_fingerprint_changes_only_where_the_patch_scales(side: int, unchanged: bool) -> None:
    config = ExperimentConfig(name="t", models=["fastnet"], variants={"patch": {"patch": {"size": 3}}})
    split = Split(torch.zeros(2, 3, side, side, dtype=torch.uint8), torch.tensor([0, 1]))
    data = AuditData(split, split, split, ("a", "b"), "synthetic", Path("synthetic"), "synthetic")
    key = run_keys(config)[0]
    before = fingerprint("train", "fastnet", key.seed, config.train_config(key.spec, key.variant).model_dump(), "synthetic")
    assert (train_fingerprint(config, data, key) == before) is unchanged


def test_patch_rejects_bad_values() -> None:
    for bad in ({"fraction": 1.5}, {"colour": (255, 0, 256)}, {"size": 0}, {"position": "centre"}):
        with pytest.raises(ValidationError):
            PatchConfig(**bad)
    with pytest.raises(ConfigError):
        stamp(random_images(1), PatchConfig(fraction=0.1), corner="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        stamp(random_images(1), PatchConfig(fraction=0.1, size=40))


def one_hot_logits(predictions: list[int], classes: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predictions), classes).float()


def test_reliance_metrics_hand_case() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    clean = one_hot_logits([0, 1, 1, 1, 2, 0])
    stamped = one_hot_logits([2, 2, 2, 1, 2, 2])
    metrics = reliance_metrics(clean, stamped, labels, target_class=2)
    assert metrics["clean_accuracy"] == pytest.approx(4 / 6)
    assert metrics["stamped_accuracy"] == pytest.approx(3 / 6)
    assert metrics["attack_success"] == pytest.approx(3 / 4)  # non-target images 0,1,2,3; three go to class 2
    assert metrics["target_rate_clean"] == 0
    assert metrics["target_recall_without_patch"] == pytest.approx(1 / 2)
    assert metrics["target_recall_with_patch"] == 1
    assert metrics["f1_clean"] == pytest.approx([0.5, 0.8, 2 / 3])  # class 0: tp 1, fp 1, fn 1 -> 2/(2+1+1)
    assert metrics["f1_stamped"] == pytest.approx([0.0, 2 / 3, 4 / 7])


# --- probes ------------------------------------------------------------------------------------


def test_every_probe_declares_intensities_and_keeps_shape_and_dtype() -> None:
    images, _ = disc_images(3)
    foreground = centre_prior(32, 32).expand(3, 32, 32)
    for name in PROBES:
        probe = PROBES.get(name)
        assert probe.intensities and probe.description
        for intensity in probe.intensities:
            out, changed = apply_probe(name, images, intensity, torch.Generator().manual_seed(0), foreground=foreground)
            assert out.dtype == torch.uint8 and out.shape == images.shape, (name, intensity)
            assert changed.dtype == torch.bool and changed.shape == (3, 32, 32), (name, intensity)
            assert torch.equal(out[~changed[:, None].expand_as(out)], images[~changed[:, None].expand_as(images)])


def test_apply_probe_rejects_bad_input() -> None:
    with pytest.raises(UnknownNameError):
        apply_probe("no_such_probe", random_images(1), 1)
    with pytest.raises(ConfigError):
        apply_probe("grayscale", random_images(1).float(), "luma")
    with pytest.raises(ConfigError):
        apply_probe("channel_permutation", random_images(1), "RRB")
    with pytest.raises(ConfigError):
        apply_probe("occlusion_centre", random_images(1), 40)


@pytest.mark.parametrize("order", ["RGB", *PROBES.get("channel_permutation").intensities])
def test_channel_permutation_is_exact_and_invertible(order: str) -> None:
    images = random_images(4)
    out, changed = apply_probe("channel_permutation", images, order)
    for k, letter in enumerate(order):
        assert torch.equal(out[:, k], images[:, "RGB".index(letter)])
    inverse = "".join("RGB"[i] for i in np.argsort(permutation_index(order)))
    assert torch.equal(apply_probe("channel_permutation", out, inverse)[0], images)
    assert changed.all()


@pytest.mark.parametrize("side", [4, 8, 12, 16])
def test_centre_occlusion_geometry(side: int) -> None:
    images = random_images(3)
    out, masks = apply_probe("occlusion_centre", images, side)
    start = (32 - side) // 2
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[start : start + side, start : start + side] = True
    assert torch.equal(masks, expected.expand(3, 32, 32))
    assert torch.allclose(occluded_area(masks), torch.full((3,), side * side / 1024))
    assert (out.permute(0, 2, 3, 1)[masks] == MEAN).all()
    assert torch.equal(out.permute(0, 2, 3, 1)[~masks], images.permute(0, 2, 3, 1)[~masks])


@pytest.mark.parametrize("side", [4, 8, 12, 16])
def test_border_occlusion_touches_an_edge_inside_the_image(side: int) -> None:
    images = random_images(200)
    _, masks = apply_probe("occlusion_border", images, side, torch.Generator().manual_seed(0))
    assert (masks.sum((1, 2)) == side * side).all()  # the whole square lies inside the image
    rows, cols = masks.any(2), masks.any(1)
    assert (rows.sum(1) == side).all() and (cols.sum(1) == side).all()
    edges = torch.stack([rows[:, 0], rows[:, -1], cols[:, 0], cols[:, -1]], 1)
    assert edges.any(1).all()
    assert edges.sum(0).min() > 20  # every edge gets used
    if side <= 12:
        assert not masks[:, 15:17, 15:17].any()  # unlike the centre probe, never on the centre
    assert not torch.equal(masks, apply_probe("occlusion_border", images, side, torch.Generator().manual_seed(1))[1])


@pytest.mark.parametrize("channel", ["R", "G", "B"])
def test_channel_drop_sets_that_channel_to_its_mean(channel: str) -> None:
    images = random_images(3)
    out, _ = apply_probe("channel_drop", images, channel)
    index = "RGB".index(channel)
    assert (out[:, index] == MEAN[index]).all()
    keep = [i for i in range(3) if i != index]
    assert torch.equal(out[:, keep], images[:, keep])


def test_grayscale_is_luma_in_every_channel() -> None:
    images = random_images(3)
    out, _ = apply_probe("grayscale", images, "luma")
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    grey = torch.full((1, 3, 4, 4), 77, dtype=torch.uint8)
    assert torch.equal(apply_probe("grayscale", grey, "luma")[0], grey)
    pixel = images[0, :, 0, 0].double()
    assert out[0, 0, 0, 0] == round(0.299 * pixel[0].item() + 0.587 * pixel[1].item() + 0.114 * pixel[2].item())


@pytest.mark.parametrize(("probe", "corruption"), [("noise", "gaussian_noise"), ("blur", "gaussian_blur")])
def test_noise_and_blur_call_the_corruption_engine(probe: str, corruption: str) -> None:
    images, _ = disc_images(4)
    seed = stream_seed(torch.Generator().manual_seed(9))
    distances = []
    for severity in (1, 5):
        out, changed = apply_probe(probe, images, severity, torch.Generator().manual_seed(9))
        assert torch.equal(out, corrupt(images, corruption, severity, seed)) and changed.all()
        distances.append((out.float() - images.float()).abs().mean())
    assert distances[1] > distances[0]


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def naive_occlusion(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, window: int, stride: int):
    """One image, one window at a time: the definition, spelled out."""
    from xaiquest.data import to_float

    maps = torch.zeros(len(images), *images.shape[2:])
    counts = torch.zeros(images.shape[2:])
    with torch.no_grad():
        for i, image in enumerate(to_float(images)):
            clean = model(image[None]).softmax(1)[0, targets[i]]
            for top in range(0, images.shape[2] - window + 1, stride):
                for left in range(0, images.shape[3] - window + 1, stride):
                    occluded = image.clone()
                    occluded[:, top : top + window, left : left + window] = 0
                    drop = clean - model(occluded[None]).softmax(1)[0, targets[i]]
                    maps[i, top : top + window, left : left + window] += drop
                    if i == 0:
                        counts[top : top + window, left : left + window] += 1
    return maps / counts.clamp_min(1)


def test_occlusion_sensitivity_batched_equals_unbatched() -> None:
    torch.manual_seed(0)
    model = TinyNet().train()
    images = random_images(5)[:, :, :16, :16].contiguous()
    targets = torch.tensor([0, 1, 2, 0, 1])
    batched = occlusion_sensitivity(model, images, targets, window=4, stride=5, batch_size=4096)
    one_by_one = occlusion_sensitivity(model, images, targets, window=4, stride=5, batch_size=1)
    assert model.training  # mode restored
    assert batched.shape == (5, 16, 16)
    torch.testing.assert_close(batched, one_by_one, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(batched, naive_occlusion(model.eval(), images, targets, 4, 5), atol=1e-6, rtol=1e-5)
    assert (batched[:, 14:] == 0).all() and (batched[:, 4] == 0).all()  # rows no window covers


# --- object vs background -------------------------------------------------------------------------


def test_grabcut_finds_a_distinct_central_object() -> None:
    images, disc = disc_images(2)
    masks = foreground_masks(images)
    assert masks.dtype == torch.bool and masks.shape == (2, 32, 32)
    assert fallback_share(masks) == 0
    iou = (masks & disc).sum((1, 2)) / (masks | disc).sum((1, 2))
    assert (iou > 0.8).all()


def test_grabcut_falls_back_to_the_centre_prior_on_a_flat_image() -> None:
    flat = torch.full((1, 3, 32, 32), 120, dtype=torch.uint8)
    masks = foreground_masks(flat)
    assert torch.equal(masks[0], centre_prior(32, 32))
    assert fallback_share(masks) == 1
    assert centre_prior(32, 32).sum() == 24 * 24


def test_object_and_background_fills() -> None:
    images, disc = disc_images(2)
    kept = object_only(images, disc, "mean")
    assert torch.equal(kept.permute(0, 2, 3, 1)[disc], images.permute(0, 2, 3, 1)[disc])
    assert (kept.permute(0, 2, 3, 1)[~disc] == MEAN).all()
    blurred = object_only(images, disc, "blur")
    assert torch.equal(blurred.permute(0, 2, 3, 1)[disc], images.permute(0, 2, 3, 1)[disc])
    assert (background_only(images, disc, "mean").permute(0, 2, 3, 1)[disc] == MEAN).all()
    flat = torch.where(disc[:, None], torch.tensor([200, 30, 30], dtype=torch.uint8).view(1, 3, 1, 1), 90)
    inpainted = background_only(flat, disc, "inpaint")
    assert (inpainted == 90).all()  # a uniform background fills the hole exactly
    with pytest.raises(ConfigError):
        object_only(images, disc, "zero")
    with pytest.raises(ConfigError):
        apply_probe("background_only", images, "blur", foreground=disc)


def test_background_swap_keeps_the_object_on_the_donor_background_without_its_object() -> None:
    disc_mask = disc_images(1)[1]
    image = torch.where(disc_mask[:, None], torch.tensor([200, 30, 30], dtype=torch.uint8).view(1, 3, 1, 1), 10)
    donor = torch.where(disc_mask[:, None], torch.tensor([30, 200, 30], dtype=torch.uint8).view(1, 3, 1, 1), 150)
    swapped = background_swap(image, disc_mask, donor, disc_mask)
    assert torch.equal(swapped.permute(0, 2, 3, 1)[disc_mask], image.permute(0, 2, 3, 1)[disc_mask])
    assert (swapped.permute(0, 2, 3, 1)[~disc_mask] == 150).all()
    shifted = torch.roll(disc_mask, 6, dims=2)  # donor object elsewhere: its pixels are inpainted, not shown
    donor = torch.where(shifted[:, None], torch.tensor([30, 200, 30], dtype=torch.uint8).view(1, 3, 1, 1), 150)
    assert (background_swap(image, disc_mask, donor, shifted).permute(0, 2, 3, 1)[~disc_mask] == 150).all()


def test_donors_come_from_another_class() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0])
    donors = other_class_donors(labels, torch.Generator().manual_seed(0))
    assert (labels[donors] != labels).all()
    alone = other_class_donors(torch.zeros(5, dtype=torch.long), torch.Generator().manual_seed(0))
    assert (alone != torch.arange(5)).all()


def test_background_swap_probe_uses_labels() -> None:
    images, disc = disc_images(4)
    images[2:] = 255 - images[2:]
    labels = torch.tensor([0, 0, 1, 1])
    out, changed = apply_probe(
        "background_swap", images, "other_class", torch.Generator().manual_seed(0), foreground=disc, labels=labels
    )
    assert torch.equal(changed, ~disc)
    for i in range(4):
        others = [j for j in range(4) if labels[j] != labels[i]]
        assert any(torch.equal(out[i][:, ~disc[i]], images[j][:, ~disc[j]]) for j in others)
        assert torch.equal(out[i][:, disc[i]], images[i][:, disc[i]])


def test_mask_gallery_figure_shows_each_image_and_mask() -> None:
    images, disc = disc_images(3)
    masks = torch.cat([disc[:2], centre_prior(32, 32)[None]])
    fig = mask_gallery_figure(images, masks, titles=["a", "b", "c"], columns=2)
    assert len([ax for ax in fig.axes if ax.images]) == 6
    assert any("(prior)" in ax.get_title() for ax in fig.axes)
    assert png_bytes(fig) > 0


# --- focus shift --------------------------------------------------------------------------------


def one_hot_map(row: int, col: int, size: int = 8) -> torch.Tensor:
    map_ = torch.zeros(1, size, size)
    map_[0, row, col] = 1
    return map_


def test_centre_of_mass_and_displacement_hand_cases() -> None:
    assert centre_of_mass(one_hot_map(2, 5)).tolist() == [[2.0, 5.0]]
    assert centre_of_mass(-one_hot_map(2, 5)).tolist() == [[2.0, 5.0]]  # |map|
    two = one_hot_map(0, 0) + 3 * one_hot_map(4, 4)
    assert centre_of_mass(two).tolist() == [[3.0, 3.0]]
    assert com_displacement(one_hot_map(2, 3), one_hot_map(5, 7)).item() == pytest.approx(5.0)
    assert math.isnan(centre_of_mass(torch.zeros(1, 4, 4))[0, 0].item())


def test_share_on_region_and_rank_correlation() -> None:
    region = torch.zeros(1, 8, 8, dtype=torch.bool)
    region[0, :2] = True
    assert share_on_region(torch.ones(1, 8, 8), region).item() == pytest.approx(0.25)
    assert share_on_region(-one_hot_map(0, 3), region).item() == 1
    maps = torch.rand(3, 8, 8)
    assert torch.allclose(rank_correlation(maps, -maps * 2), torch.ones(3))


def test_focus_shift_table_rows_and_values() -> None:
    region = torch.zeros(2, 8, 8, dtype=torch.bool)
    region[:, :, :4] = True
    clean = {"a": one_hot_map(1, 6).expand(2, 8, 8), "b": torch.rand(2, 8, 8)}
    stressed = {("occlusion_centre", 4): {"a": one_hot_map(4, 2).expand(2, 8, 8), "b": clean["b"].clone()}}
    table = focus_shift_table(clean, stressed, {("occlusion_centre", 4): region})
    assert list(table[["probe", "intensity", "method"]].itertuples(index=False, name=None)) == [
        ("occlusion_centre", 4, "a"),
        ("occlusion_centre", 4, "b"),
    ]
    a, b = table.iloc[0], table.iloc[1]
    assert a["displacement"] == pytest.approx(5.0)
    assert (a["share_changed_clean"], a["share_changed_stressed"], a["changed_area"]) == (0, 1, 0.5)
    assert not math.isnan(a["spearman"]) and b["spearman"] == pytest.approx(1.0)
    assert b["displacement"] == pytest.approx(0.0) and a["images"] == 2


# --- figures --------------------------------------------------------------------------------------


def test_stress_figures_render() -> None:
    images, disc = disc_images(2)
    maps = {"m1": torch.rand(2, 32, 32), "m2": torch.rand(2, 32, 32)}
    fig = before_after_figure(images, 255 - images, maps, maps, ["x", "y"], "probe")
    assert len(fig.axes) == 2 * 6 and png_bytes(fig) > 0
    fig = patch_figure(images[0], {k: v[0] for k, v in maps.items()}, "patch", mask=disc[0])
    assert len(fig.axes) == 3 and png_bytes(fig) > 0
    table = pd.DataFrame(
        {"intensity": ["RBG", "GRB", "RBG", "GRB"], "accuracy": [0.5, 0.4, 0.7, 0.6], "run": ["a", "a", "b", "b"]}
    )
    fig = probe_curve_figure(table, "intensity", "accuracy", "run")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["RBG", "GRB"] and png_bytes(fig) > 0
    numeric = pd.DataFrame({"side": [16, 4, 8], "accuracy": [0.2, 0.9, 0.6], "run": ["a"] * 3})
    line = probe_curve_figure(numeric, "side", "accuracy", "run").axes[0].lines[0]
    assert list(line.get_xdata()) == [4, 8, 16] and list(line.get_ydata()) == [0.9, 0.6, 0.2]


def test_the_run_plan_counts_every_model_the_stress_stage_probes(tmp_path) -> None:
    """The quick profile's battery covers 6 models; the patch probe adds the 3 patch models (it said 6 before)."""
    config = load_config("quick")
    probed = [key.id for key in stress_keys(config)]
    assert len(probed) == 9 and {"resnet_small__patch__s0", "fastnet__mixup__s0"} <= set(probed)
    data = SimpleNamespace(fingerprint="cifar10-32px", image_size=32)
    assert "stress 9, concepts 6" in plan_line(config, RunStore(tmp_path), data, ["train", "stress", "concepts"])
