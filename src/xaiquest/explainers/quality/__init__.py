"""Explanation-quality metrics over batches of maps: faithfulness, agreement, complexity, sanity, localisation.

Maps are ``[N,H,W]`` float tensors, images ``[N,3,H,W]`` normalised floats, targets ``[N]`` long,
masks ``[N,H,W]`` bool; every metric returns one value per image (``[N]``) unless it compares
methods. Definitions and the choices behind them: ``docs/explanation-quality.md``.
"""

from xaiquest.explainers.quality.agreement import agreement_matrix, pixel_ranks, spearman, topk_iou
from xaiquest.explainers.quality.complexity import entropy, sparseness
from xaiquest.explainers.quality.faithfulness import deletion_insertion, noisy_linear_impute, road
from xaiquest.explainers.quality.localisation import mass_inside, pointing_game, top_k_overlap, win_rates
from xaiquest.explainers.quality.sanity import cascading_randomisation, randomisation_order, sanity_flag, ssim

__all__ = [
    "agreement_matrix",
    "cascading_randomisation",
    "deletion_insertion",
    "entropy",
    "mass_inside",
    "noisy_linear_impute",
    "pixel_ranks",
    "pointing_game",
    "randomisation_order",
    "road",
    "sanity_flag",
    "sparseness",
    "spearman",
    "ssim",
    "top_k_overlap",
    "topk_iou",
    "win_rates",
]
