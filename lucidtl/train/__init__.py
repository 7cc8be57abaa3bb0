"""Fine-tuning the paper's way: heads and losses, recipes, the iteration-checkpoint and live
feature-visualisation callbacks, resumable and distributed training (`python -m lucidtl.train`)."""
import importlib

_WHERE = {  # name -> module; imported on first use, so that `python -m lucidtl.train --help` needs no TensorFlow
    "IterationCheckpoint": "callbacks", "checkpoint_name": "callbacks", "read_manifest": "callbacks",
    "add_head": "heads", "compile_for": "heads", "FeatureVisualization": "live", "RECIPES": "recipes",
    "Recipe": "recipes", "PAPER_ITERATIONS": "schedule", "log_spaced": "schedule", "parse_schedule": "schedule",
    "train": "fit",
}

__all__ = ["FeatureVisualization", "IterationCheckpoint", "PAPER_ITERATIONS", "RECIPES", "Recipe", "add_head",
           "checkpoint_name", "compile_for", "log_spaced", "parse_schedule", "read_manifest", "train"]


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"lucidtl.train.{_WHERE[name]}"), name)
    raise AttributeError(name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
