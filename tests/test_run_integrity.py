"""What a user meets when the run's files or folders go wrong: damaged or replaced artifacts are noticed and
redone, unreadable weights and unwritable folders are one line and exit 2, 16-bit images load, and a run
finds its data again from another folder."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from synthetic import class_coloured_split, write_image_folder, write_png16
from xaiquest.cli import app
from xaiquest.layout import RELATIVE, ModelFiles, RunLayout

MODEL = "fastnet__baseline__s0"


def _invoke(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def _config(folder: Path, name: str = "tiny") -> Path:
    file = folder / f"{name}.yaml"
    file.write_text(
        f"name: {name}\nprofile: smoke\nmodels: [fastnet]\n"
        f"data: {{val_size: 20, train_subset: null, test_subset: null, cache_dir: {folder / 'cache'}}}\n"
        "train: {epochs: 1, batch_size: 32, lr: 0.2, tensorboard: false}\n"
    )
    return file


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(config, data, runs)``: one tiny model trained once; tests work on copies of ``runs``."""
    root = tmp_path_factory.mktemp("integrity")
    data = write_image_folder(root / "data", class_coloured_split(30, seed=0), class_coloured_split(6, seed=1))
    config = _config(root)
    result = _invoke("train", config, "--data", data, "--runs-dir", root / "runs")
    assert result.exit_code == 0, result.output
    return config, data, root / "runs"


@pytest.fixture
def run_copy(trained, tmp_path) -> tuple[Path, Path, Path]:
    config, data, runs = trained
    shutil.copytree(runs, tmp_path / "runs")
    return config, data, tmp_path / "runs"


def _run(runs: Path) -> RunLayout:
    return RunLayout(runs / "tiny")


def _model(runs: Path) -> ModelFiles:
    return _run(runs).model(MODEL)


def _weights(runs: Path) -> Path:
    return _model(runs).weights


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback: a clean exit
    assert "Traceback" not in result.output and result.output.count("error:") == 1, result.output
    assert all(fragment in result.output for fragment in fragments), result.output


# --- damaged or replaced artifacts (12.3) ------------------------------------------------------------------


def test_train_retrains_a_truncated_model_instead_of_skipping_it(run_copy):
    config, data, runs = run_copy
    original = torch.load(_weights(runs))
    _truncate(_weights(runs))
    result = _invoke("train", config, "--data", data, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert f"train: 1/1 {MODEL}" in result.output  # redone, not skipped
    assert "model.pt changed size" in result.output.replace("\n", "")
    retrained = torch.load(_weights(runs))  # from scratch, bit-exact with the first training
    assert all(torch.equal(retrained[name], value) for name, value in original.items())


def test_a_later_stage_names_the_damaged_weights_and_the_command_that_rebuilds_them(run_copy):
    config, data, runs = run_copy
    _truncate(_weights(runs))
    result = _invoke("evaluate", config, "--data", data, "--runs-dir", runs)
    _assert_one_line_error(result, "model.pt changed size", "xaiquest train")


def test_foreign_weights_the_run_did_not_record_are_one_clear_error(run_copy):
    """An older run (no recorded hashes) with someone else's file as model.pt."""
    config, data, runs = run_copy
    manifest_path = _run(runs).manifest
    manifest = json.loads(manifest_path.read_text())
    manifest["units"][f"train/{MODEL}"].pop("artifacts", None)
    manifest_path.write_text(json.dumps(manifest))
    torch.save({"conv.weight": torch.zeros(3)}, _weights(runs))
    result = _invoke("evaluate", config, "--data", data, "--runs-dir", runs)
    _assert_one_line_error(result, "model.pt is not readable fastnet weights", "xaiquest train")
    _truncate(_weights(runs))
    result = _invoke("evaluate", config, "--data", data, "--runs-dir", runs)
    _assert_one_line_error(result, "model.pt is not readable fastnet weights", "delete the file")


def test_metrics_of_replaced_weights_are_measured_again(run_copy):
    """A model retrained to other weights (another machine, a GPU) must not keep the old metrics "complete"."""
    config, data, runs = run_copy
    assert _invoke("evaluate", config, "--data", data, "--runs-dir", runs).exit_code == 0
    logits_file = _model(runs).eval.logits
    before = torch.load(logits_file)["test"]
    weights = torch.load(_weights(runs))
    torch.save({name: value * 0.5 if value.is_floating_point() else value for name, value in weights.items()},
               _weights(runs))
    manifest_path = _run(runs).manifest  # the record a retraining leaves: the new file's size and hash
    manifest = json.loads(manifest_path.read_text())
    content = _weights(runs).read_bytes()
    manifest["units"][f"train/{MODEL}"].setdefault("artifacts", {})[RELATIVE.model(MODEL).weights.as_posix()] = {
        "bytes": len(content), "blake2b": hashlib.blake2b(content).hexdigest()}
    manifest_path.write_text(json.dumps(manifest))
    result = _invoke("evaluate", config, "--data", data, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert f"evaluate: 1/1 {MODEL} test accuracy" in result.output
    assert not torch.equal(torch.load(logits_file)["test"], before)


def test_damaged_logits_are_redone_by_evaluate(run_copy):
    config, data, runs = run_copy
    assert _invoke("evaluate", config, "--data", data, "--runs-dir", runs).exit_code == 0
    logits_file = _model(runs).eval.logits
    original = torch.load(logits_file)["test"]
    _truncate(logits_file)
    result = _invoke("calibrate", config, "--data", data, "--runs-dir", runs)
    _assert_one_line_error(result, "logits.pt changed size", "xaiquest evaluate")
    result = _invoke("evaluate", config, "--data", data, "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    assert f"evaluate: 1/1 {MODEL} test accuracy" in result.output
    assert torch.equal(torch.load(logits_file)["test"], original)


# --- folders that cannot be written, images with 16-bit samples (12.2) ------------------------------------


def test_a_runs_folder_that_is_a_file_is_one_clear_error(trained, tmp_path):
    config, data, _ = trained
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    result = _invoke("train", config, "--data", data, "--runs-dir", blocker)
    _assert_one_line_error(result, f"{blocker} is a file where a folder is needed")


def test_any_other_refused_file_access_is_one_line_naming_the_file(run_copy):
    config, data, runs = run_copy
    setup = _model(runs).train_record
    setup.unlink()
    setup.mkdir()
    result = _invoke("evaluate", config, "--data", data, "--runs-dir", runs)
    _assert_one_line_error(result, f"cannot access {setup} (Is a directory)")


@pytest.fixture
def refusing_writes(monkeypatch):
    """The file system refuses to put files into place under a folder, as a read-only or full disk does."""

    def refuse(runs: Path, code: int) -> None:
        real = os.replace

        def replace(source, target, *args, **kwargs):
            if Path(target).is_relative_to(runs):
                raise OSError(code, os.strerror(code), str(target))
            return real(source, target, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)

    return refuse


def _temp_files(runs: Path) -> list[Path]:
    return [path for path in runs.rglob("*") if path.name.endswith(".tmp")]


def test_an_existing_run_on_a_full_disk_is_one_clear_error(run_copy, refusing_writes):
    config, data, runs = run_copy
    refusing_writes(runs, errno.ENOSPC)
    result = _invoke("evaluate", config, "--data", data, "--runs-dir", runs)
    _assert_one_line_error(result, "cannot write", "No space left on device", "free disk space")
    assert not _temp_files(runs)


def test_report_into_a_read_only_run_is_one_clear_error(run_copy, refusing_writes):
    _, _, runs = run_copy
    refusing_writes(runs, errno.EROFS)
    result = _invoke("report", runs / "tiny")
    _assert_one_line_error(result, "cannot write", "Read-only file system", "writable")
    assert not _run(runs).report_html.exists() and not _temp_files(runs)


def test_16_bit_grey_and_rgb_pngs_load_scaled_to_8_bits_and_are_counted(tmp_path):
    data = write_image_folder(tmp_path / "data", class_coloured_split(30, seed=0), class_coloured_split(6, seed=1))
    grey = torch.full((32, 32), 200 * 257)
    colour = torch.stack([torch.full((32, 32), value * 257) for value in (10, 128, 255)])
    write_png16(data / "train" / "cat" / "grey16.png", grey)
    write_png16(data / "train" / "dog" / "rgb16.png", colour)
    result = _invoke("train", _config(tmp_path), "--data", data, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert "2 16-bit images scaled to 8 bits" in json.loads(_run(tmp_path / "runs").manifest.read_text())["data"]
    from xaiquest.data import load_dataset

    images = load_dataset(data, tmp_path / "cache").train.images
    assert (images == 200).all(dim=(1, 2, 3)).any()
    assert (images == torch.tensor([10, 128, 255], dtype=torch.uint8)[:, None, None]).all(dim=(1, 2, 3)).any()


# --- the run's data from another folder (12.4) -------------------------------------------------------------


def test_the_dashboard_finds_data_given_as_a_relative_path_from_another_folder(tmp_path, monkeypatch):
    from xaiquest.dashboard.session import open_run

    data = write_image_folder(tmp_path / "project" / "data", class_coloured_split(30, seed=0),
                              class_coloured_split(6, seed=1))
    monkeypatch.chdir(tmp_path / "project")
    result = _invoke("train", _config(tmp_path), "--data", "data", "--runs-dir", "runs")
    assert result.exit_code == 0, result.output
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run = open_run(tmp_path / "project" / "runs" / "tiny")
    assert len(run.data.test) == 60
    manifest = json.loads(RunLayout(run.root).manifest.read_text())
    assert manifest["data_path"] == str(data.resolve()) and len(manifest["data_fingerprint"]) == 16
