"""Stage-4 library: planted patches, stress probes, object/background masks, focus shift, layer-wise views.

Pure, batched functions over uint8 images ``[N,3,H,W]``; the pipeline stage decides what to run.
What each probe does and how each metric is defined: ``docs/stress.md``.
"""

from xaiquest.data.masks import centre_prior, fallback_share, foreground_masks, grabcut_mask, other_class_donors
from xaiquest.stress.background import (
    background_only,
    background_swap,
    inpaint,
    mask_gallery_figure,
    mean_colour,
    object_only,
)
from xaiquest.stress.figures import before_after_figure, patch_figure, probe_curve_figure
from xaiquest.stress.focus import (
    centre_of_mass,
    com_displacement,
    focus_shift,
    focus_shift_table,
    rank_correlation,
    share_on_region,
)
from xaiquest.stress.layerwise import (
    collect_activations,
    depth_metric_figure,
    edge_alignment,
    edge_magnitude,
    first_layer_filters_figure,
    high_frequency_energy,
    layerwise_table,
    linear_cka,
)
from xaiquest.stress.patch import reliance_metrics
from xaiquest.stress.probes import (
    PROBES,
    Intensity,
    Probe,
    apply_probe,
    occluded_area,
    occlusion_sensitivity,
    permutation_index,
    register_probe,
)

__all__ = [
    "PROBES",
    "Intensity",
    "Probe",
    "apply_probe",
    "background_only",
    "background_swap",
    "before_after_figure",
    "centre_of_mass",
    "centre_prior",
    "collect_activations",
    "com_displacement",
    "depth_metric_figure",
    "edge_alignment",
    "edge_magnitude",
    "fallback_share",
    "first_layer_filters_figure",
    "focus_shift",
    "focus_shift_table",
    "foreground_masks",
    "grabcut_mask",
    "high_frequency_energy",
    "inpaint",
    "layerwise_table",
    "linear_cka",
    "mask_gallery_figure",
    "mean_colour",
    "object_only",
    "occluded_area",
    "occlusion_sensitivity",
    "other_class_donors",
    "patch_figure",
    "permutation_index",
    "probe_curve_figure",
    "rank_correlation",
    "register_probe",
    "reliance_metrics",
    "share_on_region",
]
