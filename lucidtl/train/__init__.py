"""Fine-tuning the paper's way: heads and losses, recipes, the iteration-checkpoint and live
feature-visualisation callbacks, resumable and distributed training (`python -m lucidtl.train`)."""
from lucidtl.train.callbacks import IterationCheckpoint, checkpoint_name, read_manifest
from lucidtl.train.heads import add_head, compile_for
from lucidtl.train.live import FeatureVisualization
from lucidtl.train.recipes import RECIPES, Recipe
from lucidtl.train.schedule import PAPER_ITERATIONS, log_spaced, parse_schedule

__all__ = ["FeatureVisualization", "IterationCheckpoint", "PAPER_ITERATIONS", "RECIPES", "Recipe", "add_head",
           "checkpoint_name", "compile_for", "log_spaced", "parse_schedule", "read_manifest", "train"]


def __getattr__(name):  # train() pulls in the data and model stacks; import it on first use
    if name == "train":
        from lucidtl.train.fit import train

        return train
    raise AttributeError(name)
