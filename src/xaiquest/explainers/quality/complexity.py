"""How concentrated is an explanation? Entropy (lower = simpler) and Gini sparseness (higher = sparser).

Both use absolute attributions: a strongly negative pixel is as much "part of the explanation" as a
strongly positive one. An all-zero map has no distribution, so both return NaN for it.
"""

from __future__ import annotations

import torch


def entropy(maps: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of ``|map|`` normalised to sum 1, ``[N]``: 0 for one pixel, ``log(H*W)`` for uniform."""
    mass = maps.flatten(1).abs()
    share = mass / mass.sum(1, keepdim=True)
    return -torch.special.xlogy(share, share).sum(1)


def sparseness(maps: torch.Tensor) -> torch.Tensor:
    """Gini index of ``|map|`` (Chalasani et al. 2020), ``[N]``: 0 for uniform, ``1 - 1/(H*W)`` for one pixel.

    With the values sorted ascending, ``G = sum_k (2k - P - 1) a_(k) / (P sum_k a_(k))``.
    """
    ordered = maps.flatten(1).abs().sort(dim=1).values
    pixels = ordered.shape[1]
    weights = 2 * torch.arange(1, pixels + 1, device=maps.device, dtype=ordered.dtype) - pixels - 1
    return (ordered * weights).sum(1) / (pixels * ordered.sum(1))
