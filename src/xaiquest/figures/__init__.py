"""Figures used by several stages, one module per domain (calibration, robustness, training, heatmaps).

Bare ``Figure`` objects (Agg rendering, no pyplot state), so drawing is safe headless and in threads.
"""
