"""Fine-tuning the paper's way: heads and losses, iteration checkpoints (recipes and the fit CLI come next)."""
from lucidtl.train.callbacks import IterationCheckpoint, checkpoint_name, read_manifest
from lucidtl.train.schedule import PAPER_ITERATIONS, log_spaced, parse_schedule

__all__ = ["IterationCheckpoint", "PAPER_ITERATIONS", "checkpoint_name", "log_spaced", "parse_schedule",
           "read_manifest"]
