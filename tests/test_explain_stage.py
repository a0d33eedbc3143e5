"""Explanations wired to the audit: Grad-CAM passes the randomisation sanity check, image selection is shared."""

from __future__ import annotations

import torch

from synthetic import class_coloured_split
from xaiquest.config import ExplainConfig
from xaiquest.explainers import explain
from xaiquest.explainers.quality import cascading_randomisation, sanity_flag
from xaiquest.explain.stage import shared_sample
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
