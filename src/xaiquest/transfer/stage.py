"""Stage: every model that trained from weights (``init`` or ``pretrained``) against those weights, per depth.

The source is rebuilt exactly as training started from it (same seed, same file), so a linear probe's
backbone compares as identical and a fine-tune shows which depths training moved. Reads the trained
weights only; the accuracy, calibration and robustness of the same runs come from their own stages and
are joined by the report.
"""

from __future__ import annotations

import pandas as pd
import torch

from xaiquest.config import ExperimentConfig, TransferConfig
from xaiquest.console import console
from xaiquest.data import Split, stratified_indices
from xaiquest.inference import seed_everything
from xaiquest.layout import TRANSFER_TABLES, ModelFiles, unit_name
from xaiquest.models import named_depths
from xaiquest.runs import AuditData, RunKey, build_run_model, load_trained, started_from_weights, train_fingerprint
from xaiquest.store import RunStore, atomic_write_text, fingerprint
from xaiquest.transfer.compare import depth_comparison
from xaiquest.units import Finished, UnitSpec, gather_tables, per_model_units, run_per_model


def transfer_stage(config: ExperimentConfig, store: RunStore, data: AuditData, device: torch.device) -> None:
    keys = started_from_weights(config)
    if not config.transfer.enabled or not keys:
        reason = "disabled in the config" if keys else "no model starts from weights (init: or pretrained:)"
        console.print(f"transfer: {reason}, skipping")
        return
    images = _test_images(data.test, config.transfer).images.to(device)

    def compare_one(key: RunKey, files: ModelFiles) -> Finished:
        table = _compare_with_source(store, key, data, device, images, config.transfer)
        atomic_write_text(files.transfer.depths, table.to_csv(index=False))
        moved = table.loc[table["cka"].idxmin()]
        return Finished([files.transfer.depths], {"min_cka": float(moved["cka"])},
                        f"CKA to its starting weights lowest at {moved['depth']} ({moved['cka']:.3f})")

    run_per_model("transfer", keys, store, lambda key: transfer_fingerprint(config, data, key, store), compare_one)
    tables = gather_tables(store, keys, lambda files, name: files.transfer.table(name), TRANSFER_TABLES)
    layout = store.layout.tables
    for name, table in tables.items():
        atomic_write_text(layout.markdown_of(layout.csv(name)), table.to_markdown(index=False, floatfmt=".4f") + "\n")


def stage_units(config: ExperimentConfig) -> list[UnitSpec]:
    if not config.transfer.enabled:
        return []
    return per_model_units("transfer", started_from_weights(config), lambda key: [unit_name("train", key.id)])


def transfer_fingerprint(config: ExperimentConfig, data: AuditData, key: RunKey, store: RunStore) -> str:
    """The trained weights' hash (the starting file is in the train fingerprint) and the stage's settings."""
    weights = store.artifact_hash(unit_name("train", key.id), store.layout.model(key.id).weights)
    return fingerprint("transfer", train_fingerprint(config, data, key), weights, config.transfer.model_dump())


def _test_images(test: Split, cfg: TransferConfig) -> Split:
    """The stratified test subset both models see (all of test when it is smaller)."""
    if cfg.test_images >= len(test):
        return test
    return test.subset(stratified_indices(test.labels, cfg.test_images, cfg.seed)[1])


def _compare_with_source(store: RunStore, key: RunKey, data: AuditData, device: torch.device, images: torch.Tensor,
                         cfg: TransferConfig) -> pd.DataFrame:
    """The per-depth table of one run; the source is built under the run's seed, as the train stage built it
    (so layers the file does not cover start from the same random values)."""
    trained = load_trained(store, key, data, device)
    seed_everything(key.seed)
    source = build_run_model(key.spec, data, start=True).to(device).eval()
    table = depth_comparison(trained, source, images, list(named_depths(trained)), cfg.topk_frac)
    table.insert(0, "seed", key.seed)
    table.insert(0, "variant", key.variant)
    table.insert(0, "model", key.spec.name)
    return table
