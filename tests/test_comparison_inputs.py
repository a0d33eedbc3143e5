"""The comparison table quotes later stages' numbers only while they are current (issue 13, item 1).

``xaiquest evaluate`` reruns the comparison without calibrate or robustness: an ECE or mCE measured
under an older config (or on an older model) must not appear beside fresh accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from xaiquest.config import ExperimentConfig
from xaiquest.pipeline import run_pipeline
from xaiquest.runs import prepare_data, robustness_fingerprint
from xaiquest.store import RunStore, atomic_write_text

CALIBRATION_COLUMNS = ("ece_mean", "ece_after_ts_mean", "nll_mean", "temperature_mean")
ROBUSTNESS_COLUMNS = ("mce_mean", "relative_mce_mean", "mean_corruption_accuracy_mean")


@pytest.fixture
def run(smoke_run: Path, tmp_path: Path) -> tuple[ExperimentConfig, RunStore]:
    """A private copy of the shared trained and evaluated run, with the config it was made under."""
    root = tmp_path / "runs" / smoke_run.name
    shutil.copytree(smoke_run, root)
    store = RunStore(root)
    return ExperimentConfig(**store.read_manifest()["config"]), store


def _comparison(store: RunStore) -> pd.DataFrame:
    return pd.read_csv(store.layout.tables.comparison)


def test_a_calibration_of_an_older_config_is_left_out_of_the_comparison(run, capsys):
    config, store = run
    runs_dir = store.root.parent
    run_pipeline(config, runs_dir, ["compare"])
    said = " ".join(capsys.readouterr().err.split())
    assert "calibration of fastnet__baseline__s0, resnet_small__baseline__s0 was not measured yet" in said
    run_pipeline(config, runs_dir, ["calibrate", "compare"])
    assert all(column in _comparison(store).columns for column in CALIBRATION_COLUMNS)

    rebinned = config.model_copy(update={"calibration": config.calibration.model_copy(update={"bins": 5})})
    capsys.readouterr()
    run_pipeline(rebinned, runs_dir, ["evaluate", "compare"])
    assert not any(column in _comparison(store).columns for column in CALIBRATION_COLUMNS)
    said = " ".join(capsys.readouterr().err.split())
    assert "compare: calibration of fastnet__baseline__s0, resnet_small__baseline__s0 is stale" in said
    assert "run `xaiquest calibrate`" in said

    run_pipeline(rebinned, runs_dir, ["calibrate", "compare"])  # recalibrated: quoted again, under 5 bins
    ece = _comparison(store).set_index("model")["ece_mean"]
    summary = json.loads(store.layout.model("fastnet__baseline__s0").calibration.summary.read_text())
    assert ece["fastnet"] == pytest.approx(summary["before"]["ece"])
    assert len(pd.read_csv(store.layout.model("fastnet__baseline__s0").calibration.bins)) <= 5


def test_robustness_of_an_older_config_is_left_out_of_the_comparison(run, capsys):
    """The robustness unit is recorded by hand (the stage itself is tested elsewhere): what matters here is
    that the comparison trusts the summary only under today's robustness fingerprint."""
    config, store = run
    data = prepare_data(config)
    summary = pd.DataFrame({"run": ["fastnet__baseline__s0", "resnet_small__baseline__s0"], "clean_accuracy": [0.9, 0.8],
                            "mean_corruption_accuracy": [0.5, 0.4], "mce": [1.0, 1.2], "relative_mce": [1.0, 1.1]})
    atomic_write_text(store.layout.tables.robustness_summary, summary.to_csv(index=False))
    store.mark_complete("robustness", robustness_fingerprint(config, data, store),
                        artifacts=[store.layout.tables.robustness_summary])
    run_pipeline(config, store.root.parent, ["compare"])
    assert _comparison(store).set_index("model")["mce_mean"].to_dict() == {"fastnet": 1.0, "resnet_small": 1.2}

    fewer = config.model_copy(update={"robustness": config.robustness.model_copy(update={"severities": [1]})})
    capsys.readouterr()
    run_pipeline(fewer, store.root.parent, ["evaluate", "compare"])
    assert not any(column in _comparison(store).columns for column in ROBUSTNESS_COLUMNS)
    said = " ".join(capsys.readouterr().err.split())
    assert "compare: robustness of the run is stale" in said and "run `xaiquest robustness`" in said
