"""Keras model builders and weight I/O: `build_model(model, weights)` resolves every model lucidtl uses."""
from lucidtl.models.inception_v1 import CONV_LAYERS, MIXED_LAYERS, checkpoint_scope, inception_v1
from lucidtl.models.weights import (
    MODELS,
    ModelInfo,
    build_model,
    load_weights,
    manifest,
    save_model,
    save_weights,
)

__all__ = ["CONV_LAYERS", "MIXED_LAYERS", "MODELS", "ModelInfo", "build_model", "checkpoint_scope", "inception_v1",
           "load_weights", "manifest", "save_model", "save_weights"]
