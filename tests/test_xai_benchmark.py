"""The planted-patch benchmark's controls: control stamping, trivial baseline maps, model contrast and
significance against baselines, and the acceptance check that model contrast catches salience-driven maps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xaiquest.config import PatchConfig, load_config
from xaiquest.data import Split, to_float
from xaiquest.errors import ConfigError, UnknownNameError
from xaiquest.explainers import EXPLAINERS, explain
from xaiquest.explainers.quality.localisation import top_k_overlap
from xaiquest.metrics.significance import correct_p_values
from xaiquest.patch import control_split, describe, poison_split, stamp, training_split
from xaiquest.runs import control_twin, planted_patch, run_keys, train_fingerprint
from xaiquest.train.mixing import augmentation_names
from xaiquest.stress.benchmark import (
    BASELINES,
    BENCHMARK_COLUMNS,
    CONTRAST_THRESHOLD,
    baseline_map,
    beats_baselines,
    benchmark_table,
    localisation_scores,
    mean_ci,
    model_contrast,
    pairwise_contrasts,
    pooled_benchmark,
    score_rows,
)


def labelled_images(per_class: list[int], seed: int = 0, size: int = 16) -> Split:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(per_class)).repeat_interleave(torch.tensor(per_class))
    images = torch.randint(0, 200, (len(labels), 3, size, size), dtype=torch.uint8, generator=generator)
    return Split(images, labels[torch.randperm(len(labels), generator=generator)])


def test_control_split_stamps_the_same_share_of_every_class_and_keeps_labels() -> None:
    split = labelled_images([10, 7, 4])
    patch = PatchConfig(target_class=1, fraction=0.5)
    control, stamped = control_split(split, patch, seed=3)
    assert torch.equal(control.labels, split.labels)
    for label, count in enumerate([10, 7, 4]):
        assert stamped[split.labels == label].sum().item() == round(0.5 * count)
    expected, masks = stamp(split.images[stamped], patch)
    assert torch.equal(control.images[stamped], expected)
    assert torch.equal(control.images[~stamped], split.images[~stamped])
    assert masks.any((1, 2)).all()
    again, stamped_again = control_split(split, patch, seed=3)
    assert torch.equal(again.images, control.images) and torch.equal(stamped_again, stamped)
    assert not torch.equal(control_split(split, patch, seed=4)[1], stamped)


# --- control models as a training variant ----------------------------------------------------------

RELIANT = {"target_class": 0, "fraction": 1.0}
CONTROLLED = {"baseline": {}, "patch": {"patch": RELIANT}, "patch_control": {"patch": {**RELIANT, "control": True}},
              "big_patch": {"patch": {**RELIANT, "size": 5}}}


def test_a_patch_dumps_its_control_flag_only_when_set() -> None:
    assert set(PatchConfig().model_dump()) == {"target_class", "fraction", "colour", "size", "position"}
    assert PatchConfig(control=True).model_dump()["control"] is True
    assert PatchConfig.model_validate(PatchConfig(control=True).model_dump()).control


def test_a_patch_model_keeps_the_train_fingerprint_it_had_before_control_models_existed() -> None:
    """The digest was computed on the code before ``PatchConfig.control`` existed: patch models trained then are
    not retrained (32 px data, the extended profile's 3 px patch on every airplane, resnet_small, seed 0)."""
    config = load_config("extended")
    key = next(key for key in run_keys(config) if key.id == "resnet_small__patch__s0")
    data = SimpleNamespace(fingerprint="cifar10-32px", image_size=32)
    assert train_fingerprint(config, data, key) == "14698541af097083"


def test_a_control_variant_trains_on_the_control_split() -> None:
    split = labelled_images([10, 7, 4])
    reliant, control = PatchConfig(**RELIANT), PatchConfig(**RELIANT, control=True)
    for patch, expected in ((reliant, poison_split(split, reliant, 3)), (control, control_split(split, reliant, 3))):
        images, stamped = training_split(split, patch, 3)
        assert torch.equal(images.images, expected[0].images) and torch.equal(stamped, expected[1])
    assert training_split(split, control, 3)[1].sum() == 21 and training_split(split, reliant, 3)[1].sum() == 10
    shortcut = load_config("shortcut")
    assert "control-patch(every class, p=1)" in augmentation_names(shortcut.train_config(shortcut.models[0], "patch_control"))


def test_a_patch_model_finds_its_control_twin_of_the_same_architecture_and_seed() -> None:
    config = load_config("smoke", {"models": ["fastnet", {"name": "resnet_small", "variants": ["baseline", "patch"]}],
                                   "seeds": [0, 1], "variants": CONTROLLED})
    twins = {key.id: twin.id if (twin := control_twin(config, key)) else None for key in run_keys(config)}
    assert twins["fastnet__patch__s1"] == "fastnet__patch_control__s1"
    assert twins["resnet_small__patch__s0"] is None  # its control variant is not trained for this model
    assert twins["fastnet__big_patch__s0"] is None  # another patch: no twin
    assert twins["fastnet__patch_control__s0"] is None and twins["fastnet__baseline__s0"] is None
    assert planted_patch(config).model_dump() == PatchConfig(**RELIANT).model_dump()
    only_control = load_config("smoke", {"variants": {"baseline": {}, "patch_control": CONTROLLED["patch_control"]}})
    stamped = planted_patch(only_control)  # what test images are stamped with: the flag only decides training
    assert stamped is not None and not stamped.control and stamped.model_dump() == PatchConfig(**RELIANT).model_dump()


def test_the_shortcut_profile_pairs_every_patch_model_with_a_control_twin_in_three_seeds() -> None:
    config = load_config("shortcut")
    patch_models = [key for key in run_keys(config) if key.variant == "patch"]
    assert len(patch_models) == 6 and {key.seed for key in patch_models} == {0, 1, 2}
    assert all(control_twin(config, key) is not None for key in patch_models)
    assert "patch_control" not in load_config("quick").variants  # the quick profile's time budget


# --- trivial baseline maps -------------------------------------------------------------------------


def grey_images(n: int, seed: int = 0, size: int = 16, noise: float = 20.0) -> torch.Tensor:
    """Low-contrast noise around a natural grey: nothing in them is as salient as a magenta patch."""
    generator = torch.Generator().manual_seed(seed)
    grey = torch.tensor([125.0, 123.0, 114.0]).view(1, 3, 1, 1)
    return (grey + torch.randn(n, 3, size, size, generator=generator) * noise).clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_maps_are_per_image_deterministic_and_apart_from_explainers(name: str) -> None:
    images = grey_images(3, size=12)
    maps = baseline_map(name, images, seed=5)
    assert maps.shape == (3, 12, 12) and maps.dtype == torch.float32 and torch.isfinite(maps).all()
    assert torch.equal(baseline_map(name, images, seed=5), maps)
    assert name not in EXPLAINERS


def test_random_map_varies_with_seed_and_image_and_centre_map_peaks_in_the_middle() -> None:
    images = grey_images(2, size=9)
    noise = baseline_map("baseline_random", images, seed=0)
    assert not torch.equal(noise, baseline_map("baseline_random", images, seed=1))
    assert not torch.equal(noise[0], noise[1])
    centre = baseline_map("baseline_centre", images)
    assert centre[0].argmax().item() == 4 * 9 + 4
    assert torch.allclose(centre[0], centre[0].flip(0)) and torch.allclose(centre[0], centre[0].T)


def test_edge_map_peaks_at_an_edge_and_is_zero_on_flat_regions() -> None:
    images = torch.zeros(1, 3, 10, 10, dtype=torch.uint8)
    images[..., 5:] = 255
    edges = baseline_map("baseline_edges", images)[0]
    assert set(edges.argmax(1).tolist()) <= {4, 5}
    assert edges[:, 4:6].min() > 0 and edges[:, :3].abs().max() == 0 and edges[:, 7:].abs().max() == 0


def test_edge_map_sees_a_patch_whose_luma_equals_the_background() -> None:
    noise = torch.randn(2, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 4
    grey = (105 + noise).round().clamp(0, 255).to(torch.uint8).expand(2, 3, 12, 12).clone()
    images, masks = stamp(grey, PatchConfig(size=4, colour=(255, 0, 255)))  # magenta's luma is 105 too
    edges = baseline_map("baseline_edges", images)
    near_patch = F.max_pool2d(masks[:, None].float(), 3, stride=1, padding=1)[:, 0].bool()
    strongest = edges.flatten(1).argmax(1)
    assert near_patch.flatten(1)[torch.arange(2), strongest].all()


def test_colour_saliency_finds_an_off_palette_patch() -> None:
    images, masks = stamp(grey_images(4), PatchConfig(size=3))
    assert top_k_overlap(baseline_map("baseline_colour", images), masks).tolist() == [1.0] * 4


def test_baseline_map_rejects_normalised_images_and_unknown_names() -> None:
    with pytest.raises(ConfigError, match="uint8"):
        baseline_map("baseline_random", torch.zeros(1, 3, 4, 4))
    with pytest.raises(UnknownNameError, match="baseline_random"):
        baseline_map("random", grey_images(1))


# --- bootstrap intervals and model contrast --------------------------------------------------------


def test_mean_ci_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    covered = [mean_ci(rng.normal(0.3, 1.0, 60), resamples=500, seed=trial).covers(0.3) for trial in range(200)]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_mean_ci_is_reproducible_from_its_seed() -> None:
    values = np.random.default_rng(1).normal(size=(2, 30))
    assert mean_ci(values, seed=3) == mean_ci(values, seed=3)
    assert mean_ci(values, seed=3) != mean_ci(values, seed=4)


def test_mean_ci_holds_the_seed_to_seed_variation_and_skips_unanswered_images() -> None:
    rng = np.random.default_rng(2)
    per_seed = rng.normal(0.0, 0.5, (3, 1)) + rng.normal(0.0, 0.1, (3, 80))
    crossed = mean_ci(per_seed)
    pooled = mean_ci(per_seed.reshape(-1))  # as if all 240 values were independent images of one seed
    assert (crossed.high - crossed.low) > 3 * (pooled.high - pooled.low)
    per_seed[1, 7] = np.nan
    assert mean_ci(per_seed).images == 79 and mean_ci(per_seed).seeds == 3


def test_model_contrast_flags_no_evidence_and_small_effects_as_salience_driven() -> None:
    control = np.random.default_rng(3).uniform(0, 1, (3, 50))
    noise = np.random.default_rng(4).normal(0, 0.2, (3, 50))
    relies = model_contrast(control + 0.5, control)
    assert relies.interval.mean == pytest.approx(0.5) and not relies.salience_driven
    assert model_contrast(control + noise, control).salience_driven  # interval reaches 0
    tiny = model_contrast(control + 0.05, control)
    assert tiny.interval.low > 0 and tiny.salience_driven  # significant but below the threshold
    with pytest.raises(ConfigError, match="same seeds and images"):
        model_contrast(control, control[:2])


def test_beats_baselines_is_paired_one_sided_and_holm_corrected() -> None:
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(5)
    method = rng.uniform(0.4, 0.6, 12)
    borderline = method - np.array([0.3, 0.25, 0.2, 0.15, 0.1, 0.05, -0.04, -0.06, 0.02, 0.12, -0.03, -0.08])
    raw = wilcoxon(method - borderline, alternative="greater").pvalue
    assert 0.025 < raw < 0.05, "precondition: significant alone, not after correcting for three comparisons"
    table = beats_baselines(method, {"worse": method - 0.2, "same": method, "borderline": borderline})
    assert table["baseline"].tolist() == ["worse", "same", "borderline"]
    assert table["mean_difference"].tolist() == pytest.approx([0.2, 0.0, (method - borderline).mean()])
    assert table["p_corrected"].tolist() == pytest.approx(correct_p_values(table["p_value"].to_numpy(), "holm"))
    assert table["beats"].tolist() == [True, False, False]
    assert table.loc[2, "p_value"] < 0.05
    assert not beats_baselines(method - 0.2, {"better": method})["beats"].any()


# --- acceptance: model contrast catches salience-driven maps ---------------------------------------

SALIENCE = 0.42
"""Weight of the class-independent energy term: large enough that Saliency ranks the magenta patch
high on a model that ignores it, small enough that it does not always rank it first (no ceiling)."""


class HandBuiltModel(nn.Module):
    """logits_c = <w_c, x off the patch> + SALIENCE * sum(x^2) + reliance * [c = 0] * magenta(patch).

    The energy term adds the same value to every logit, so the *probabilities* of a model with
    ``reliance=0`` provably do not depend on the patch pixels, yet the term's gradient is largest
    on the most extreme (most salient) pixels: the patch. With ``reliance > 0`` the patch's
    magenta score pushes class 0: a patch-reliant twin.
    """

    def __init__(self, seed: int, patch_mask: torch.Tensor, reliance: float, classes: int = 3) -> None:
        super().__init__()
        weights = torch.randn(classes, 3, *patch_mask.shape, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("weights", weights * ~patch_mask)
        self.register_buffer("patch_mask", patch_mask.float())
        self.reliance = reliance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.einsum("nchw,kchw->nk", x, self.weights) + SALIENCE * (x**2).sum((1, 2, 3))[:, None]
        magenta = ((x[:, 0] - x[:, 1] + x[:, 2]) * self.patch_mask).sum((1, 2))
        logits[:, 0] += self.reliance * magenta
        return logits


def class_zero_margin(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    logits = model(to_float(images))
    return logits[:, 0] - logits[:, 1:].amax(1)


def saliency_top_k(models: list[nn.Module], images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``[seeds, N]`` Top-K overlap of Saliency maps for class 0, one row per model."""
    targets = torch.zeros(len(images), dtype=torch.long)
    return torch.stack([top_k_overlap(explain("saliency", model, to_float(images), targets), masks) for model in models])


def test_model_contrast_catches_saliency_that_lights_a_patch_the_model_ignores() -> None:
    clean = grey_images(32)
    images, masks = stamp(clean, PatchConfig(target_class=0, size=6))  # 3 px on these 16 px images
    patch_mask = masks[0]
    ignoring = [HandBuiltModel(seed, patch_mask, reliance=0.0) for seed in (20, 21, 22)]
    controls = [HandBuiltModel(seed, patch_mask, reliance=0.0) for seed in (10, 11, 12)]
    reliant = [HandBuiltModel(seed, patch_mask, reliance=3.0) for seed in (0, 1, 2)]
    with torch.no_grad():  # the premise: the patch changes nothing the ignoring model predicts
        for model in ignoring:
            assert torch.allclose(model(to_float(images)).softmax(1), model(to_float(clean)).softmax(1), atol=1e-5)
        for model in reliant:  # ... and raises every image's class-0 margin on the reliant one
            assert (class_zero_margin(model, images) > class_zero_margin(model, clean)).all()

    ignoring_overlap = saliency_top_k(ignoring, images, masks)
    control_overlap = saliency_top_k(controls, images, masks)
    chance = top_k_overlap(baseline_map("baseline_random", images), masks)
    assert ignoring_overlap.mean() > 0.3, "raw Top-K overlap credits Saliency on a model that ignores the patch"
    assert beats_baselines(ignoring_overlap, {"baseline_random": chance})["beats"].all()

    null = model_contrast(ignoring_overlap, control_overlap)
    assert null.salience_driven and null.interval.covers(0.0) and abs(null.interval.mean) < CONTRAST_THRESHOLD
    relies = model_contrast(saliency_top_k(reliant, images, masks), control_overlap)
    assert not relies.salience_driven and relies.interval.low > CONTRAST_THRESHOLD


# --- the benchmark table -----------------------------------------------------------------------------


def test_localisation_scores_per_image_hand_case() -> None:
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 0, :2] = True
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, :2] = 1.0  # all mass on the mask
    maps[1, 3, 3], maps[1, 0, 0] = 3.0, -1.0  # peak off the mask; a quarter of the absolute mass on it
    scores = localisation_scores(maps, masks)
    assert scores["tko"].tolist() == pytest.approx([1.0, 0.5])
    assert scores["pointing"].tolist() == [1.0, 0.0]
    assert scores["mass_inside"].tolist() == pytest.approx([1.0, 0.25])


def test_benchmark_table_contrasts_each_map_with_the_control_and_tests_it_against_the_baselines() -> None:
    rng = np.random.default_rng(0)
    control = {metric: rng.uniform(0, 0.5, 40) for metric in ("tko", "pointing", "mass_inside")}
    reliant = {"relies": {m: v + 0.4 for m, v in control.items()}, "salient": {m: v.copy() for m, v in control.items()}}
    controls = {"relies": control, "salient": control}
    baselines = {"baseline_low": {m: v - 0.3 for m, v in control.items()}, "baseline_high": {m: v + 0.45 for m, v in control.items()}}
    table = benchmark_table(reliant, controls, baselines, resamples=500)
    assert list(table.columns) == list(BENCHMARK_COLUMNS) and len(table) == 3 * 4
    tko = table[table["metric"] == "tko"].set_index("method")
    assert tko.loc["relies", "contrast"] == pytest.approx(0.4) and not tko.loc["relies", "salience_driven"]
    assert tko.loc["relies", "contrast_low"] > CONTRAST_THRESHOLD and tko.loc["relies", "reliant"] == pytest.approx(control["tko"].mean() + 0.4)
    assert tko.loc["salient", "contrast"] == 0 and tko.loc["salient", "salience_driven"]
    assert not tko.loc["relies", "beats_baselines"] and tko.loc["relies", "baselines_not_beaten"] == "baseline_high"
    assert tko.loc["salient", "baselines_not_beaten"] == "baseline_high"
    baseline_rows = tko[tko["kind"] == "baseline"]
    assert (baseline_rows[["contrast", "contrast_low", "contrast_high"]] == 0).all().all()
    assert baseline_rows["beats_baselines"].isna().all() and baseline_rows["salience_driven"].all()
    assert tko.loc["relies", "rank"] == 1 and set(tko["rank"]) == {1, 2}  # the others tie at contrast 0
    assert (tko["images"] == 40).all() and (tko["seeds"] == 1).all() and (tko["threshold"] == CONTRAST_THRESHOLD).all()
    beaten = benchmark_table(reliant, controls, {"baseline_low": baselines["baseline_low"]}, resamples=50)
    assert beaten.set_index(["metric", "method"]).loc[("tko", "relies"), "beats_baselines"]
    with pytest.raises(ConfigError, match="same methods"):
        benchmark_table(reliant, {"relies": control}, baselines)
    with pytest.raises(ConfigError, match="trivial baseline maps"):
        benchmark_table(reliant, controls, {})


def _seed_scores(seed: int, images: int = 40) -> pd.DataFrame:
    """One seed's per-image scores: ``relies`` lights the patch on the reliant model only, ``salient`` on both."""
    rng = np.random.default_rng(seed)
    base = {metric: rng.uniform(0, 0.4, images) for metric in LOCALISATION}
    reliant = {"relies": {m: v + 0.5 for m, v in base.items()}, "salient": {m: v + 0.3 for m, v in base.items()}}
    control = {"relies": base, "salient": reliant["salient"]}
    baselines = {"random": {m: rng.uniform(0, 0.2, images) for m in LOCALISATION}}
    return score_rows(reliant, control, baselines).assign(seed=seed)


LOCALISATION = ("tko", "pointing", "mass_inside")


def test_score_rows_keep_each_image_s_reliant_and_control_score() -> None:
    rows = _seed_scores(0)
    assert len(rows) == 3 * 3 * 40 and set(rows["kind"]) == {"method", "baseline"}
    baseline = rows[rows["kind"] == "baseline"]
    assert (baseline["reliant"] == baseline["control"]).all()
    relies = rows[(rows["method"] == "relies") & (rows["metric"] == "tko")]
    assert np.allclose(relies["reliant"] - relies["control"], 0.5)


def test_pooling_three_seeds_gives_intervals_over_seeds_win_rates_and_significant_differences() -> None:
    table, pairs = pooled_benchmark(pd.concat([_seed_scores(seed) for seed in range(3)], ignore_index=True))
    tko = table[table["metric"] == "tko"].set_index("method")
    assert (tko["seeds"] == 3).all() and (tko["images"] == 40).all()
    assert tko.loc["relies", "contrast"] == pytest.approx(0.5) and not tko.loc["relies", "salience_driven"]
    assert tko.loc["salient", "contrast"] == pytest.approx(0) and tko.loc["salient", "salience_driven"]
    assert tko.loc["relies", "win_rate"] == 1 and tko.loc["salient", "win_rate"] == 0
    assert np.isnan(tko.loc["random", "win_rate"])  # baselines have no contrast to win with
    assert tko.loc["relies", "significantly_above"] == "salient" and tko.loc["salient", "significantly_above"] == ""
    assert list(pairs.columns) == ["metric", "method", "other", "mean_difference", "p_value", "p_corrected", "significant"]
    assert len(pairs) == 3 and pairs["significant"].all() and np.allclose(pairs["mean_difference"], 0.5)


def test_pairwise_contrasts_find_no_difference_between_equal_methods_and_correct_for_the_pairs() -> None:
    rng = np.random.default_rng(1)
    same = rng.normal(0.2, 0.1, (3, 30))
    pairs = pairwise_contrasts({"a": same, "b": same.copy(), "c": same + rng.normal(0, 0.1, (3, 30))})
    assert not pairs["significant"].any()
    assert pairs.loc[(pairs["method"] == "a") & (pairs["other"] == "b"), "p_value"].item() == 1.0
    assert (pairs["p_corrected"] >= pairs["p_value"]).all()


def test_the_sensitivity_table_shows_a_ranking_that_flips_with_absolute_values() -> None:
    from xaiquest.stress.sensitivity import SENSITIVITY_COLUMNS, sensitivity_table

    masks = torch.zeros(6, 8, 8, dtype=torch.bool)
    masks[:, :2, :2] = True
    background = torch.rand(6, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.1
    maps = {"for": background + 2 * masks, "against": background - 2 * masks, "weak": background + 0.05 * masks}
    table = sensitivity_table({"predicted": maps, "target": maps}, masks)
    assert list(table.columns) == list(SENSITIVITY_COLUMNS) and len(table) == 2 * 3 * 3
    rows = table.set_index(["explained", "post", "method"])
    assert rows.loc[("predicted", "raw", "for"), "tko"] == 1 and rows.loc[("predicted", "raw", "against"), "tko"] == 0
    assert rows.loc[("predicted", "abs", "against"), "tko"] == 1 and rows.loc[("predicted", "relu", "against"), "tko"] == 0
    assert rows.loc[("predicted", "raw", "for"), "rank_tko"] == 1 and rows.loc[("predicted", "raw", "against"), "rank_tko"] == 3
    assert rows.loc[("predicted", "raw", "for"), "kendall_tau_vs_default"] == pytest.approx(1)
    assert rows.loc[("target", "raw", "for"), "kendall_tau_vs_default"] == pytest.approx(1)  # the same maps
    assert rows.loc[("predicted", "abs", "for"), "kendall_tau_vs_default"] < 1  # "against" climbs to the top


def test_target_class_maps_are_recomputed_only_where_the_model_predicts_another_class() -> None:
    from xaiquest.stress.sensitivity import target_class_maps

    predicted = {"m": torch.zeros(4, 2, 2)}
    asked: list[tuple[list[int], list[int]]] = []

    def explain_images(method: str, chosen: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        asked.append((chosen.tolist(), classes.tolist()))
        return torch.ones(len(chosen), 2, 2)

    maps = target_class_maps(predicted, torch.tensor([0, 3, 0, 5]), 0, explain_images)
    assert asked == [([1, 3], [0, 0])]
    assert maps["m"].sum((1, 2)).tolist() == [0, 4, 0, 4] and predicted["m"].sum() == 0


def test_a_mean_colour_patch_takes_each_image_s_own_mean_colour() -> None:
    images = torch.stack([torch.full((3, 32, 32), 10, dtype=torch.uint8), torch.full((3, 32, 32), 200, dtype=torch.uint8)])
    images[1, 0] = 100
    stamped, masks = stamp(images, PatchConfig(colour="mean", size=2))
    assert masks.sum((1, 2)).tolist() == [4, 4]
    pixels = stamped.permute(0, 2, 3, 1)
    assert pixels[0][masks[0]].eq(torch.tensor([10, 10, 10], dtype=torch.uint8)).all()
    assert pixels[1][masks[1]].eq(torch.tensor([100, 200, 200], dtype=torch.uint8)).all()


def test_the_salience_sweep_puts_each_setting_s_reliance_beside_its_methods_localisation() -> None:
    from xaiquest.stress.sensitivity import SWEEP_COLUMNS, salience_sweep

    settings = pd.DataFrame({"run": ["a", "b"], "patch": [describe(PatchConfig()), describe(PatchConfig(colour="mean"))]})
    reliance = pd.DataFrame({"run": ["a", "b", "base"], "attack_success": [0.9, 0.2, 0.0]})
    localisation = pd.DataFrame({"run": ["a", "a", "b", "b"], "method": ["g", "s"] * 2, "tko": [0.8, 0.5, 0.1, 0.4]})
    benchmark = pd.DataFrame({"run": ["a", "a"], "method": ["g", "s"], "metric": "tko", "kind": "method",
                              "contrast": [0.6, 0.0], "salience_driven": [False, True]})
    sweep = salience_sweep(settings, reliance, localisation, benchmark)
    assert list(sweep.columns) == list(SWEEP_COLUMNS) and len(sweep) == 4
    rows = sweep.set_index(["run", "method"])
    assert rows.loc[("a", "g"), "attack_success"] == 0.9 and rows.loc[("a", "g"), "contrast"] == 0.6
    assert np.isnan(rows.loc[("b", "s"), "contrast"]) and rows.loc[("b", "s"), "tko"] == 0.4


def test_a_patch_is_described_by_colour_size_and_position() -> None:
    assert describe(PatchConfig()) == "rgb(255, 0, 255), 3 px at 32 px, fixed"
    assert describe(PatchConfig(colour="mean", size=5, position="random")) == "mean colour, 5 px at 32 px, random"
