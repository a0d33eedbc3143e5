"""Explanations wired to the audit: Grad-CAM passes the randomisation sanity check, image selection is shared."""

from __future__ import annotations

import torch

from synthetic import class_coloured_split
from xaiquest.config import ExplainConfig
from xaiquest.explainers import explain
from xaiquest.explainers.quality import cascading_randomisation, sanity_flag
from xaiquest.explain.stage import grid_rows, shared_sample
from xaiquest.inference import prepare_batch, seed_everything
from xaiquest.models import build_model


def test_gradcam_maps_change_when_the_weights_are_randomised():
    seed_everything(0)
    model = build_model("resnet_small", 10).eval()
    data = class_coloured_split(1, seed=0)
    images = prepare_batch(data.images[:6], torch.device("cpu"), channels_last=False)
    targets = data.labels[:6]
    table = cascading_randomisation(model, images, targets, lambda m, x, t: explain("gradcam", m, x, t))
    assert table.iloc[0]["ssim"] > 0.99  # the untouched copy reproduces its maps
    assert table.iloc[-1]["ssim"] < 0.5 and not sanity_flag(table)


def test_the_shared_sample_is_stratified_seeded_and_the_same_for_every_call():
    labels = torch.arange(10).repeat(30)
    cfg = ExplainConfig(per_class=2, seed=3)
    first, second = shared_sample(labels, cfg), shared_sample(labels, cfg)
    assert torch.equal(first, second)
    assert torch.equal(torch.bincount(labels[first]), torch.full((10,), 2))
    assert not torch.equal(first, shared_sample(labels, ExplainConfig(per_class=2, seed=4)))


def test_the_grid_keeps_every_row_that_fits_and_else_the_failures_and_a_spread_of_the_sample():
    assert grid_rows(["sample"] * 5 + ["confident failure"] * 2, 24) == list(range(7))
    kinds = ["sample"] * 100 + ["confident failure"] * 10
    rows = grid_rows(kinds, 24)
    assert len(rows) == 24 and rows[-10:] == list(range(100, 110))
    assert rows[:14] == sorted(rows[:14]) and rows[0] == 0 and rows[13] == 99  # spread from the first to the last
    assert len(grid_rows(["sample"] * 100 + ["confident failure"] * 50, 24)) == 24  # failures take at most half


def test_explanations_are_redone_when_a_method_default_changes(smoke_run, tmp_path, monkeypatch):
    """The explain unit's fingerprint holds each method's defaults: maps made under an older default
    (SmoothGrad's sample count, say) are not passed off as the new method's."""
    import shutil

    from xaiquest.config import ExperimentConfig
    from xaiquest.explainers import gradients
    from xaiquest.pipeline import run_pipeline
    from xaiquest.store import RunStore

    root = tmp_path / "runs" / smoke_run.name
    shutil.copytree(smoke_run, root)
    store = RunStore(root)
    config = ExperimentConfig(**store.read_manifest()["config"])
    config = config.model_copy(update={"explain": config.explain.model_copy(update={
        "methods": ["saliency", "smoothgrad"], "per_class": 1, "confident_failures": 0, "sanity_images": 1,
        "reexamine": 0, "variants": None})})
    unit = "explain/fastnet__baseline__s0"
    run_pipeline(config, root.parent, ["explain"])
    first = store.unit_record(unit)["finished"], store.unit_record(unit)["fingerprint"]
    run_pipeline(config, root.parent, ["explain"])
    assert (store.unit_record(unit)["finished"], store.unit_record(unit)["fingerprint"]) == first  # skipped
    defaults = list(gradients.smoothgrad.__defaults__)
    defaults[0] = 8  # nt_samples
    monkeypatch.setattr(gradients.smoothgrad, "__defaults__", tuple(defaults))
    run_pipeline(config, root.parent, ["explain"])
    assert store.unit_record(unit)["fingerprint"] != first[1]
