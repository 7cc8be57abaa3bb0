"""Measuring transfer from checkpoints: representation similarity (PWSM, Procrustes, CKA) across
iterations, spatial scale and redundancy of visualisations, dataset examples, plots and tables.
Heavy modules (TF, matplotlib) load only when used: `from lucidtl.analysis import streaming`."""
from lucidtl.analysis.metrics import (
    center,
    layer_metrics,
    linear_cka,
    map_metrics,
    partial_whiten,
    pearson,
    procrustes_distance,
    procrustes_normalized,
    shape_metric,
)

__all__ = ["center", "layer_metrics", "linear_cka", "map_metrics", "partial_whiten", "pearson",
           "procrustes_distance", "procrustes_normalized", "shape_metric"]
