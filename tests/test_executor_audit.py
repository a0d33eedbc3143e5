"""The smoke audit on every executor backend gives the inline run's numbers, and a worker killed
mid-unit costs nothing but a rerun (marker ``audit``: whole runs, minutes on 2 cores)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from xaiquest.cli import app
from xaiquest.layout import RunLayout
from xaiquest.store import is_held

pytestmark = pytest.mark.audit

TIMING = r"time|seconds|_s$"
"""Columns that hold wall times: the one thing allowed to differ between two runs."""
NOT_COMPARED = {"setup.csv", "stage_timings.csv", "findings.csv"}
"""Tables made of timings, or of sentences that quote them."""


def _config(tmp_path: Path, **sections: str) -> str:
    # one thread per unit everywhere: a convolution's float sums depend on the thread count, not on the process
    lines = {"name": "tiny", "profile": "smoke", "threads": "1", "models": "[fastnet, resnet_small]",
             "data": f"{{val_size: 20, train_subset: null, test_subset: null, cache_dir: {tmp_path / 'cache'}}}",
             "train": "{epochs: 2, batch_size: 32, lr: 0.2, tensorboard: false}", **sections}
    file = tmp_path / "tiny.yaml"
    file.write_text("".join(f"{key}: {value}\n" for key, value in lines.items()))
    return str(file)


def _run(tmp_path: Path, data: Path, *options: str, **sections: str) -> Path:
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", _config(tmp_path, **sections), "--data", str(data), "--runs-dir", str(runs), *options])
    assert result.exit_code == 0, result.output
    return runs / "tiny"


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory: pytest.TempPathFactory, tiny_cifar: Path) -> Path:
    return _run(tmp_path_factory.mktemp("inline"), tiny_cifar)


def assert_same_results(run: Path, reference: Path) -> None:
    """Every run table and every model's test logits equal the reference's exactly, wall times aside."""
    tables = sorted(path.name for path in RunLayout(reference).tables.csv("x").parent.glob("*.csv"))
    assert len(tables) > 20
    for name in tables:
        if name in NOT_COMPARED:
            continue
        expected, actual = (pd.read_csv(root / "tables" / name) for root in (reference, run))
        expected, actual = (frame.drop(columns=frame.filter(regex=TIMING).columns) for frame in (expected, actual))
        pd.testing.assert_frame_equal(actual, expected, check_exact=True, obj=name)
    for model in ("fastnet__baseline__s0", "resnet_small__baseline__s0"):
        logits = [torch.load(RunLayout(root).model(model).eval.logits)["test"] for root in (reference, run)]
        assert torch.equal(*logits)
    assert not list(run.rglob(".*.tmp"))


@pytest.mark.parametrize("options", [("--executor", "local", "--workers", "2"), ("--executor", "ray", "--workers", "2")],
                         ids=["local", "ray"])
def test_an_executor_gives_the_inline_run_s_tables(tmp_path, tiny_cifar, inline_run, options):
    if options[1] == "ray":
        pytest.importorskip("ray")
    assert_same_results(_run(tmp_path, tiny_cifar, *options), inline_run)


def test_submitit_s_local_executor_gives_the_inline_run_s_tables(tmp_path, tiny_cifar, inline_run):
    pytest.importorskip("submitit")
    run = _run(tmp_path, tiny_cifar, "--executor", "submitit", "--workers", "2", executor="{slurm: {local: true}}")
    assert_same_results(run, inline_run)
    assert list(RunLayout(run).jobs.glob("*_submitted.pkl"))  # the units went through Submitit's jobs


def test_a_worker_killed_mid_unit_leaves_nothing_half_written_and_a_rerun_finishes_the_run(tmp_path, tiny_cifar, inline_run):
    config = _config(tmp_path)
    runs = tmp_path / "runs"
    command = [sys.executable, "-c", "from xaiquest.cli import app; app()", "run", config, "--data", str(tiny_cifar), "--runs-dir", str(runs),
               "--executor", "local", "--workers", "2", "--retries", "0"]
    claim = RunLayout(runs / "tiny").claim("train/fastnet__baseline__s0")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        os.kill(_claimant(claim, deadline=time.monotonic() + 120), signal.SIGKILL)  # while it trains
        output, _ = run.communicate(timeout=600)
    assert run.returncode == 2, output
    assert "failed" in output and "rerun the same command" in output
    layout = RunLayout(runs / "tiny")
    assert layout.failure("train/fastnet__baseline__s0").exists() and layout.failure("evaluate/fastnet__baseline__s0").exists()
    assert not layout.model("fastnet__baseline__s0").weights.exists()
    assert "robustness" not in json.loads(layout.manifest.read_text())["units"]  # it needs the failed unit's evaluation
    rerun = CliRunner().invoke(app, ["run", config, "--data", str(tiny_cifar), "--runs-dir", str(runs), "--executor", "local",
                                     "--workers", "2"])
    assert rerun.exit_code == 0, rerun.output
    assert not list(layout.failures.rglob("*.txt"))
    assert_same_results(runs / "tiny", inline_run)


def _claimant(claim: Path, deadline: float) -> int:
    """The pid of the worker holding ``claim`` now (the file keeps its last holder's pid after release)."""
    while time.monotonic() < deadline:
        if claim.exists() and " pid " in (text := claim.read_text()) and is_held(claim):
            return int(text.split(" pid ")[1].split()[0])
        time.sleep(0.05)
    raise AssertionError(f"no worker claimed {claim}")
