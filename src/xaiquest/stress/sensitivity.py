"""How much the planted-patch ranking depends on choices made before any metric (BackX): which output
is explained (the predicted class or the patch's target class) and how the map is post-processed
(as it is, absolute values, positive part only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from xaiquest.stress.benchmark import LOCALISATION_METRICS, localisation_scores

POST_PROCESSING: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "raw": lambda maps: maps,
    "abs": torch.abs,
    "relu": lambda maps: maps.clamp_min(0),
}
"""Map post-processing: signed maps rank strong negative evidence last, ``abs`` ranks it with the
positive, ``relu`` drops it (what CAM methods do by construction)."""
DEFAULT_SETTING = ("predicted", "raw")
"""The setting the benchmark itself uses: each model explains its own predicted class, maps as they are."""
SENSITIVITY_COLUMNS = ("explained", "post", "method", *LOCALISATION_METRICS, "rank_tko", "kendall_tau_vs_default")


def sensitivity_table(maps: Mapping[str, Mapping[str, torch.Tensor]], masks: torch.Tensor) -> pd.DataFrame:
    """Localisation of every method under every (explained output, post-processing) setting.

    ``maps[explained][method]`` are ``[N,H,W]`` maps of the same images for ``explained`` in
    {``predicted``, ``target``}; ``masks`` the patch masks. One row per setting and method: the mean
    Top-K overlap, pointing-game hit rate and mass inside, the method's rank by Top-K overlap within
    the setting, and Kendall's tau between that setting's ranking and the default's
    (:data:`DEFAULT_SETTING`): 1 = the same order, lower = the choice reorders the methods."""
    from scipy.stats import kendalltau

    rows = []
    for explained, by_method in maps.items():
        for post, process in POST_PROCESSING.items():
            for method, values in by_method.items():
                scores = localisation_scores(process(values), masks)
                rows.append({"explained": explained, "post": post, "method": method,
                             **{metric: float(np.nanmean(score)) for metric, score in scores.items()}})
    table = pd.DataFrame(rows)
    table["rank_tko"] = table.groupby(["explained", "post"])["tko"].rank(ascending=False, method="min").astype(int)
    default = table[(table["explained"] == DEFAULT_SETTING[0]) & (table["post"] == DEFAULT_SETTING[1])].set_index("method")["tko"]
    taus = {}
    for setting, group in table.groupby(["explained", "post"], sort=False):
        tau = kendalltau(group.set_index("method")["tko"].reindex(default.index), default).statistic
        taus[setting] = float(tau) if np.isfinite(tau) else float("nan")
    table["kendall_tau_vs_default"] = [taus[(e, p)] for e, p in zip(table["explained"], table["post"])]
    return table[list(SENSITIVITY_COLUMNS)]


def target_class_maps(predicted: Mapping[str, torch.Tensor], targets: torch.Tensor, target_class: int,
                      explain_images: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each method's maps for the patch's target class: the predicted-class maps where the model already
    predicts it (most stamped images of a reliant model), fresh maps only for the other images.
    ``explain_images(method, indices, classes)`` explains the chosen images for the given classes."""
    redo = (targets != target_class).nonzero().squeeze(1)
    maps = {}
    for method, values in predicted.items():
        maps[method] = values.clone()
        if len(redo):
            maps[method][redo] = explain_images(method, redo, torch.full_like(redo, target_class)).to(values)
    return maps


SWEEP_COLUMNS = ("run", "patch", "attack_success", "method", "tko", "contrast", "salience_driven")


def salience_sweep(settings: pd.DataFrame, reliance: pd.DataFrame, localisation: pd.DataFrame,
                   benchmark: pd.DataFrame | None) -> pd.DataFrame:
    """One row per patch setting and method: the reliant model's patch (``xaiquest.patch.describe``: colour,
    size at 32 px, position), its reliance (attack success) and the method's Top-K overlap on it, with the
    model contrast against the setting's control twin where the run has one (NaN otherwise). ``settings``:
    run and patch of every reliant patch model; ``reliance``: the run's patch reliance table; ``localisation``:
    the gathered patch localisation (run, method, tko); ``benchmark``: the gathered benchmark or None."""
    rows = settings.merge(reliance[["run", "attack_success"]], on="run").merge(localisation[["run", "method", "tko"]], on="run")
    if benchmark is not None:
        contrasts = benchmark[(benchmark["metric"] == "tko") & (benchmark["kind"] == "method")]
        rows = rows.merge(contrasts[["run", "method", "contrast", "salience_driven"]], on=["run", "method"], how="left")
    else:
        rows = rows.assign(contrast=np.nan, salience_driven=pd.NA)
    return rows[list(SWEEP_COLUMNS)]
