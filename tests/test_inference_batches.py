"""Prediction batches hold a bounded number of pixels, so large images never go through the model a thousand at a time."""

from __future__ import annotations

import torch
from torch import nn

from xaiquest.data.pixels import PIXELS_PER_BATCH, rows_per_batch
from xaiquest.inference import predict_logits

CPU = torch.device("cpu")


class BatchRecorder(nn.Module):
    """Per-channel means as logits; remembers how many images each forward pass saw."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return x.mean((2, 3))


def _images(count: int, size: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_cifar_sized_images_keep_the_configured_batch_and_224_px_images_go_twenty_at_a_time():
    assert rows_per_batch(1000, _images(1, 32)) == 1000
    assert rows_per_batch(1000, _images(1, 224)) == 20 == PIXELS_PER_BATCH // 224**2
    assert rows_per_batch(8, _images(1, 224)) == 8
    assert rows_per_batch(1000, _images(1, 2048)) == 1


def test_large_images_are_predicted_in_pixel_bounded_batches_with_the_same_logits():
    images = _images(45, 160)
    model = BatchRecorder()
    logits = predict_logits(model, images, CPU, batch_size=1000, tta="flip")
    assert model.batches == [40, 40, 5, 5]  # 1,024,000 pixels // 160² = 40 images; each batch also flipped
    one_by_one = torch.cat([predict_logits(BatchRecorder(), image[None], CPU, tta="flip") for image in images])
    torch.testing.assert_close(logits, one_by_one)
    small = BatchRecorder()
    predict_logits(small, _images(45, 32), CPU, batch_size=1000)
    assert small.batches == [45]
