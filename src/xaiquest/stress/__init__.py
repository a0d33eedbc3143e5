"""Stage-4 library: planted patches and their benchmark controls, stress probes, object/background masks, focus shift, layer-wise views.

Pure, batched functions over uint8 images ``[N,3,H,W]``; the pipeline stage decides what to run.
What each probe does and how each metric is defined: ``docs/stress.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "BASELINES": "xaiquest.stress.benchmark",
    "Intensity": "xaiquest.stress.probes",
    "PROBES": "xaiquest.stress.probes",
    "Probe": "xaiquest.stress.probes",
    "apply_probe": "xaiquest.stress.probes",
    "background_only": "xaiquest.stress.background",
    "background_swap": "xaiquest.stress.background",
    "baseline_map": "xaiquest.stress.benchmark",
    "beats_baselines": "xaiquest.stress.benchmark",
    "before_after_figure": "xaiquest.stress.figures",
    "centre_of_mass": "xaiquest.stress.focus",
    "centre_prior": "xaiquest.data.masks",
    "collect_activations": "xaiquest.stress.layerwise",
    "com_displacement": "xaiquest.stress.focus",
    "depth_metric_figure": "xaiquest.stress.layerwise",
    "edge_alignment": "xaiquest.stress.layerwise",
    "edge_magnitude": "xaiquest.stress.layerwise",
    "fallback_share": "xaiquest.data.masks",
    "first_layer_filters_figure": "xaiquest.stress.layerwise",
    "focus_shift": "xaiquest.stress.focus",
    "focus_shift_table": "xaiquest.stress.focus",
    "foreground_masks": "xaiquest.data.masks",
    "grabcut_mask": "xaiquest.data.masks",
    "high_frequency_energy": "xaiquest.stress.layerwise",
    "inpaint": "xaiquest.stress.background",
    "layerwise_table": "xaiquest.stress.layerwise",
    "linear_cka": "xaiquest.metrics.representation",
    "mask_gallery_figure": "xaiquest.stress.background",
    "mean_ci": "xaiquest.stress.benchmark",
    "mean_colour": "xaiquest.stress.background",
    "model_contrast": "xaiquest.stress.benchmark",
    "object_only": "xaiquest.stress.background",
    "occluded_area": "xaiquest.stress.probes",
    "occlusion_sensitivity": "xaiquest.stress.probes",
    "other_class_donors": "xaiquest.data.masks",
    "patch_figure": "xaiquest.stress.figures",
    "permutation_index": "xaiquest.stress.probes",
    "probe_curve_figure": "xaiquest.stress.figures",
    "rank_correlation": "xaiquest.stress.focus",
    "register_baseline": "xaiquest.stress.benchmark",
    "register_probe": "xaiquest.stress.probes",
    "reliance_metrics": "xaiquest.stress.patch",
    "share_on_region": "xaiquest.stress.focus",
}
"""Public name -> its module, imported on first use (PEP 562): the name check before a run needs the
registry without the figure code (matplotlib) and OpenCV that only the stage itself needs."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
