"""Activation atlas cost on this CPU, and how it scales: sampling, UMAP layout, placing checkpoints,
rendering icons, peak memory; extrapolated to the issue's target (100,000 activations of Mixed_4c, a
20 x 20 grid, 8 checkpoints).

    python tools/bench_activation_atlas.py [--images 128] [--points 2000,4000,8000] [--icons 8] [--steps 4,12]

InceptionV1 with seeded random weights (the cost does not depend on the values; no pretrained weights
offline), 224 px images (uniform noise). Measured directly: sampling throughput (images/s through
Mixed_4c), UMAP fit time at each --points size (real Mixed_4c vectors, several positions per image) and
UMAP transform time (another checkpoint's vectors), and one icon batch (96 px) at two step counts, which
separates the fixed cost (tracing) from the cost per update. Extrapolated (printed as such): sampling 100k
images (Lucid: one position per image), the fit at 100k from a power law through the measured sizes (keep
them >= 10,000: below, UMAP runs 500 epochs instead of 200, and below 4,096 exact neighbours instead of
nearest-neighbour descent), the transform of 7 more checkpoints likewise, and the icons of a 20 x 20 grid (at most 400 cells, 13 batches of 32) at
Lucid's 128 updates for 8 checkpoints. The machine may be shared: figures are upper bounds.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=128)  # x up to 196 positions of Mixed_4c's 14 x 14 map
    p.add_argument("--points", default="12000,24000")
    p.add_argument("--icons", type=int, default=8)
    p.add_argument("--steps", default="8,40")
    p.add_argument("--layer", default="Mixed_4c")
    args = p.parse_args()
    import keras

    from lucidtl import models
    from lucidtl.recipes.activation_atlas import layout as L
    from lucidtl.recipes.activation_atlas import main as M
    from lucidtl.recipes.activation_atlas.render import render_icons

    keras.utils.set_random_seed(0)
    net, info = models.build_model("inception_v1", weights="random")
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.images, 224, 224, 3)).astype(np.float32)
    sizes = [int(n) for n in args.points.split(",")]
    per = -(-max(sizes) // args.images)
    M.sample_activations(net, args.layer, images[:8], 8, 1, 8, input_range=info.input_range)  # warm up
    t0 = time.time()
    sample = M.sample_activations(net, args.layer, images, per * args.images, per, 16, input_range=info.input_range)
    t_sample = time.time() - t0
    rate = args.images / t_sample
    print(f"sampling: {args.images} images of 224 px through {args.layer} in {t_sample:.1f} s = {rate:.1f} images/s "
          f"({sample.activations.shape[1]} channels, map {sample.map_shape})")
    warm = L.make_umap({"n_neighbors": 15, "n_epochs": 5}, 0)  # numba's one-off compilation (the nearest-neighbour
    L._fit(warm, sample.activations[:4500])  # descent path of >= 4096 points, and transform's), not counted
    L._transform(warm, sample.activations[:100])
    fits = []
    for n in sizes:
        x = sample.activations[:n]
        t0 = time.time()
        reducer = L.make_umap(None, 0)
        L._fit(reducer, x)
        fits.append(time.time() - t0)
        t0 = time.time()
        L._transform(reducer, x * 1.01 + 0.01)
        t_transform = time.time() - t0
        print(f"UMAP: fit {n} points {fits[-1]:.1f} s, transform {n} points of another checkpoint {t_transform:.1f} s; "
              f"peak RSS so far {rss_mib():.0f} MiB")
    slope = np.polyfit(np.log(sizes), np.log(fits), 1)[0] if len(sizes) > 1 else 1.0
    fit_100k = fits[-1] * (100000 / sizes[-1]) ** slope
    transform_100k = t_transform * (100000 / sizes[-1]) ** slope
    steps = [int(s) for s in args.steps.split(",")]
    dirs = sample.activations[:args.icons]
    render_icons(dirs, net, args.layer, size=96, n_steps=2, num_attempts=1, input_range=info.input_range)  # warm-up
    times = []
    for s in steps:
        t0 = time.time()
        render_icons(dirs, net, args.layer, size=96, n_steps=s, num_attempts=1, input_range=info.input_range)
        times.append(time.time() - t0)
        print(f"icons: {args.icons} icons of 96 px, {s} updates in {times[-1]:.1f} s")
    per_update = (times[1] - times[0]) / (steps[1] - steps[0])
    fixed = times[0] - per_update * steps[0]
    batch32 = fixed + per_update * 128 * 32 / args.icons  # cost per update grows ~linearly with the batch
    icons_total = 8 * 13 * batch32
    sampling_total = 8 * 100000 / rate
    print(f"icons: fixed {fixed:.1f} s a batch, {per_update:.2f} s an update for {args.icons} icons "
          f"(extrapolated: a batch of 32 at 128 updates {batch32:.0f} s)")
    print(f"peak RSS {rss_mib():.0f} MiB; the 100k x 512 float32 sample of one checkpoint is "
          f"{100000 * sample.activations.shape[1] * 4 / 2**20:.0f} MiB (8 checkpoints {8 * 100000 * 512 * 4 / 2**20:.0f} MiB"
          f", held for the layout)")
    print("extrapolated to 100k activations of Mixed_4c, 20 x 20 grid, 8 checkpoints, on this machine:")
    print(f"  sampling 8 x 100k images {sampling_total / 3600:.1f} h; UMAP fit {fit_100k / 60:.1f} min "
          f"(time ~ N^{slope:.2f}), 7 transforms {7 * transform_100k / 60:.1f} min; icons (<= 400 cells a "
          f"checkpoint, 13 batches of 32, 128 updates) {icons_total / 3600:.1f} h; total "
          f"{(sampling_total + fit_100k + 7 * transform_100k + icons_total) / 3600:.1f} h")


if __name__ == "__main__":
    main()
