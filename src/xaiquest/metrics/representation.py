"""Similarity of two representations of the same inputs: linear CKA, shared by the stages that compare
a model's depths (clean vs noisy inputs in the stress stage, a model vs the weights it started from in
the transfer stage)."""

from __future__ import annotations

import torch


def u_centred(gram: torch.Tensor) -> torch.Tensor:
    """U-centring of a Gram matrix (Szekely & Rizzo 2014): its inner products are unbiased HSIC estimates."""
    n = len(gram)
    gram = gram.clone().fill_diagonal_(0)
    means = gram.sum(0) / (n - 2)
    means = means - means.sum() / (2 * (n - 1))
    return (gram - means[:, None] - means[None, :]).fill_diagonal_(0)


def linear_cka(x: torch.Tensor, y: torch.Tensor, debiased: bool = False) -> float:
    """Linear CKA (Kornblith et al. 2019) of two representations of the same N inputs, ``[N,...]`` each.

    ``<K,L> / (|K| |L|)`` with K, L the Gram matrices of the column-centred features. N x N Gram
    matrices keep the cost at N^2 D, which suits N in the hundreds and D up to 10^5 (feature maps).
    The plain estimate of independent features is about D/N, not 0; ``debiased=True`` uses
    unbiased HSIC (U-centred Grams, as Kornblith's reference code) and needs N > 3.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same inputs in both representations, got {x.shape[0]} and {y.shape[0]}")
    if debiased and x.shape[0] < 4:
        raise ValueError("debiased CKA needs at least 4 inputs")
    grams = []
    for features in (x, y):
        features = features.flatten(1).float()
        features = features - features.mean(0)
        gram = (features @ features.T).double()
        grams.append(u_centred(gram) if debiased else gram)
    kx, ky = grams
    return ((kx * ky).sum() / (kx.norm() * ky.norm())).item()
