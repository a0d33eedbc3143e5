"""Seconds the concepts stage spends per model and part (bias battery, TCAV, dissection, untrained TCAV) on a trained run.

    python benchmarks/concepts_cost.py runs/quick                 # every model of the run, quick-profile sizes
    python benchmarks/concepts_cost.py runs/quick --threads 2     # as on the 2-core development machine

It rebuilds the probe sets (timed: GrabCut dominates) from the run's recorded config and data,
then times each part of :func:`xaiquest.concepts.stage.audit_model` for each model, and the TCAV of an
untrained copy for the first model of each architecture (``concepts.untrained_control``), writing
into a temporary folder, never into the run. Compare the total with the ``concepts`` entry of
``timings_s`` in the run's ``manifest.json`` and with the whole audit's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from xaiquest.concepts.stage import audit_model, build_probes, significant_tcav, untrained_controls, untrained_copy
from xaiquest.layout import ConceptFiles
from xaiquest.dashboard.session import open_run
from xaiquest.runs import load_trained, run_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = open_run(args.run)  # the config and the data folder the run recorded
    store, config, data = run.store, run.config, run.data
    started = time.perf_counter()
    probes = build_probes(config, data)
    print(f"probe sets: {time.perf_counter() - started:.1f} s")
    cfg, device, total = config.concepts, torch.device("cpu"), 0.0
    parts = {part: config.model_copy(update={"concepts": cfg.model_copy(update=update)}) for part, update in
             (("bias", {"tcav": False, "dissection": False}), ("tcav", {"dissection": False}), ("dissection", {"tcav": False}))}
    keys = run_keys(config, cfg.variants)
    controls = untrained_controls(keys) if cfg.tcav and cfg.untrained_control else set()
    with tempfile.TemporaryDirectory() as out:
        for key in keys:
            model = load_trained(store, key, data, device)
            seconds = {}
            for part, part_config in parts.items():
                started = time.perf_counter()
                audit_model(model, ConceptFiles(Path(out)), probes, part_config, data.classes, device)
                seconds[part] = time.perf_counter() - started
            bias = seconds["bias"]
            row = {"bias": bias, "tcav": seconds["tcav"] - bias, "dissection": seconds["dissection"] - bias}
            if key.id in controls:
                started = time.perf_counter()
                significant_tcav(untrained_copy(key, data, cfg.seed), probes, cfg, data.classes)
                row["untrained tcav"] = time.perf_counter() - started
            total += sum(row.values())
            print(f"{key.id}: " + ", ".join(f"{k} {v:.1f} s" for k, v in row.items()))
    print(f"models total: {total:.1f} s")


if __name__ == "__main__":
    main()
