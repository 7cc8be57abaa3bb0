"""IterationCheckpoint: save the weights at chosen training iterations, in any `model.fit`.

An iteration is one optimiser update (one batch), counted across epochs and across resumed runs by the
optimiser's own `iterations` variable (which Keras' BackupAndRestore restores). Iteration 0 is the untouched
model, saved before the first update. Each save writes `<dir>/iter_<i:06d>.weights.h5` atomically and
rewrites `<dir>/checkpoints.json` (iteration, epoch, metrics so far, wall time), which the render tools read.
"""
import json
import os
import time

import keras
import numpy as np

from lucidtl.atomic import atomic_path, makedirs
from lucidtl.errors import InvalidArgumentError
from lucidtl.models.weights import save_model, save_weights
from lucidtl.run import MANIFEST, read_manifest  # noqa: F401 (read_manifest re-exported)
from lucidtl.train.distribute import is_chief
from lucidtl.train.schedule import parse_schedule

FORMATS = {"weights": ".weights.h5", "keras": ".keras"}


def checkpoint_name(iteration, save_format="weights"):
    return f"iter_{iteration:06d}{FORMATS[save_format]}"


def plain_metrics(logs):
    """Numbers from Keras logs (scalars, or 1-element arrays as a multi-worker run gives them)."""
    out = {}
    for k, v in (logs or {}).items():
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.size == 1:
            out[k] = float(arr.reshape(()))
    return out


class IterationCheckpoint(keras.callbacks.Callback):
    """Save weights at the iterations in `save_at` (see schedule.parse_schedule; default the paper's
    0, 10, 20, 30, 60, 150, 1000, 3000). `iterations`: the run length, for every:N / log:K schedules.
    save_format: "weights" (.weights.h5, default) or "keras" (the whole model). Between save points a batch
    costs one integer comparison. In a multi-worker run only the chief writes. report: called with one
    line per checkpoint saved (e.g. print)."""

    def __init__(self, directory, save_at=None, iterations=None, save_format="weights", report=None):
        super().__init__()
        self.report = report
        if save_format not in FORMATS:
            raise InvalidArgumentError(f"unknown save_format {save_format!r}; use weights or keras")
        self.directory = os.fspath(directory)
        self.save_at = parse_schedule(save_at, iterations)
        self.save_format = save_format
        self._writer = True
        self._pending = []
        self._records = []  # the manifest, read once per fit and kept in step with the file
        self._iteration = 0
        self._epoch = 0
        self._metrics = {}
        self._clock = None
        self._wall_before = 0.0

    # ---- state ----------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._writer = is_chief(getattr(self.model, "distribute_strategy", None))
        makedirs(self.directory)
        self._iteration = int(self.model.optimizer.iterations.numpy())
        self._records = read_manifest(self.directory)
        done = {r["requested"] for r in self._records}
        self._wall_before = self._records[-1]["wall_time"] if self._records else 0.0
        self._clock = time.perf_counter()
        # iterations still to save, ascending; a resumed run never rewrites what is on the manifest
        self._pending = [i for i in self.save_at if i >= self._iteration and i not in done]
        if self._pending and self._pending[0] == self._iteration:
            self._save()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._iteration += 1
        if self._pending and self._iteration >= self._pending[0]:
            self._iteration = int(self.model.optimizer.iterations.numpy())  # exact, e.g. steps_per_execution
            self._metrics = plain_metrics(logs)
            if self._iteration >= self._pending[0]:
                self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._metrics.update(plain_metrics(logs))

    # ---- writing --------------------------------------------------------------------------------------
    def _save(self):
        iteration = self._iteration  # the weights' true iteration (later than asked only with steps_per_execution)
        requested = self._pending.pop(0)
        while self._pending and self._pending[0] <= iteration:
            self._pending.pop(0)
        if not self._writer:
            return
        name = checkpoint_name(iteration, self.save_format)
        path = os.path.join(self.directory, name)
        (save_weights if self.save_format == "weights" else save_model)(self.model, path)
        record = {
            "iteration": iteration,
            "requested": requested,
            "epoch": self._epoch,
            "path": name,
            "metrics": dict(self._metrics),
            "wall_time": round(self._wall_before + time.perf_counter() - self._clock, 3),
        }
        records = [r for r in self._records if r["iteration"] != iteration] + [record]
        records.sort(key=lambda r: r["iteration"])
        with atomic_path(os.path.join(self.directory, MANIFEST)) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": self.save_format, "checkpoints": records}, f, indent=1)
        self._records = records
        if self.report is not None:
            self.report(f"saved checkpoint {len(records)}: iteration {iteration} -> {path}")
