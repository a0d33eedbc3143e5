"""Stage 3b: explanations of every model with every method, their quality, grids and re-examination.

The methods and their quality metrics are a library below the stages (``xaiquest.explainers``),
shared with the stress stage and the dashboard.
"""
