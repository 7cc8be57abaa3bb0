"""Streaming similarity statistics vs the all-in-memory metrics, for an InceptionV1-sized layer.

    python tools/bench_analysis.py [--channels 512] [--size 14] [--batch 32] [--batches 8]

Prints the time of each path, their ratio, the memory each needs, and the largest difference of the
metric values (they agree to ~1e-12). Rows are [batch * size^2, channels] random ReLU-like activations.
"""
import argparse
import time

import numpy as np

from lucidtl.analysis import metrics as M
from lucidtl.analysis.streaming import CrossStats, MapStats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=512)
    ap.add_argument("--size", type=int, default=14)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    c, s, b = args.channels, args.size, args.batch
    mix = rng.normal(size=(c, c)) / np.sqrt(c)
    xs, ys = [], []
    for _ in range(args.batches):
        x = np.maximum(rng.normal(size=(b, s, s, c)), 0).astype(np.float32)
        xs.append(x)
        ys.append(np.maximum(x @ (np.eye(c) + 0.3 * mix).astype(np.float32), 0))

    t0 = time.perf_counter()
    stats = CrossStats()
    for x, y in zip(xs, ys):
        stats.update(x.reshape(-1, c), y.reshape(-1, c))
    streamed = stats.metrics(0.0)
    t_stream = time.perf_counter() - t0

    t0 = time.perf_counter()
    X = np.concatenate(xs).reshape(-1, c).astype(np.float64)
    Y = np.concatenate(ys).reshape(-1, c).astype(np.float64)
    full = M.layer_metrics(X, Y, 0.0)
    t_full = time.perf_counter() - t0

    t0 = time.perf_counter()
    maps = MapStats()
    for x, y in zip(xs, ys):
        maps.update(x, y)
    t_maps = time.perf_counter() - t0

    n = X.shape[0]
    print(f"layer [{n} samples, {c} channels] in {args.batches} batches of {b} images ({s}x{s})")
    print(f"streamed layer metrics: {t_stream:.2f} s   in memory: {t_full:.2f} s   ratio {t_stream / t_full:.2f}")
    print(f"memory: streamed O(C^2) = {3 * c * c * 8 / 2**20:.1f} MiB   in memory = {2 * n * c * 8 / 2**20:.1f} MiB")
    print(f"max |difference| of the metrics: {max(abs(streamed[k] - full[k]) for k in full):.1e}")
    print(f"per-channel map metrics: {t_maps:.2f} s ({t_maps / (args.batches * b) * 1e3:.1f} ms per image)")


if __name__ == "__main__":
    main()
