"""TCAV (Kim et al. 2018) with Captum's concept classifier, and the random-concept t-test.

A concept activation vector (CAV) is the normal of a linear classifier separating a concept's
activations from a random set's at one layer; Captum's ``captum.concept`` ``DefaultClassifier``
(an SGD linear model; we hold out a third of each set and score it ourselves, see
:func:`train_cav`) trains each one, with
Captum's sign convention (the CAV is the classifier's weight row of the concept). The TCAV score
of a concept for a class is the share of that class's images whose class logit increases along
the CAV: the sign of the layer gradient (Captum's ``LayerGradientXActivation`` without the
activation factor, as ``captum.concept.TCAV`` uses) projected on it.

We do not go through ``TCAV.compute_cavs``/``interpret``: they recompute and reload every concept's
activations from disk for each (concept, random) pair and each class, which made one small model
cost minutes. Here the activations of all concept and random images are computed once, in
batches, at every layer, and the scores of all pairs and classes come from one matrix product
per layer.

Significance as in Kim et al.: the scores of a concept against N random sets are compared with
the scores of a reference random set against the same N random sets by a two-sided t-test, and
the p-values of every (layer, concept, class) test of a model are corrected together (Holm or
Bonferroni). A (layer, class) whose random-vs-random scores are all 0 or 1 is not tested
(:func:`degenerate_null`): the sign count carries no information about any concept there.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from captum.attr import LayerGradientXActivation
from captum.concept._utils.classifier import DefaultClassifier
from scipy.stats import ttest_ind
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from xaiquest.data import to_float
from xaiquest.inference import collect_activations, seed_everything
from xaiquest.metrics.significance import correct_p_values
from xaiquest.models.base import resolve_layer


def layer_gradients(model: nn.Module, module: nn.Module, x: torch.Tensor, targets: torch.Tensor,
                    batch_size: int = 256) -> torch.Tensor:
    """Flattened gradient of each image's target logit w.r.t. the layer output, ``[N, D]``."""
    method = LayerGradientXActivation(model, module, multiply_by_inputs=False)
    parts = [method.attribute(x[s : s + batch_size], target=targets[s : s + batch_size]).detach().flatten(1)
             for s in range(0, len(x), batch_size)]
    return torch.cat(parts)


HELD_OUT = 1 / 3
"""Share of each set held out to measure a CAV's accuracy (Captum's default test split)."""


def train_cav(concept: torch.Tensor, random: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """The CAV of ``concept`` vs ``random`` activations ``[n, D]`` (Captum's classifier) and its held-out accuracy.

    Captum's ``DefaultClassifier`` trains the linear model and gives the CAV, but its ``train_and_eval``
    accuracy is wrong for two sets: sklearn keeps one coefficient row, Captum takes the argmax over
    that single column, so every held-out image is called the first class and the "accuracy" is the
    share of concept images in the split. We hold out a seeded third of each set and score it by the
    sign of the decision function, as sklearn does.
    """
    (concept_fit, concept_test), (random_fit, random_test) = _split(concept, generator), _split(random, generator)
    features = torch.cat([concept_fit, random_fit])
    labels = torch.cat([torch.zeros(len(concept_fit)), torch.ones(len(random_fit))]).long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DefaultClassifier warns on every construction that it keeps data in memory
        classifier = DefaultClassifier()
        classifier.lm.fit(DataLoader(TensorDataset(features, labels), batch_size=len(labels)))
    # sklearn sorts its classes, so they are [0 = concept, 1 = random]: a positive decision says "random",
    # and Captum's weight row 0 (the negated coefficients) points to the concept.
    with torch.no_grad():
        says_random = classifier.lm(torch.cat([concept_test, random_test]))[:, 0] > 0
    is_random = torch.cat([torch.zeros(len(concept_test)), torch.ones(len(random_test))]).bool()
    return classifier.weights()[0].float(), (says_random == is_random).float().mean().item()


def _split(features: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fit, held out)`` rows of one set: a seeded permutation, ``HELD_OUT`` of it (at least one row) held out."""
    order = torch.randperm(len(features), generator=generator)
    held = max(1, round(HELD_OUT * len(features)))
    return features[order[held:]], features[order[:held]]


def tcav_table(
    model: nn.Module,
    layers: Sequence[str],
    concepts: Mapping[str, torch.Tensor],
    random_sets: Sequence[torch.Tensor],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (layer, concept, class): mean/std TCAV score over random sets, the random-vs-random mean, p-value, CAV accuracy.

    ``layers`` are named depths or module paths of ``model``; ``concepts`` and ``random_sets`` are
    uint8 image sets; ``random_sets[0]`` is the reference random concept of the null distribution,
    the others the N counterparts of every concept.
    """
    model.eval()
    names = list(concepts)
    heads = [*concepts.values(), random_sets[0]]
    counterparts = random_sets[1:]
    sizes = [len(images) for images in (*heads, *counterparts)]
    activations = collect_activations(model, torch.cat([*heads, *counterparts]), list(layers))
    seed_everything(seed)  # sklearn's SGD draws from the global RNG
    generator = torch.Generator().manual_seed(seed)  # the held-out splits
    x = to_float(inputs)
    rows = []
    for layer, maps in activations.items():
        groups = maps.flatten(1).split(sizes)
        fitted = [train_cav(head, other, generator) for head in groups[: len(heads)] for other in groups[len(heads) :]]
        directions = torch.stack([direction for direction, _ in fitted])
        accuracy = np.array([acc for _, acc in fitted]).reshape(len(heads), len(counterparts)).mean(1)
        gradients = layer_gradients(model, resolve_layer(model, layer), x, labels)
        scores = sign_counts(gradients, labels, num_classes, directions).reshape(num_classes, len(heads), len(counterparts))
        null = scores[:, -1]
        degenerate = degenerate_null(null)
        for k, name in enumerate(names):
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # identical constant samples give a NaN p-value: no evidence
                p_values = ttest_ind(scores[:, k], null, axis=1).pvalue
            for c in torch.unique(labels).tolist():
                untestable = degenerate[c] or np.isnan(p_values[c])
                rows.append({"depth": layer, "concept": name, "class_index": c, "tcav": scores[c, k].mean(),
                             "tcav_std": scores[c, k].std(ddof=1), "random_tcav": null[c].mean(),
                             "p_value": 1.0 if untestable else float(p_values[c]), "degenerate": bool(degenerate[c]),
                             "cav_accuracy": accuracy[k]})
    return pd.DataFrame(rows)


def sign_counts(gradients: torch.Tensor, labels: torch.Tensor, num_classes: int, directions: torch.Tensor) -> np.ndarray:
    """TCAV scores ``[classes, directions]``: the share of each class's images (rows of ``gradients``, the layer
    gradients of their own logit) whose logit rises along each direction; one matrix product for all of them."""
    positive = (gradients @ directions.T > 0).float()
    per_class = torch.zeros(num_classes, len(directions)).index_add_(0, labels, positive)
    return (per_class / torch.bincount(labels, minlength=num_classes).clamp_min(1)[:, None]).numpy()


def degenerate_null(null: np.ndarray) -> np.ndarray:
    """Per class, whether every random-vs-random TCAV score is 0 or 1: the class gradient then has the same
    sign along a random direction for all of the class's images, i.e. it hardly depends on the input (a
    random network; a layer followed only by pooling and a linear head). A sign count cannot measure a
    concept's influence there: any stable direction scores 0 or 1 against a null split between the two,
    so the t-test would call every distinct concept significant. Such tests are reported with p = 1."""
    return ((null == 0) | (null == 1)).all(axis=1)


def with_significance(table: pd.DataFrame, alpha: float, method: str) -> pd.DataFrame:
    """Adds ``p_corrected`` (over all of the table's tests) and ``significant`` (p_corrected < alpha)."""
    corrected = correct_p_values(table["p_value"].to_numpy(), method) if len(table) else np.array([])
    return table.assign(p_corrected=corrected, significant=corrected < alpha)
