"""A trained model against the weights it started from, at every named depth, on the same images.

Per depth: linear CKA of the two activations (debiased: with a few hundred images and feature maps of
10^4 dimensions the plain estimate of unrelated features is far from 0), and the agreement of the two
class-free maps (top-k IoU and Spearman per image, then the mean). A class-free map is the channel-wise
L2 norm of the depth's activation: the source's classifier scores other classes (or is a fresh layer),
so a class-specific explanation of the trained model has no counterpart in the source.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from xaiquest.explainers.quality import spearman, topk_iou
from xaiquest.inference import collect_activations
from xaiquest.metrics.representation import linear_cka


def depth_maps(activations: torch.Tensor, size: int) -> torch.Tensor:
    """``[N,C,h,w]`` -> ``[N,size,size]``: the channel-wise L2 norm (where the depth responds, for no class
    in particular), upsampled bilinearly to the image so every depth is compared at the same resolution."""
    energy = activations.float().norm(dim=1, keepdim=True)
    return F.interpolate(energy, size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def depth_comparison(trained: nn.Module, source: nn.Module, images: torch.Tensor, depths: Sequence[str],
                     topk_frac: float) -> pd.DataFrame:
    """One row per depth (shallow to deep): ``cka`` (1 = the same representation up to rotation and scale),
    ``map_topk_iou`` and ``map_spearman`` (means over ``images``, uint8 on the models' device)."""
    ours = collect_activations(trained, images, depths)
    theirs = collect_activations(source, images, depths)
    size = images.shape[-1]
    rows = []
    for index, depth in enumerate(depths):
        maps, source_maps = depth_maps(ours[depth], size), depth_maps(theirs[depth], size)
        rows.append({"depth": depth, "depth_index": index, "cka": linear_cka(ours[depth], theirs[depth], debiased=True),
                     "map_topk_iou": topk_iou(maps, source_maps, topk_frac).nanmean().item(),
                     "map_spearman": spearman(maps, source_maps).nanmean().item()})
    return pd.DataFrame(rows)
