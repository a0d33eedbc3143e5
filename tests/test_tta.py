"""One test-time-augmentation policy (``eval.tta``) for every stage that predicts.

The model is a seeded, untrained FastNet on which mirroring changes the arg-max of a few test
images, so any stage that predicts differently from the evaluate stage shows up as a mismatch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from synthetic import class_coloured_split
from xaiquest.config import ExperimentConfig, load_config
from xaiquest.data import CIFAR10_CLASSES, stratified_indices
from xaiquest.errors import ConfigError
from xaiquest.inference import predict_logits, seed_everything
from xaiquest.models import build_model
from xaiquest.pipeline import load_stage
from xaiquest.layout import unit_name
from xaiquest.runs import AuditData, RunKey, evaluate_fingerprint, load_logits, run_keys
from xaiquest.store import RunStore

CPU = torch.device("cpu")
PREDICTING_STAGES = ("evaluate", "calibrate", "robustness", "explain", "stress")
MODEL_SEED = 2  # a FastNet initialisation whose flip-TTA arg-max differs from the plain one on 4 of 40 test images


def _config(tta: str) -> ExperimentConfig:
    return load_config("smoke", {
        "name": "tta", "models": ["fastnet"], "eval": {"tta": tta},
        "robustness": {"corruptions": ["brightness"], "severities": [1], "test_images": None},
        "explain": {"methods": ["gradcam"], "per_class": 1, "confident_failures": 2, "sanity_images": 1,
                    "deletion_steps": 4},
        "stress": {"probes": ["grayscale"], "test_images": 100, "focus_methods": ["gradcam"], "focus_images": 2,
                   "layerwise_images": 8},
    })


def _audit(root: Path, config: ExperimentConfig, data: AuditData) -> RunStore:
    """Every predicting stage of the pipeline on the run under ``root`` (its model already saved)."""
    store = RunStore(root)
    store.initialise(config.model_dump(mode="json"), data.source)
    for stage in PREDICTING_STAGES:
        load_stage(stage)(config, store, data, CPU)
    return store


@pytest.fixture(scope="module")
def data() -> AuditData:
    return AuditData(class_coloured_split(2, seed=0), class_coloured_split(1, seed=2), class_coloured_split(4, seed=1),
                     CIFAR10_CLASSES, "synthetic", Path("synthetic"), "synthetic")


@pytest.fixture(scope="module")
def flip_run(tmp_path_factory, data) -> tuple[RunStore, RunKey, torch.nn.Module]:
    config = _config("flip")
    (key,) = run_keys(config)
    store = RunStore(tmp_path_factory.mktemp("tta") / "run")
    seed_everything(MODEL_SEED)
    model = build_model("fastnet", len(CIFAR10_CLASSES)).eval()
    weights = store.layout.model(key.id).weights
    weights.parent.mkdir(parents=True)
    torch.save(model.state_dict(), weights)
    return _audit(store.root, config, data), key, model


def _plain_and_flip(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(predict_logits(model, images, CPU, tta=tta).argmax(1) for tta in ("none", "flip"))


def test_explanations_explain_the_class_accuracy_counted_when_flip_changes_it(flip_run, data):
    store, key, model = flip_run
    saved = torch.load(store.layout.model(key.id).explain.maps)
    plain, flip = _plain_and_flip(model, data.test.images[saved["indices"]])
    assert (plain != flip).any(), "precondition: mirroring changes the prediction of some explained image"
    counted = load_logits(store, key)["test"][saved["indices"]].argmax(1)
    assert torch.equal(counted, flip)
    assert torch.equal(saved["targets"], counted)
    selection = pd.read_csv(store.layout.model(key.id).explain.selection)
    assert selection["predicted"].tolist() == counted.tolist()


def test_robustness_clean_accuracy_is_stage_one_accuracy_under_the_same_policy(flip_run, data):
    store, key, model = flip_run
    plain, flip = _plain_and_flip(model, data.test.images)
    labels = data.test.labels
    assert (plain == labels).sum() != (flip == labels).sum(), "precondition: mirroring changes the accuracy"
    summary = pd.read_csv(store.layout.tables.robustness_summary).set_index("run")
    assert summary.loc[key.id, "clean_accuracy"] == pytest.approx((flip == labels).float().mean().item())
    assert summary.loc[key.id, "clean_accuracy"] == pytest.approx(store.unit_record(unit_name("evaluate", key.id))["accuracy"])
    note = store.layout.tables.markdown_of(store.layout.tables.robustness_summary).read_text(encoding="utf-8")
    assert "clean accuracy on the same 40 stratified test images, predictions under eval.tta = flip" in note


def test_stress_predictions_follow_the_policy(flip_run, data):
    store, key, model = flip_run
    _, chosen = stratified_indices(data.test.labels, len(data.test) - 1, _config("flip").stress.seed)
    plain, flip = _plain_and_flip(model, data.test.images[chosen])
    labels = data.test.labels[chosen]
    assert (plain == labels).sum() != (flip == labels).sum(), "precondition: mirroring changes the stress subset's accuracy"
    probes = pd.read_csv(store.layout.model(key.id).stress.table("probes"))
    clean = probes[probes["probe"] == "clean"].iloc[0]
    assert clean["accuracy"] == pytest.approx((flip == labels).float().mean().item())


def test_every_predicting_unit_descends_from_a_fingerprint_that_holds_the_policy(flip_run, data):
    store, key, _ = flip_run
    flip, none = _config("flip"), _config("none")
    assert evaluate_fingerprint(flip, data, key, store) != evaluate_fingerprint(none, data, key, store)


@pytest.mark.slow  # a second audit of every predicting stage; the default suite checks the fingerprint above
def test_changing_the_policy_reruns_every_predicting_unit_under_the_new_one(flip_run, data, tmp_path):
    store, key, model = flip_run
    root = tmp_path / "run"
    shutil.copytree(store.root, root)
    rerun = _audit(root, _config("none"), data)
    for stage in PREDICTING_STAGES:
        unit = "robustness" if stage == "robustness" else unit_name(stage, key.id)
        assert rerun.unit_record(unit)["fingerprint"] != store.unit_record(unit)["fingerprint"], unit
    saved = torch.load(rerun.layout.model(key.id).explain.maps)
    plain, _ = _plain_and_flip(model, data.test.images[saved["indices"]])
    assert torch.equal(saved["targets"], plain)
    summary = pd.read_csv(rerun.layout.tables.robustness_summary).set_index("run")
    assert summary.loc[key.id, "clean_accuracy"] == pytest.approx(rerun.unit_record(unit_name("evaluate", key.id))["accuracy"])


def test_the_policy_is_validated_and_the_old_per_stage_switch_is_gone():
    with pytest.raises(ConfigError, match="config field 'eval.tta'.*'flip', 'none' or 'flip_translate'"):
        load_config("smoke", {"eval": {"tta": "mirror"}})
    with pytest.raises(ConfigError, match="config field 'robustness.tta_flip' is not allowed"):
        load_config("smoke", {"robustness": {"tta_flip": True}})


def test_flip_translate_is_airbench_level_2_test_time_augmentation():
    """The same logits as airbench's own ``infer(..., tta_level=2)`` (mirror, and mirror of the image shifted one
    pixel each way with reflect padding), on a model whose arg-max the shifts change."""
    airbench = pytest.importorskip("airbench")
    import torchvision.transforms as T

    seed_everything(MODEL_SEED)
    model = build_model("fastnet", len(CIFAR10_CLASSES)).eval()
    images = class_coloured_split(4, seed=1).images

    class Loader:  # what airbench's infer reads of its CifarLoader
        normalize = T.Normalize(airbench.utils.CIFAR_MEAN, airbench.utils.CIFAR_STD)

    Loader.images = images.float() / 255
    theirs = airbench.infer(model, Loader, tta_level=2)
    ours = predict_logits(model, images, CPU, tta="flip_translate")
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.equal(ours.argmax(1), predict_logits(model, images, CPU, tta="flip").argmax(1))
