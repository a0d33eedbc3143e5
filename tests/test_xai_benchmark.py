"""The planted-patch benchmark's controls: control stamping, trivial baseline maps, model contrast and
significance against baselines, and the acceptance check that model contrast catches salience-driven maps."""

from __future__ import annotations

import torch

from xaiquest.config import PatchConfig
from xaiquest.data import Split
from xaiquest.patch import control_split, stamp


def labelled_images(per_class: list[int], seed: int = 0, size: int = 16) -> Split:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(per_class)).repeat_interleave(torch.tensor(per_class))
    images = torch.randint(0, 200, (len(labels), 3, size, size), dtype=torch.uint8, generator=generator)
    return Split(images, labels[torch.randperm(len(labels), generator=generator)])


def test_control_split_stamps_the_same_share_of_every_class_and_keeps_labels() -> None:
    split = labelled_images([10, 7, 4])
    patch = PatchConfig(target_class=1, fraction=0.5)
    control, stamped = control_split(split, patch, seed=3)
    assert torch.equal(control.labels, split.labels)
    for label, count in enumerate([10, 7, 4]):
        assert stamped[split.labels == label].sum().item() == round(0.5 * count)
    expected, masks = stamp(split.images[stamped], patch)
    assert torch.equal(control.images[stamped], expected)
    assert torch.equal(control.images[~stamped], split.images[~stamped])
    assert masks.any((1, 2)).all()
    again, stamped_again = control_split(split, patch, seed=3)
    assert torch.equal(again.images, control.images) and torch.equal(stamped_again, stamped)
    assert not torch.equal(control_split(split, patch, seed=4)[1], stamped)
