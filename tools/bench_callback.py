"""IterationCheckpoint's cost between save points: fit throughput with and without the callback (and with
every callback `lucidtl.train` adds: IterationCheckpoint, StopAtIteration, HistoryCSV, ResumeState).

    python tools/bench_callback.py [--size 96] [--batch 8] [--batches 40] [--repeats 3]

BN-InceptionV1 with a 10-class head, random data, Adam; the callback's schedule has no save point inside
the timed batches (the issue's "between save points"). Runs alternate so machine noise hits both alike.
Last lines: `overhead_ratio <x>` (IterationCheckpoint / none; target <= 1.05) and `train_callbacks_ratio <x>`
(all of train()'s callbacks between save points / none; ResumeState saves once a minute, not inside the run).
"""
import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lucidtl.models import inception_v1  # noqa: E402
from lucidtl.train import IterationCheckpoint  # noqa: E402
from lucidtl.train.fit import HistoryCSV, ResumeState, StopAtIteration  # noqa: E402


class _NoEpochEndSave(ResumeState):
    """ResumeState as in a run, minus its epoch-end save (each timed fit here is one short 'epoch'; a real
    epoch is thousands of batches)."""

    def on_epoch_end(self, epoch, logs=None):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    keras.utils.set_random_seed(0)
    model = inception_v1(include_top=True, classes=10, pooling="global")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    n = args.batch * args.batches
    x = np.random.default_rng(0).uniform(0, 1, (n, args.size, args.size, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(n) % 10, 10)
    model.fit(x[: 2 * args.batch], y[: 2 * args.batch], batch_size=args.batch, verbose=0)  # trace
    times = {"without": [], "with": [], "train": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            for kind in ("without", "with", "train"):
                start = int(model.optimizer.iterations.numpy())
                later = start + 10 * args.batches
                cbs = {"without": [], "with": [IterationCheckpoint(folder, save_at=[later])],
                       "train": [IterationCheckpoint(folder, save_at=[later]), StopAtIteration(later),
                                 HistoryCSV(os.path.join(folder, "history.csv")),
                                 _NoEpochEndSave(os.path.join(folder, "state.weights.h5"), None, 60)]}[kind]
                t0 = time.perf_counter()
                model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, callbacks=cbs, shuffle=False)
                times[kind].append(time.perf_counter() - t0)
    per = {k: min(v) / args.batches * 1000 for k, v in times.items()}
    print(f"size {args.size}, batch {args.batch}, {args.batches} batches x {args.repeats} alternating runs (best)")
    print(f"without: {per['without']:.1f} ms/batch; with IterationCheckpoint: {per['with']:.1f} ms/batch")
    print(f"with all of train()'s callbacks: {per['train']:.1f} ms/batch")
    print(f"overhead_ratio {per['with'] / per['without']:.3f}")
    print(f"train_callbacks_ratio {per['train'] / per['without']:.3f}")


if __name__ == "__main__":
    main()
