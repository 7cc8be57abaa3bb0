"""Activation atlases (Carter et al., Distill 2019; Lucid's lucid.recipes.activation_atlas), and atlases
of every checkpoint of a fine-tuning run in one layout (lucidtl.recipes.activation_atlas.checkpoints)."""
from lucidtl.recipes.activation_atlas.layout import aligned_umap, normalize_layout
from lucidtl.recipes.activation_atlas.main import (
    activation_atlas,
    bin_laid_out_activations,
    sample_activations,
)
from lucidtl.recipes.activation_atlas.render import make_canvas, render_icons

__all__ = ["activation_atlas", "aligned_umap", "normalize_layout", "bin_laid_out_activations",
           "sample_activations", "render_icons", "make_canvas"]
