"""Concepts stage: probe sets, bias measures, TCAV significance, dissection, and validation on models with known biases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.concepts.bias import bias_probes, colour_reliance, shape_bias
from xaiquest.concepts.dissect import detector_fractions, dissect, unit_concept_iou, unit_masks
from xaiquest.concepts.probes import (
    IMAGE_FREE_CONCEPTS,
    SHAPE_CONCEPTS,
    RGB_TO_YIQ,
    YIQ_TO_RGB,
    colour_name_masks,
    content_texture,
    cue_conflict,
    grayscale,
    hue_rotate,
    luminance,
    outlines,
    silhouettes,
)
from xaiquest.concepts.stage import untrained_controls
from xaiquest.concepts.tcav import correct_p_values, degenerate_null, tcav_table, train_cav, with_significance
from xaiquest.config import CONCEPT_NAMES, load_config
from xaiquest.data import Split, to_float
from xaiquest.data.masks import centre_prior
from xaiquest.errors import ConfigError
from xaiquest.layout import RunLayout
from xaiquest.inference import predict_logits, seed_everything
from xaiquest.runs import run_keys
from xaiquest.models.base import ZooModel
from xaiquest.validation import check_config

from synthetic import class_coloured_split


def test_every_configurable_concept_can_be_generated() -> None:
    assert set(CONCEPT_NAMES) == set(IMAGE_FREE_CONCEPTS) | set(SHAPE_CONCEPTS)
    generator = torch.Generator().manual_seed(0)
    for name, (_, make) in IMAGE_FREE_CONCEPTS.items():
        images = make(5, 32, generator)
        assert images.shape == (5, 3, 32, 32) and images.dtype == torch.uint8, name
        assert images.float().std() > 1, f"{name} examples are flat"


def test_generated_concepts_are_seeded() -> None:
    first = IMAGE_FREE_CONCEPTS["gravel"][1](3, 32, torch.Generator().manual_seed(4))
    again = IMAGE_FREE_CONCEPTS["gravel"][1](3, 32, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(30, 226, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_hue_rotation_keeps_luminance_and_full_turn_is_identity() -> None:
    images = random_images(4)
    rotated = hue_rotate(images, 90)
    assert not torch.equal(rotated, images)
    clipped = (rotated == 0) | (rotated == 255)
    unclipped = ~clipped.any(1, keepdim=True)
    assert (luminance(rotated) - luminance(images))[unclipped].abs().max() <= 1.0
    assert (hue_rotate(images, 360).int() - images.int()).abs().max() <= 1
    assert torch.allclose(RGB_TO_YIQ @ YIQ_TO_RGB, torch.eye(3), atol=1e-5)


def test_grayscale_has_equal_channels() -> None:
    gray = grayscale(random_images(2))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


def test_shape_probes_follow_the_mask() -> None:
    masks = centre_prior(32, 32)[None].expand(2, -1, -1).clone()
    sil = silhouettes(masks)
    assert (sil[:, :, masks[0]] == 128).all() and (sil[:, :, ~masks[0]] == 255).all()
    edge = outlines(masks)[:, 0] == 0
    assert edge.any() and not (edge & ~masks).any() and edge.sum() < masks.sum() / 2
    donors = random_images(2, seed=3)
    conflict = cue_conflict(masks, donors)
    texture = content_texture(donors, 32)
    assert torch.equal(conflict[:, :, masks[0]], texture[:, :, masks[0]])
    assert (conflict[:, :, ~masks[0]] == 255).all()
    assert torch.equal(texture[..., :12, :12], donors[..., 10:22, 10:22])  # the central crop, tiled from the corner


def test_shape_bias_is_geirhos_ratio() -> None:
    predicted = torch.tensor([0, 0, 1, 2, 3])
    result = shape_bias(predicted, torch.tensor([0, 0, 0, 0, 0]), torch.tensor([1, 1, 1, 1, 1]))
    assert result["shape_bias"] == pytest.approx(2 / 3)
    assert result["other_decisions"] == pytest.approx(0.4)
    assert math.isnan(shape_bias(torch.tensor([2]), torch.tensor([0]), torch.tensor([1]))["shape_bias"])


def test_colour_reliance_per_class() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    table = colour_reliance(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), labels, ("a", "b"))
    assert table.set_index("class")["colour_reliance"].to_dict() == {"a": 0.5, "b": 0.0}


def test_holm_and_bonferroni_corrections() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    assert correct_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert correct_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_colour_names_of_pure_colours() -> None:
    colours = torch.tensor([[255, 0, 0], [0, 200, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [128, 128, 128]],
                           dtype=torch.uint8)
    masks = colour_name_masks(colours.view(6, 3, 1, 1))
    expected = ["red", "green", "blue", "white", "black", "grey"]
    for index, name in enumerate(expected):
        assert masks[name][index].item(), name
    assert sum(m.int() for m in masks.values()).eq(1).all(), "every pixel has exactly one colour name"


def test_dissection_finds_the_unit_that_copies_a_concept() -> None:
    concept = torch.zeros(8, 32, 32, dtype=torch.bool)
    concept[:, 28:31, 28:31] = True
    activations = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    activations[:, 1] = 0
    activations[:, 1, 7, 7] = 5.0  # unit 1 fires at the bottom-right corner only
    units = unit_masks(activations, (32, 32), 0.005)
    iou = unit_concept_iou(units, {"patch": concept})
    assert iou.loc[1, "patch"] > 0.1 and iou.loc[0, "patch"] < 0.04 and iou.loc[2, "patch"] < 0.04
    table = dissect({"stage1": activations}, {"patch": concept}, 0.005, 0.04)
    assert detector_fractions(table)["detectors"].tolist() == [1]


def test_dissection_a_few_units_at_a_time_scores_exactly_as_all_at_once(monkeypatch) -> None:
    """Large images are dissected in chunks of units (bounded memory); the table must not change."""
    from xaiquest.concepts import dissect as module

    generator = torch.Generator().manual_seed(1)
    activations = torch.rand(4, 7, 8, 8, generator=generator)
    concepts = {"a": torch.rand(4, 32, 32, generator=generator) > 0.7, "b": torch.rand(4, 32, 32, generator=generator) > 0.9}
    whole = dissect({"stage1": activations}, concepts, 0.01, 0.04)
    monkeypatch.setattr(module, "UPSAMPLED_VALUES_PER_CHUNK", 3 * 4 * 32 * 32)  # three units a chunk: 3 + 3 + 1
    chunked = dissect({"stage1": activations}, concepts, 0.01, 0.04)
    pd.testing.assert_frame_equal(chunked, whole)
    assert sorted(chunked["unit"].unique()) == list(range(7))


def test_a_constant_unit_detects_nothing() -> None:
    assert not unit_masks(torch.zeros(2, 1, 4, 4), (8, 8), 0.005).any()


def test_bad_concepts_config_is_one_line_exit_2(tmp_path) -> None:
    for overrides, message in ((["concepts:", "  concepts: [stripez]"], "stripez"),
                               (["concepts:", "  random_sets: 3"], "random concept sets"),
                               (["concepts:", "  concept_images: 4"], "images per concept")):
        config = tmp_path / "c.yaml"
        config.write_text("\n".join(["name: c", "profile: smoke", *overrides]) + "\n")
        result = CliRunner().invoke(app, ["run", str(config)])
        assert result.exit_code == 2
        text = " ".join(result.output.split())
        assert "concepts" in text and (message in text or "Input should be" in text)
        with pytest.raises(ConfigError):
            load_config(str(config))


def test_a_layer_without_spatial_maps_or_unknown_is_rejected_before_any_work() -> None:
    config = load_config("smoke", {"concepts": {"layers": ["head"]}})
    with pytest.raises(ConfigError, match=r"'concepts.layers': layer 'head' of \w+ has no spatial feature maps"):
        check_config(config, 10)
    with pytest.raises(ConfigError, match=r"'concepts.layers': unknown layer 'stage9'"):
        check_config(load_config("smoke", {"concepts": {"layers": ["stage9"]}}), 10)
    check_config(load_config("smoke", {"concepts": {"layers": ["stage1"]}}), 10)
    check_config(load_config("smoke", {"concepts": {"layers": ["head"], "enabled": False}}), 10)


# ------------------------------------------------------------------------------------------
# Validation on tiny models with known biases


def tiny_net(num_classes: int, seed: int = 0) -> ZooModel:
    torch.manual_seed(seed)
    return ZooModel(
        nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()),
        [nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
         nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))],
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes)),
    )


def fit(model: nn.Module, split: Split, steps: int = 150, lr: float = 3e-3) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(split), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(to_float(split.images[batch])), split.labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def texture_split(per_class: int, seed: int) -> Split:
    """Four classes told apart only by texture (horizontal / vertical stripes, checkerboard, dots), random greys."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    labels = torch.arange(4).repeat_interleave(per_class)
    shift = torch.randint(0, 4, (len(labels), 1, 1), generator=generator)
    patterns = torch.stack([((ys + s) // 2 % 2 == 0) if c == 0 else ((xs + s) // 2 % 2 == 0) if c == 1
                            else (((ys + s) // 2 + (xs + s) // 2) % 2 == 0) if c == 2
                            else (((ys + s) % 4 < 2) & ((xs + s) % 4 < 2))
                            for c, s in zip(labels.tolist(), shift)])
    dark = torch.randint(0, 100, (len(labels), 1, 1, 1), generator=generator)
    light = torch.randint(150, 256, (len(labels), 1, 1, 1), generator=generator)
    images = torch.where(patterns[:, None], light, dark).expand(-1, 3, -1, -1)
    return Split(images.to(torch.uint8).contiguous(), labels)


def test_a_texture_only_model_has_low_shape_bias() -> None:
    train, test = texture_split(60, seed=0), texture_split(20, seed=1)
    model = fit(tiny_net(4), train)
    assert (predict_logits(model, test.images, torch.device("cpu")).argmax(1) == test.labels).float().mean() > 0.9
    masks = centre_prior(32, 32)[None].expand(len(test), -1, -1).clone()
    donors = (torch.arange(len(test)) + 20) % len(test)  # the next class's image
    probes = bias_probes(test.images, test.labels, masks, donors)
    conflict = predict_logits(model, probes.conflict, torch.device("cpu")).argmax(1)
    assert shape_bias(conflict, probes.shape_labels, probes.texture_labels)["shape_bias"] < 0.2


def colour_split(per_class: int, seed: int) -> Split:
    """Four classes told apart only by hue: equal luma (YIQ Y), random brightness per image, pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(per_class)
    angles = labels.float() * math.pi / 2
    y = 100 + 60 * torch.rand(len(labels), generator=generator)
    yiq = torch.stack([y, 45 * torch.cos(angles), 45 * torch.sin(angles)], 1)
    rgb = (YIQ_TO_RGB @ yiq.T).T.view(-1, 3, 1, 1)
    images = rgb + 6 * torch.randn(len(labels), 3, 32, 32, generator=generator)
    return Split(images.round().clamp(0, 255).to(torch.uint8), labels)


def test_a_colour_only_model_is_at_chance_on_grayscale() -> None:
    train, test = colour_split(60, seed=0), colour_split(25, seed=1)
    model = fit(tiny_net(4), train)
    cpu = torch.device("cpu")
    clean = (predict_logits(model, test.images, cpu).argmax(1) == test.labels).float().mean().item()
    gray = (predict_logits(model, grayscale(test.images), cpu).argmax(1) == test.labels).float().mean().item()
    assert clean > 0.9
    assert abs(gray - 0.25) <= 0.1


def tcav_inputs(seed: int) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    concepts = {name: IMAGE_FREE_CONCEPTS[name][1](12, 32, generator) for name in ("red", "stripes", "noise_coarse")}
    randoms = [random_images(12, seed=100 + i) for i in range(11)]
    data = class_coloured_split(5, seed=seed, num_classes=4)
    return concepts, randoms, data.images, data.labels


@pytest.mark.xfail(strict=True, reason="known limitation, see docs/concepts.md: at stage1 of a random network the "
                   "concept CAVs (synthetic concepts against random images) align with a direction the class logit "
                   "responds to systematically, so their sign counts sit at 0 or 1 and the t-test against "
                   "random-vs-random CAVs flags them; every run measures this on untrained copies (untrained_control)")
def test_tcav_on_a_random_model_finds_no_significant_concept() -> None:
    model = tiny_net(4, seed=1).eval()
    concepts, randoms, images, labels = tcav_inputs(0)
    table = with_significance(tcav_table(model, ["stage1", "stage2"], concepts, randoms, images, labels, 4), 0.05, "holm")
    assert len(table) == 2 * 3 * 4
    assert table["tcav"].between(0, 1).all() and table["cav_accuracy"].between(0, 1).all()
    assert not table["significant"].any(), table[table["significant"]]


def test_tcav_is_not_tested_where_the_class_gradient_is_the_same_for_every_image() -> None:
    """tiny_net's stage2 feeds average pooling and a linear head: d logit / d activation is the head's weight
    row at every position, for every image, so a sign count along any CAV is 0 or 1 for the whole class."""
    model = tiny_net(4, seed=1).eval()
    concepts, randoms, images, labels = tcav_inputs(0)
    table = with_significance(tcav_table(model, ["stage1", "stage2"], concepts, randoms, images, labels, 4), 0.05, "holm")
    deepest = table[table["depth"] == "stage2"]
    assert deepest["degenerate"].all() and (deepest["p_value"] == 1).all() and not deepest["significant"].any()
    assert not table.loc[table["depth"] == "stage1", "degenerate"].any()


def _separable_sets(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(30, 16, generator=generator) + 3, torch.randn(30, 16, generator=generator) - 3


def test_captums_default_classifier_reports_the_share_of_the_first_class_as_its_accuracy() -> None:
    """Why train_cav scores the held-out split itself: this fails once Captum computes the accuracy right."""
    from captum.concept._utils.classifier import DefaultClassifier
    from torch.utils.data import DataLoader, TensorDataset

    concept, random = _separable_sets(torch.Generator().manual_seed(0))
    labels = torch.cat([torch.zeros(30), torch.ones(30)]).long()
    for seed in range(3):
        seed_everything(seed)  # Captum's split shuffles with Python's RNG
        with pytest.warns(UserWarning):
            classifier = DefaultClassifier()
        accuracy = classifier.train_and_eval(DataLoader(TensorDataset(torch.cat([concept, random]), labels), batch_size=60))
        assert float(accuracy["accs"]) < 0.8  # the data are separable by a wide margin


def test_a_cav_separates_separable_sets_points_to_the_concept_and_says_so() -> None:
    generator = torch.Generator().manual_seed(0)
    concept, random = _separable_sets(generator)
    direction, accuracy = train_cav(concept, random, generator)
    assert accuracy == 1.0
    assert torch.nn.functional.cosine_similarity(direction, concept.mean(0) - random.mean(0), dim=0) > 0.8
    noise_a, noise_b = torch.randn(30, 16, generator=generator), torch.randn(30, 16, generator=generator)
    assert 0.2 < train_cav(noise_a, noise_b, generator)[1] < 0.8  # nothing to separate: near chance


def test_one_model_per_architecture_runs_tcav_on_an_untrained_copy() -> None:
    """The copy depends on neither the variant nor the training seed: one per architecture, the first of the run."""
    config = load_config("extended", {"seeds": [0, 1]})
    keys = run_keys(config, config.concepts.variants)
    assert len(keys) == 18
    assert untrained_controls(keys) == {"fastnet__baseline__s0", "resnet_small__baseline__s0", "vgg_small__baseline__s0"}


def test_degenerate_nulls_are_the_classes_whose_random_scores_are_all_zero_or_one() -> None:
    null = np.array([[0.0, 1.0, 1.0, 0.0], [0.2, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert degenerate_null(null).tolist() == [True, False, True]


def test_report_section_and_findings_quote_the_concept_tables(tmp_path) -> None:
    from xaiquest.report.findings import RunTables, run_rules
    from xaiquest.report.sections import build_report

    tables = RunLayout(tmp_path).tables
    tables.folder.mkdir()
    runs = ["fastnet__baseline__s0", "fastnet__cutmix__s0"]
    pd.DataFrame({"run": runs, "model": "fastnet", "variant": ["baseline", "cutmix"], "seed": 0,
                  "shape_bias": [0.2, 0.35], "shape_decisions": [0.1, 0.14], "texture_decisions": [0.4, 0.26],
                  "clean_accuracy": [0.8, 0.78], "grayscale_accuracy": [0.6, 0.7], "silhouette_accuracy": [0.2, 0.25],
                  "outline_accuracy": [0.15, 0.18]}).to_csv(tables.concepts_summary, index=False)
    pd.DataFrame({"run": runs[0], "depth": "stage2", "concept": ["red", "stripes"], "class_index": 0,
                  "class_name": "airplane", "tcav": [0.9, 0.5], "random_tcav": 0.5, "p_corrected": [0.001, 0.9],
                  "cav_accuracy": 1.0, "significant": [True, False]}).to_csv(tables.concepts_tcav, index=False)
    pd.DataFrame({"run": runs[0], "depth": ["stage1", "stage2", "stage2"], "concept": ["red", "red", "patch"],
                  "units": 64, "detectors": [1, 5, 0], "fraction": [1 / 64, 5 / 64, 0.0]}).to_csv(
        tables.concepts_detectors, index=False)
    pd.DataFrame({"run": runs[0], "architecture": "fastnet", "depth": "stage2", "concept": ["red", "stripes"],
                  "class_index": 0, "class_name": "airplane", "significant": [True, True]}).to_csv(
        tables.concepts_tcav_untrained, index=False)
    texts = [f.text for f in run_rules(RunTables(tmp_path), ["concept_shape_bias", "concept_colour_reliance",
                                                              "concept_tcav", "concept_tcav_untrained", "concept_detectors"])]
    assert "On fastnet, cutmix raises shape bias: 0.200 -> 0.350 (+0.150) against its baseline." in texts
    assert any("loses 20.00 pp without colour: accuracy 80.00% -> 60.00% (-20.00 pp)" in t for t in texts)
    assert any("1 of 2 (depth, concept, class) TCAV tests significant" in t and "red (1 class)" in t for t in texts)
    assert any(t.startswith("Untrained fastnet (initial weights, the same probes and test): 2 of 2 (depth, concept, class) "
                            "TCAV tests significant after correction, against 1 for its 1 trained model. 1 of them passes no more "
                            "tests than the untrained copy")
               for t in texts)
    assert any("stage2 has 5 colour detectors" in t for t in texts)
    assert any("0 patch-detector units." in t for t in texts)
    section = next(s for s in build_report(RunTables(tmp_path)).sections if s.key == "concepts")
    assert [b.title for b in section.blocks][:3] == ["Shape, texture and colour bias", "TCAV: concepts significant after correction",
                                                     "TCAV sanity check: significant tests per depth, trained models and untrained copies"]
    counts = section.blocks[2].display.set_index("Model")
    assert counts.loc["fastnet", "stage2"] == 1 and counts.loc["untrained fastnet", "Total"] == 2
    assert counts.loc["untrained fastnet", "Tests"] == 2


def test_dashboard_unit_view_shows_top_images_and_the_units_mask(smoke_run) -> None:
    pytest.importorskip("gradio")
    from xaiquest.dashboard.concepts import unit_views
    from xaiquest.dashboard.session import Dashboard, open_run

    dashboard = Dashboard(open_run(smoke_run))
    views = unit_views(dashboard, "fastnet__baseline__s0", "stage1", 0, count=3)
    assert len(views) == 6 and views[0][0].shape == views[1][0].shape
    assert (views[1][0] <= views[0][0]).all() and (views[1][0] < views[0][0]).any()  # outside the mask is dimmed
