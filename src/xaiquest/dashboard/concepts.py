"""The Concepts tab: a unit's top-activating test images and where it fires (its dissection mask).

The unit's mask is the one the concepts stage scores (upsampled feature map above the unit's top
0.5 % quantile over the searched images), so what the tab shows is what the IoU counted.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch

from xaiquest.concepts.dissect import top_images, unit_masks
from xaiquest.dashboard.session import Dashboard
from xaiquest.dashboard.views import enlarged
from xaiquest.inference import collect_activations
from xaiquest.layout import RunLayout

SEARCHED_IMAGES = 256
"""Test images searched for a unit's top activations (the first of the test split)."""


def top_units_table(root: Path) -> pd.DataFrame | None:
    """The concepts stage's top units per concept, if the run has them."""
    path = RunLayout(Path(root)).tables.concepts_top_units
    return pd.read_csv(path) if path.is_file() else None


def unit_views(dashboard: Dashboard, model_id: str, depth: str, unit: int, count: int = 8,
               quantile: float = 0.005) -> list[tuple[np.ndarray, str]]:
    """For each of the unit's ``count`` top images: the image, then the image with everything outside the unit's mask dimmed."""
    images = dashboard.run.data.test.images[:SEARCHED_IMAGES]
    maps = collect_activations(dashboard.model(model_id), images, [depth])[depth]
    if not 0 <= unit < maps.shape[1]:
        raise gr.Error(f"{depth} of {model_id} has units 0..{maps.shape[1] - 1}, not {unit}")
    masks = unit_masks(maps[:, unit : unit + 1], tuple(images.shape[-2:]), quantile).view(len(images), *images.shape[-2:])
    views = []
    for index in top_images(maps, unit, count).tolist():
        dimmed = torch.where(masks[index], images[index], images[index] // 4)
        label = dashboard.classes[int(dashboard.run.data.test.labels[index])]
        views += [(enlarged(images[index]), f"test #{index} ({label})"), (enlarged(dimmed), f"unit {unit} fires here")]
    return views


def concepts_tab(dashboard: Dashboard) -> None:
    """Pick a model, depth and unit (or one of the stage's top units) -> its top images and masks."""
    top = top_units_table(dashboard.run.root)
    if top is not None:
        gr.Dataframe(top, label="top units per concept (concepts stage)", interactive=False, elem_id="top-units")
    models = dashboard.model_ids()
    with gr.Row():
        model = gr.Dropdown(models, value=models[0], label="model", elem_id="unit-model")
        depth = gr.Dropdown(dashboard.layers([models[0]])[1:], label="depth", elem_id="unit-depth")
        unit = gr.Number(0, precision=0, label="unit", elem_id="unit")
        button = gr.Button("Show unit", elem_id="show-unit")
    gallery = gr.Gallery(label="top images and where the unit fires", columns=8, elem_id="unit-gallery")
    button.click(lambda m, d, u: unit_views(dashboard, m, d, int(u)), [model, depth, unit], gallery)
