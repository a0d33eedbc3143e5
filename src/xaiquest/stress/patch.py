"""Reliance on a planted patch: how far predictions follow the cue once it is stamped on test images.

Planting and stamping live in ``xaiquest.patch``, below the train and stress stages.
"""

from __future__ import annotations

import torch


def reliance_metrics(
    clean_logits: torch.Tensor, stamped_logits: torch.Tensor, labels: torch.Tensor, target_class: int
) -> dict[str, float | list[float]]:
    """How much predictions follow the patch, from logits ``[N,C]`` on the same test images without and with it.

    ``attack_success``: share of non-target images predicted as the target once stamped (compare
    with ``target_rate_clean``, the same share without the patch). ``target_recall_without_patch``:
    recall of the target class on clean images - it drops when the model learned the patch
    instead of the class. F1 per class (index = class) on clean and stamped predictions.
    """
    if clean_logits.shape != stamped_logits.shape or clean_logits.shape[:1] != labels.shape:
        raise ValueError(
            f"expected clean and stamped logits [N,C] and labels [N], got {tuple(clean_logits.shape)}, "
            f"{tuple(stamped_logits.shape)} and {tuple(labels.shape)}"
        )
    from torchmetrics.functional.classification import multiclass_f1_score  # slow to import: only when measuring

    num_classes = clean_logits.shape[1]
    clean, stamped = clean_logits.argmax(1), stamped_logits.argmax(1)
    others, targets = labels != target_class, labels == target_class

    def f1(predicted: torch.Tensor) -> list[float]:
        return multiclass_f1_score(predicted, labels, num_classes, average="none", zero_division=0).tolist()

    return {
        "clean_accuracy": (clean == labels).float().mean().item(),
        "stamped_accuracy": (stamped == labels).float().mean().item(),
        "attack_success": (stamped[others] == target_class).float().mean().item(),
        "target_rate_clean": (clean[others] == target_class).float().mean().item(),
        "target_recall_without_patch": (clean[targets] == target_class).float().mean().item(),
        "target_recall_with_patch": (stamped[targets] == target_class).float().mean().item(),
        "f1_clean": f1(clean),
        "f1_stamped": f1(stamped),
    }
