"""Config loading: profiles, layering, and one clear error per bad field."""

from __future__ import annotations

import pytest

from xaiquest.config import PROFILES, load_config
from xaiquest.errors import ConfigError
from xaiquest.runs import run_keys


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_validates_and_names_its_run_after_itself(profile):
    config = load_config(profile)
    assert config.name == profile  # runs/<profile>/: a profile never writes into another profile's run
    ids = [key.id for key in run_keys(config)]
    assert ids and len(ids) == len(set(ids))


def test_a_config_file_overrides_its_profile_section_by_section(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_text("name: mine\nprofile: quick\ntrain: {epochs: 7}\nmodels: [fastnet]\n")
    config = load_config(file)
    assert config.name == "mine" and config.train.epochs == 7
    assert config.train.batch_size == load_config("quick").train.batch_size  # inherited
    assert [m.name for m in config.models] == ["fastnet"]


def test_model_and_variant_overrides_layer_on_the_train_section(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_text(
        "name: v\nmodels: [{name: fastnet, train: {lr: 0.3}}]\ntrain: {epochs: 2, lr: 0.1}\n"
        "variants: {baseline: {}, mixup: {mixup_alpha: 0.2, lr: 0.05}}\n"
    )
    config = load_config(file)
    model = config.models[0]
    assert config.train_config(model, "baseline").lr == 0.3
    mixup = config.train_config(model, "mixup")
    assert (mixup.lr, mixup.mixup_alpha, mixup.epochs) == (0.05, 0.2, 2)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"train": {"epocs": 3}}, "'train.epocs' is not allowed; allowed fields here: epochs"),
        ({"trian": {}}, "'trian' is not allowed"),
        ({"train": {"optimizer": "rmsprop"}}, "'train.optimizer': Input should be 'sgd' or 'adamw'"),
        ({"variants": {"mx": {"mixup": 1}}}, "variant 'mx': mixup: Extra inputs are not permitted (allowed: epochs"),
        ({"train": {"epochs": 0}}, "'train.epochs': Input should be greater than or equal to 1"),
        ({"name": "bad name/"}, "'name'"),
        ({"stress": {"variants": ["mixupp"]}}, "stress.variants: unknown variant 'mixupp'; defined variants: baseline"),
        ({"models": [{"name": "fastnet", "variants": ["nope"]}]}, "models.fastnet.variants: unknown variant 'nope'"),
    ],
)
def test_bad_fields_are_named_with_what_is_allowed(override, expected):
    with pytest.raises(ConfigError) as error:
        load_config("quick", override)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_models_and_stages_select_variants(tmp_path):
    file = tmp_path / "exp.yaml"
    file.write_text(
        "name: v\nprofile: quick\nvariants: {baseline: {}, mixup: {mixup_alpha: 0.2}}\n"
        "models: [fastnet, {name: vgg_small, variants: [baseline]}]\nrobustness: {variants: [mixup]}\n"
    )
    config = load_config(file)
    assert [k.id for k in run_keys(config)] == ["fastnet__baseline__s0", "fastnet__mixup__s0", "vgg_small__baseline__s0"]
    assert [k.id for k in run_keys(config, config.robustness.variants)] == ["fastnet__mixup__s0"]
    assert config.stress.variants is None  # the quick profile's selection named its own variants, so it is dropped
    assert load_config("quick").stress.variants is not None


def test_missing_file_and_bad_profile_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a profile"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="'profile': Input should be 'smoke'"):
        load_config("quick", {"profile": "fast"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


FINGERPRINTED_TRAIN_FIELDS = {
    "epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup_frac",
    "label_smoothing", "mixup_alpha", "cutmix_alpha", "crop_pad", "flip", "channels_last", "amp", "tensorboard", "patch",
}
"""The train section's fields when runs were first fingerprinted."""


def test_a_recipe_that_uses_no_later_train_field_dumps_as_before():
    """A field added to TrainConfig must be in LATER_FIELDS: otherwise every trained model's fingerprint
    changes and every run retrains."""
    from xaiquest.config import TrainConfig

    assert set(TrainConfig().model_dump()) == FINGERPRINTED_TRAIN_FIELDS
    assert TrainConfig.LATER_FIELDS <= set(TrainConfig.model_fields) - FINGERPRINTED_TRAIN_FIELDS
