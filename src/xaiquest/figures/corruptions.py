"""The corruption gallery: one image under every corruption and severity."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from xaiquest.data.corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt
from xaiquest.errors import DataError

_TILE_GAP = 2  # white pixels around every tile


def gallery_figure(image: torch.Tensor, seed: int = 0) -> Figure:
    """One image under every corruption (rows) at severities 1..5 (columns), beside the clean image.

    The tiles form one mosaic in a single axes, labelled by its ticks, so the 19 x 6 grid draws
    and saves quickly.
    """
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3 or image.shape[1] != image.shape[2]:
        raise DataError(f"gallery_figure() needs one square uint8 image [3,S,S], got {image.dtype} {list(image.shape)}")
    batch = image.unsqueeze(0)
    tiles = torch.stack(
        [torch.stack([image, *(corrupt(batch, name, s, seed)[0] for s in SEVERITIES)]) for name in ALL_CORRUPTIONS]
    )  # [corruption, column, 3, H, W]
    tiles = torch.nn.functional.pad(tiles.cpu(), (_TILE_GAP,) * 4, value=255)
    rows, columns, _, tile_h, tile_w = tiles.shape
    mosaic = tiles.permute(0, 3, 1, 4, 2).reshape(rows * tile_h, columns * tile_w, 3).numpy()
    figure = Figure(figsize=(0.75 * columns + 1.6, 0.75 * rows + 0.4), layout="constrained")
    ax = figure.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([tile_w * (c + 0.5) for c in range(columns)], ["clean", *(f"severity {s}" for s in SEVERITIES)])
    ax.set_yticks([tile_h * (r + 0.5) for r in range(rows)], [name.replace("_", " ") for name in ALL_CORRUPTIONS])
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=10)
    ax.spines[:].set_visible(False)
    return figure
