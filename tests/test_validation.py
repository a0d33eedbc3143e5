"""The one check of a config's names and class indices, and the layering that keeps it fast:
config imports no registry, no stage package imports another (the CLI-level cases: test_cli.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.config import load_config
from xaiquest.errors import ConfigError
from xaiquest.pipeline import STAGES
from xaiquest.validation import check_config

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "xaiquest"
STAGE_PACKAGES = ("train", "evaluate", "calibration", "robustness", "explain", "stress", "concepts", "transfer", "report")


def test_names_every_model_has_pass_the_check_and_a_torchvision_layer_is_checked_too():
    check_config(load_config("smoke", {"explain": {"layer": "stage2"}}), num_classes=10)
    check_config(load_config("smoke", {"models": ["fastnet"], "explain": {"layer": "stem.conv"}}), num_classes=10)
    with pytest.raises(ConfigError, match=r"unknown layer 'stage9'.*\(model tv:resnet18\)"):
        check_config(load_config("smoke", {"models": ["tv:resnet18"], "explain": {"layer": "stage9"}}), num_classes=10)


def test_timm_names_and_layers_are_checked_like_torchvision_ones():
    check_config(load_config("smoke", {"models": ["timm:resnet10t"], "explain": {"layer": "stage2"}}), 10)
    with pytest.raises(ConfigError, match=r"unknown timm model 'resnt10t'; e\.g\. timm:resnet10t"):
        check_config(load_config("smoke", {"models": ["timm:resnt10t"]}), 10)
    with pytest.raises(ConfigError, match=r"unknown layer 'stage9'.*\(model timm:resnet10t\)"):
        check_config(load_config("smoke", {"models": ["timm:resnet10t"], "explain": {"layer": "stage9"}}), 10)


def test_a_patch_class_is_checked_wherever_the_patch_is_configured():
    patch = {"patch": {"target_class": 3}}
    for where, overrides in (("train.patch", {"train": patch}),
                             ("models.fastnet.train.patch", {"models": [{"name": "fastnet", "train": patch}]})):
        config = load_config("smoke", overrides)
        check_config(config, num_classes=4)
        with pytest.raises(ConfigError, match=f"'{where}.target_class': 3 is not a class index of the data \\(0..2\\)"):
            check_config(config, num_classes=3)


def test_a_patch_too_big_for_the_images_is_named_before_any_work():
    fits, too_big = (load_config("smoke", {"train": {"patch": {"size": size}}}) for size in (31, 32))
    for image_size in (32, 224):  # the size is in pixels at 32 px: it scales with the image
        check_config(fits, num_classes=10, image_size=image_size)
        with pytest.raises(ConfigError, match=r"'train.patch.size': patch size 32 \(a \d+ px square with margin \d+ px\) "
                                              rf"does not fit a {image_size}x{image_size} image; lower patch.size"):
            check_config(too_big, num_classes=10, image_size=image_size)


def test_list_profiles_shows_each_models_own_epochs():
    result = CliRunner().invoke(app, ["list", "profiles"])
    assert result.exit_code == 0, result.output
    standard = next(line for line in result.output.splitlines() if line.startswith("standard:"))
    config = load_config("standard")
    for spec in config.models:
        assert f"{spec.name} {config.train_config(spec, 'baseline').epochs} epochs" in standard
    assert config.train.epochs != max(config.train_config(spec, "baseline").epochs for spec in config.models)


def _imports(file: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_layering_check_covers_every_pipeline_stage():
    assert {target.split(".")[1] for target in STAGES.values()} == set(STAGE_PACKAGES)


def test_no_stage_package_imports_another_stage_package():
    crossings = [
        f"{file.relative_to(PACKAGE)} imports {name}"
        for stage in STAGE_PACKAGES
        for file in sorted((PACKAGE / stage).rglob("*.py"))
        for name in _imports(file)
        if name.split(".")[:2] != ["xaiquest", stage] and name.split(".")[0] == "xaiquest"
        and len(name.split(".")) > 1 and name.split(".")[1] in STAGE_PACKAGES
    ]
    assert crossings == []


def test_config_imports_no_registry():
    imported = _imports(PACKAGE / "config.py")
    assert {name for name in imported if name.startswith("xaiquest.")} <= {"xaiquest.errors"}, imported


def test_a_name_mistake_is_reported_before_the_data_loads(tmp_path):
    """The names check runs first: a bad layer beats a missing data folder, so no minutes of loading precede it."""
    from xaiquest.pipeline import run_pipeline

    config = load_config("smoke", {"explain": {"layer": "stage9"}, "data": {"source": str(tmp_path / "no-data")}})
    with pytest.raises(ConfigError, match="unknown layer 'stage9'"):
        run_pipeline(config, tmp_path / "runs", ["train"])
    assert not (tmp_path / "runs").exists()


def test_the_names_check_loads_none_of_the_stages_heavy_libraries():
    """What decides the time to the first config error: the check needs torch, not the stages' heavy libraries
    (torchvision alone costs over a second: its import pulls in torch's compiler stack)."""
    code = ("import sys; from xaiquest.config import load_config; from xaiquest.validation import check_config; "
            "import xaiquest.pipeline; check_config(load_config('quick'), 10, None, quick=True); "
            "print(sorted(m for m in ('torchvision', 'timm', 'matplotlib', 'captum', 'pandas', 'torch._dynamo') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_a_schema_mistake_is_reported_before_torch_loads(tmp_path):
    """A misspelled key needs only the pydantic schema: the error comes in a fraction of a second."""
    config = tmp_path / "bad.yaml"
    config.write_text("profile: smoke\nname: bad\ntrian: {epochs: 2}\n")
    code = ("import sys; from typer.testing import CliRunner; from xaiquest.cli import app; "
            f"result = CliRunner().invoke(app, ['run', {str(config)!r}]); "
            "print(result.exit_code, 'torch' in sys.modules, 'trian' in result.output)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2", "False", "True"], result.stdout + result.stderr


def test_a_class_index_is_checked_against_the_folders_before_the_images_load(tmp_path, tiny_cifar, monkeypatch):
    """The class count comes from the data's folder names, so a patch class beyond it fails before any image is read."""
    import xaiquest.pipeline as pipeline

    def no_loading(config):
        raise AssertionError("the data was loaded before the class index was checked")

    monkeypatch.setattr(pipeline, "prepare_data", no_loading)
    config = load_config("smoke", {"data": {"source": str(tiny_cifar)}, "train": {"patch": {"target_class": 12}}})
    with pytest.raises(ConfigError, match=r"'train.patch.target_class': 12 is not a class index of the data \(0..9\)"):
        pipeline.run_pipeline(config, tmp_path / "runs", ["train"])


def test_the_class_count_is_read_from_the_folders_of_every_layout(tmp_path, tiny_cifar):
    """Image folders (train/ + test/), one class tree and a missing location (None: load_dataset explains)."""
    from xaiquest.data import load_dataset, peek_class_count

    assert peek_class_count(tiny_cifar, tmp_path) == len(load_dataset(tiny_cifar, tmp_path / "cache").classes) == 10
    assert peek_class_count(tiny_cifar / "train", tmp_path) == 10
    assert peek_class_count(tmp_path / "missing", tmp_path) is None
