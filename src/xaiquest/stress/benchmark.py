"""Controls for the planted-patch explainer ranking: trivial baseline maps, model contrast, significance.

A map can light up the planted patch because the model uses it *or* because the patch is
visually salient (Adebayo et al. 2022); ranking explainers by raw localisation cannot tell the
two apart. Model contrast (BAM, Yang & Kim 2019) can: the same metric on the same images for the
patch-reliant model minus for a control model trained with the patch on every class. And a
method only earns its rank if it beats maps that know nothing about the model (XAI-TRIS): a
random map, a centre Gaussian, the image's edges and its colour saliency.

Scores are per-image localisation values from ``xaiquest.explainers.quality.localisation``
(Top-K overlap, pointing game, mass inside), ``[N]`` for one seed or ``[S,N]`` for S seeds on
the same N images. Protocol and what is wired: ``docs/xai-benchmark.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from xaiquest.errors import ConfigError
from xaiquest.registry import Registry

BaselineFn = Callable[[torch.Tensor, int], torch.Tensor]
"""``(uint8 images [N,3,H,W], seed) -> maps [N,H,W]`` float32: a map that ignores the model."""

BASELINES: Registry[BaselineFn] = Registry("baseline map")

CENTRE_SIGMA = 0.25
"""Std of the centre Gaussian as a share of the shorter image side: a quarter keeps most mass in the middle half."""

CONTRAST_THRESHOLD = 0.1
"""Model contrast below this (a tenth of the [0, 1] range of Top-K overlap, mass inside and the
pointing game's hit rate) counts as no evidence of reliance, even when the interval excludes 0:
the reliant model's map puts at most one patch pixel in ten more into its top pixels than the control's."""


def register_baseline(name: str) -> Callable[[BaselineFn], BaselineFn]:
    """Register a baseline map under ``name`` (prefixed ``baseline_`` so it sorts apart from explainers)."""
    return BASELINES.register(name)


@register_baseline("baseline_random")
def random_map(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Uniform noise, a fresh map per image, reproducible from ``seed``: the chance level of every metric."""
    n, _, height, width = images.shape
    return torch.rand(n, height, width, generator=torch.Generator().manual_seed(seed))


@register_baseline("baseline_centre")
def centre_map(images: torch.Tensor, seed: int) -> torch.Tensor:
    """An isotropic Gaussian on the image centre (std ``CENTRE_SIGMA`` x the shorter side): the photographer's bias."""
    n, _, height, width = images.shape
    sigma = CENTRE_SIGMA * min(height, width)
    rows = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    squared = rows[:, None] ** 2 + cols[None, :] ** 2
    return torch.exp(-squared / (2 * sigma**2)).expand(n, height, width).clone()


@register_baseline("baseline_edges")
def edge_map(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Sobel gradient magnitude over the three colour channels: where the image has an edge of any colour.

    Per channel, not on the luma alone: a magenta patch on a grey background has nearly the
    background's luma, and a baseline blind to chromatic edges would flatter every method.
    """
    from xaiquest.stress.layerwise import edge_magnitude  # its module loads matplotlib: only when a map is made

    per_channel = [edge_magnitude(images[:, [c, c, c]]) for c in range(3)]  # luma of a grey image = that channel
    return torch.stack(per_channel).norm(dim=0).cpu()


@register_baseline("baseline_colour")
def colour_saliency_map(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Euclidean RGB distance of each pixel from the image's own mean colour: an off-palette patch stands out.

    Plain RGB (Achanta et al. 2009 use Lab after a blur): the patch colours we plant differ from
    natural images in RGB already, and RGB needs no colour-space conversion library.
    """
    pixels = images.float()
    return (pixels - pixels.mean((2, 3), keepdim=True)).norm(dim=1).cpu()


def baseline_map(name: str, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Maps ``[N,H,W]`` of the registered baseline ``name`` for uint8 ``images`` ``[N,3,H,W]``."""
    fn = BASELINES.get(name)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"baseline maps take uint8 images [N,3,H,W], got {images.dtype} {tuple(images.shape)}")
    return fn(images, seed)


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap confidence interval, and how many images and seeds it rests on."""

    mean: float
    low: float
    high: float
    images: int
    seeds: int

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Contrast:
    """Model contrast of one method and metric: reliant minus control, with its interval and verdict."""

    interval: Interval
    threshold: float
    salience_driven: bool


def as_seed_matrix(scores: object) -> np.ndarray:
    """Scores as float ``[S,N]`` (one row per seed); ``[N]`` is one seed."""
    values = np.asarray(scores.numpy() if isinstance(scores, torch.Tensor) else scores, dtype=float)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or values.size == 0:
        raise ConfigError(f"scores must be [N] or [seeds, N] and non-empty, got shape {values.shape}")
    return values


def finite_images(values: np.ndarray) -> np.ndarray:
    """The columns (images) finite in every seed: an image without an answer (empty mask) cannot enter."""
    kept = values[:, np.isfinite(values).all(0)]
    if kept.shape[1] == 0:
        raise ConfigError("no image has a finite score in every seed; check the masks (an empty mask scores NaN)")
    return kept


def mean_ci(scores: object, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval:
    """Mean of ``[N]`` or ``[S,N]`` scores with a percentile bootstrap interval over images *and* seeds.

    Each resample draws S seeds and N images with replacement and averages the crossed cells, so
    the interval holds both the image-to-image and the seed-to-seed variation (images are the same
    in every seed). With one seed it is the ordinary bootstrap over images. Images with a NaN in
    any seed are left out (``images`` says how many remain).
    """
    if not 0 < confidence < 1 or resamples < 1:
        raise ConfigError(f"confidence must be in (0, 1) and resamples >= 1, got {confidence}, {resamples}")
    values = finite_images(as_seed_matrix(scores))
    n_seeds, n_images = values.shape
    rng = np.random.default_rng(seed)
    seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=resamples)
    image_counts = rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=resamples)
    means = np.einsum("bs,sn,bn->b", seed_counts, values, image_counts) / (n_seeds * n_images)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(values.mean()), float(low), float(high), n_images, n_seeds)


def model_contrast(
    reliant_scores: object, control_scores: object, threshold: float = CONTRAST_THRESHOLD,
    confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
) -> Contrast:
    """Reliant-model minus control-model scores on the same images (and seed k against seed k).

    ``salience_driven`` when the interval reaches 0 or the mean contrast is below ``threshold``:
    the method lights the patch about as much on a model that cannot use it.
    """
    reliant, control = as_seed_matrix(reliant_scores), as_seed_matrix(control_scores)
    if reliant.shape != control.shape:
        raise ConfigError(
            f"reliant and control scores must cover the same seeds and images, got {reliant.shape} and {control.shape}"
        )
    interval = mean_ci(reliant - control, confidence, resamples, seed)
    return Contrast(interval, threshold, interval.low <= 0 or interval.mean < threshold)


def beats_baselines(
    method_scores: object, baseline_scores: Mapping[str, object], alpha: float = 0.05, correction: str = "holm",
) -> pd.DataFrame:
    """Does the method score higher than each baseline map on the same images? One row per baseline.

    Paired one-sided Wilcoxon signed-rank tests over images (scores of several seeds are averaged
    per image first: images are the paired units), zero differences split between the signs
    (many ties: Top-K overlap takes few values), p-values corrected over the baselines (Holm by
    default). Columns: baseline, mean_difference, p_value, p_corrected, beats
    (``p_corrected < alpha`` and a positive mean difference).
    """
    from scipy.stats import wilcoxon  # scipy.stats and the metrics package (torchmetrics) are slow to import

    from xaiquest.metrics.significance import correct_p_values

    if correction not in ("holm", "bonferroni"):
        raise ConfigError(f"correction must be 'holm' or 'bonferroni', got {correction!r}")
    method = as_seed_matrix(method_scores).mean(0)
    rows = []
    for name, scores in baseline_scores.items():
        baseline = as_seed_matrix(scores).mean(0)
        if baseline.shape != method.shape:
            raise ConfigError(f"baseline {name!r} has {baseline.shape[0]} images, the method {method.shape[0]}")
        differences = finite_images((method - baseline)[None])[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on ties and zeros, which zsplit handles
            p_value = wilcoxon(differences, alternative="greater", zero_method="zsplit").pvalue
        rows.append({"baseline": name, "mean_difference": float(differences.mean()),
                     "p_value": 1.0 if math.isnan(p_value) else float(p_value)})
    table = pd.DataFrame(rows, columns=["baseline", "mean_difference", "p_value"])
    table["p_corrected"] = correct_p_values(table["p_value"].to_numpy(), correction)
    table["beats"] = (table["p_corrected"] < alpha) & (table["mean_difference"] > 0)
    return table


LOCALISATION_METRICS = ("tko", "pointing", "mass_inside")
"""Per-image localisation scores of a map on the patch mask: Top-K overlap, pointing-game hit, absolute mass inside."""


def localisation_scores(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, np.ndarray]:
    """Each of :data:`LOCALISATION_METRICS` per image (``[N]``) of ``maps`` ``[N,H,W]`` against bool ``masks``.

    Mass inside counts absolute attribution: a method that marks the patch as evidence *against*
    the class still found it.
    """
    from xaiquest.explainers.quality import mass_inside, pointing_game, top_k_overlap

    maps, masks = maps.detach().float().cpu(), masks.cpu()
    return {"tko": top_k_overlap(maps, masks).numpy(), "pointing": pointing_game(maps, masks).float().numpy(),
            "mass_inside": mass_inside(maps, masks, mode="absolute").numpy()}


Scores = Mapping[str, Mapping[str, object]]
"""map name -> metric -> per-image scores (``[N]``, or ``[S,N]`` for S seeds)."""

BENCHMARK_COLUMNS = ("method", "kind", "metric", "reliant", "control", "contrast", "contrast_low", "contrast_high",
                     "threshold", "salience_driven", "beats_baselines", "baselines_not_beaten", "images", "seeds", "rank")
"""The columns of :func:`benchmark_table`, in order."""


def benchmark_table(reliant: Scores, control: Scores, baselines: Scores, confidence: float = 0.95,
                    resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The planted-patch benchmark of one reliant model: one row per map (explainers, then baselines) and metric.

    ``reliant[method][metric]`` and ``control[method][metric]`` are the scores of the same method on
    the same stamped images for the reliant model and its control twin; ``baselines`` are the
    model-free maps' scores on those images (the same for both models, so their contrast is 0).
    ``reliant`` / ``control``: mean scores; ``contrast`` with its bootstrap interval, the
    ``threshold`` and ``salience_driven`` from :func:`model_contrast`; ``beats_baselines``: the method's reliant
    scores beat every baseline (:func:`beats_baselines`, empty for a baseline row), the others
    listed in ``baselines_not_beaten``; ``rank`` 1 = highest mean contrast among the metric's rows.
    """
    if set(reliant) != set(control):
        raise ConfigError(f"reliant and control scores must cover the same methods, got {sorted(reliant)} and {sorted(control)}")
    if not baselines:
        raise ConfigError(f"the benchmark needs the trivial baseline maps ({', '.join(BASELINES.names())})")
    rows = []
    for metric in LOCALISATION_METRICS:
        reference = {name: scores[metric] for name, scores in baselines.items()}
        for name, (on_reliant, on_control) in {**{m: (reliant[m][metric], control[m][metric]) for m in reliant},
                                               **{b: (s, s) for b, s in reference.items()}}.items():
            contrast = model_contrast(on_reliant, on_control, confidence=confidence, resamples=resamples, seed=seed)
            interval = contrast.interval
            row = {"method": name, "kind": "baseline" if name in baselines else "method", "metric": metric,
                   "reliant": float(np.nanmean(as_seed_matrix(on_reliant))),
                   "control": float(np.nanmean(as_seed_matrix(on_control))),
                   "contrast": interval.mean, "contrast_low": interval.low, "contrast_high": interval.high,
                   "threshold": contrast.threshold, "salience_driven": contrast.salience_driven, "beats_baselines": pd.NA, "baselines_not_beaten": "",
                   "images": interval.images, "seeds": interval.seeds}
            if name not in baselines:
                tests = beats_baselines(on_reliant, reference)
                row["beats_baselines"] = bool(tests["beats"].all())
                row["baselines_not_beaten"] = ";".join(tests.loc[~tests["beats"], "baseline"])
            rows.append(row)
    table = pd.DataFrame(rows)
    table["rank"] = table.groupby("metric")["contrast"].rank(ascending=False, method="min").astype(int)
    return table[list(BENCHMARK_COLUMNS)]


PAIR_COLUMNS = ("metric", "method", "other", "mean_difference", "p_value", "p_corrected", "significant")
"""The columns of :func:`pairwise_contrasts`, in order."""


def pairwise_contrasts(contrasts: Mapping[str, object], alpha: float = 0.05, correction: str = "holm") -> pd.DataFrame:
    """Which methods' model contrasts differ: every pair, a two-sided paired Wilcoxon signed-rank test
    over images (each image's contrast averaged over seeds first: images are the paired units, as in
    :func:`beats_baselines`), p-values corrected over all pairs of the metric. One row per pair, with
    ``mean_difference`` = method minus other and ``significant`` = ``p_corrected < alpha``."""
    from scipy.stats import wilcoxon

    from xaiquest.metrics.significance import correct_p_values

    means = {name: as_seed_matrix(values).mean(0) for name, values in contrasts.items()}
    names = list(means)
    rows = []
    for index, name in enumerate(names):
        for other in names[index + 1 :]:
            differences = finite_images((means[name] - means[other])[None])[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ties and zeros: zsplit handles them
                p_value = wilcoxon(differences, zero_method="zsplit").pvalue if differences.any() else 1.0
            rows.append({"method": name, "other": other, "mean_difference": float(differences.mean()),
                         "p_value": 1.0 if math.isnan(p_value) else float(p_value)})
    table = pd.DataFrame(rows, columns=["method", "other", "mean_difference", "p_value"])
    table["p_corrected"] = correct_p_values(table["p_value"].to_numpy(), correction) if len(table) else []
    table["significant"] = table["p_corrected"] < alpha
    return table


def significantly_above(pairs: pd.DataFrame) -> dict[str, list[str]]:
    """Method -> the methods whose contrast it significantly exceeds (from :func:`pairwise_contrasts` rows)."""
    above: dict[str, list[str]] = {}
    for row in pairs[pairs["significant"]].itertuples():
        winner, loser = (row.method, row.other) if row.mean_difference > 0 else (row.other, row.method)
        above.setdefault(str(winner), []).append(str(loser))
    return above


def pooled_benchmark(scores: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The benchmark of one architecture and variant pooled over its seeds, from the per-image scores of
    each seed's reliant model and control twin (columns seed, image, method, kind, metric, reliant,
    control: :func:`score_rows`). The images are the same in every seed (the stress stage's seeded
    subset), so the scores form ``[S,N]`` matrices and every interval covers images and seeds.

    Returns the :func:`benchmark_table` with two more columns, ``win_rate`` (share of (seed, image)
    contests where the map's contrast is the highest of the methods', source document 002) and
    ``significantly_above`` (the methods of the same metric whose contrast it significantly
    exceeds), and the pairwise tests themselves (:func:`pairwise_contrasts`, methods only)."""
    from xaiquest.explainers.quality import win_rates

    def matrices(kind: str, column: str) -> dict[str, dict[str, np.ndarray]]:
        rows = scores[scores["kind"] == kind]
        return {method: {metric: group.pivot(index="seed", columns="image", values=column).to_numpy()
                         for metric, group in by_method.groupby("metric")}
                for method, by_method in rows.groupby("method", sort=False)}

    reliant, control, baselines = matrices("method", "reliant"), matrices("method", "control"), matrices("baseline", "reliant")
    table = benchmark_table(reliant, control, baselines, seed=seed)
    methods = scores[scores["kind"] == "method"].assign(score=lambda frame: frame["reliant"] - frame["control"])
    pairs, wins, above = [], [], {}
    for metric, rows in methods.groupby("metric"):
        wins.append(win_rates(rows[["seed", "image", "method", "score"]]).assign(metric=metric))
        contrasts = {method: group.pivot(index="seed", columns="image", values="score").to_numpy()
                     for method, group in rows.groupby("method", sort=False)}
        tested = pairwise_contrasts(contrasts).assign(metric=metric)
        pairs.append(tested)
        above |= {(metric, method): losers for method, losers in significantly_above(tested).items()}
    win_table = pd.concat(wins).set_index(["metric", "method"])["win_rate"]
    keys = list(zip(table["metric"], table["method"]))
    table["win_rate"] = [win_table.get(key, np.nan) for key in keys]
    table["significantly_above"] = [";".join(above.get(key, [])) for key in keys]
    return table, pd.concat(pairs, ignore_index=True)[list(PAIR_COLUMNS)]


def score_rows(reliant: Scores, control: Scores, baselines: Scores) -> pd.DataFrame:
    """The per-image scores behind one :func:`benchmark_table`, long (method, kind, metric, image,
    reliant, control; a baseline's map is the same for both models): what pooling over seeds reads."""
    frames = []
    for kind, maps, twins in (("method", reliant, control), ("baseline", baselines, baselines)):
        for method, metrics in maps.items():
            for metric, values in metrics.items():
                on_reliant, on_control = as_seed_matrix(values)[0], as_seed_matrix(twins[method][metric])[0]
                frames.append(pd.DataFrame({"method": method, "kind": kind, "metric": metric, "image": range(len(on_reliant)),
                                            "reliant": on_reliant, "control": on_control}))
    return pd.concat(frames, ignore_index=True)
