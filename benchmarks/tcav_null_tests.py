"""How many TCAV tests come out significant on trained models and on untrained copies, under two tests.

    python benchmarks/tcav_null_tests.py runs/quick                          # the first model of each architecture
    python benchmarks/tcav_null_tests.py runs/quick --runs fastnet__patch__s0 --threads 2

The concepts stage tests a concept as Kim et al. (2018) do: its N TCAV scores (one CAV per random
counterpart) against the N scores of a reference random set, by a t-test that takes the N scores as
N independent draws. They are not independent: the N CAVs share the concept's images and point
nearly the same way, so the N scores repeat one measurement. The second test here respects that:
every one of the N + 1 random sets plays the concept in turn against the other N (each pair's CAV is
trained once; the reverse pair's is its negation), which gives N + 1 random "concept" mean scores
with the concept's dependence, and the concept's mean score is tested as one new observation
against them (prediction t-test, N degrees of freedom). Both tests are Holm-corrected over the
model's (depth, concept, class) tests. The untrained copy is the concepts stage's
(``untrained_copy``); the probe sets are the run's cached ones (``concepts/probes.pt``), rebuilt
when absent. Nothing is written into the run.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from xaiquest.concepts.stage import ConceptProbes, build_probes, chosen_layers, significant_tcav, untrained_copy, untrained_controls
from xaiquest.concepts.tcav import degenerate_null, layer_gradients, sign_counts, train_cav
from xaiquest.config import ConceptsConfig
from xaiquest.dashboard.session import open_run
from xaiquest.data import to_float
from xaiquest.inference import collect_activations, seed_everything
from xaiquest.metrics.significance import correct_p_values
from xaiquest.models.base import resolve_layer
from xaiquest.runs import load_trained, run_keys


def one_observation_p_values(model: nn.Module, probes: ConceptProbes, cfg: ConceptsConfig, num_classes: int) -> np.ndarray:
    """p-values of every (depth, concept, class), in :func:`significant_tcav`'s row order, of the concept's mean score
    tested as one observation against the random sets' mean scores as concepts."""
    names, randoms = list(probes.concepts), probes.random_sets
    sizes = [len(images) for images in (*probes.concepts.values(), *randoms)]
    layers = list(chosen_layers(model, cfg))
    activations = collect_activations(model, torch.cat([*probes.concepts.values(), *randoms]), layers)
    seed_everything(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    x, labels, count = to_float(probes.tcav_inputs), probes.tcav_labels, len(randoms)
    pairs = list(itertools.combinations(range(count), 2))
    p_values = []
    for layer in layers:
        groups = activations[layer].flatten(1).split(sizes)
        concepts, random_groups = groups[: len(names)], groups[len(names):]
        gradients = layer_gradients(model, resolve_layer(model, layer), x, labels)
        concept_dirs = torch.stack([train_cav(c, r, generator)[0] for c in concepts for r in random_groups[1:]])
        pair_dirs = torch.stack([train_cav(random_groups[i], random_groups[j], generator)[0] for i, j in pairs])
        scores = sign_counts(gradients, labels, num_classes, concept_dirs).reshape(num_classes, len(names), count - 1)
        forward, backward = sign_counts(gradients, labels, num_classes, pair_dirs), sign_counts(gradients, labels, num_classes, -pair_dirs)
        null = np.zeros((num_classes, count))
        for column, (i, j) in enumerate(pairs):
            null[:, i] += forward[:, column] / (count - 1)
            null[:, j] += backward[:, column] / (count - 1)
        reference = forward[:, [column for column, (i, _) in enumerate(pairs) if i == 0]]  # the stage's null
        untestable = degenerate_null(reference)
        spread = null.std(1, ddof=1) * np.sqrt(1 + 1 / count)
        for k in range(len(names)):
            with np.errstate(all="ignore"):
                t = (scores[:, k].mean(1) - null.mean(1)) / spread
            p = 2 * stats.t.sf(np.abs(t), df=count - 1)
            p_values.append(np.where(untestable | ~np.isfinite(p), 1.0, p)[torch.unique(labels).numpy()])
    return np.concatenate(p_values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--runs", nargs="*", help="run ids (default: the first model of each architecture)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = open_run(args.run)  # the config and the data folder the run recorded
    store, config, data = run.store, run.config, run.data
    cfg = config.concepts
    path = store.layout.concept_probes
    probes = ConceptProbes(**torch.load(path, weights_only=False)) if path.exists() else build_probes(config, data)
    keys = run_keys(config, cfg.variants)
    chosen = args.runs or sorted(untrained_controls(keys), key=[key.id for key in keys].index)
    rows = []
    for key in (key for key in keys if key.id in chosen):
        for state, model in (("trained", load_trained(store, key, data, torch.device("cpu")).float()),
                             ("untrained", untrained_copy(key, data, cfg.seed))):
            started = time.perf_counter()
            kim = significant_tcav(model, probes, cfg, data.classes)
            one = correct_p_values(one_observation_p_values(model, probes, cfg, len(data.classes)), cfg.correction) < cfg.alpha
            rows.append({"model": key.id, "weights": state, "tests": len(kim), "significant (Kim t-test)": int(kim["significant"].sum()),
                         "significant (one-observation test)": int(one.sum()), "seconds": round(time.perf_counter() - started, 1)})
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
