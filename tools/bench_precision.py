"""Quality of lower-precision renders: the same channels, the same seeds, float32 vs bfloat16 (or float16).

    python tools/bench_precision.py [--size 128] [--steps 512] [--channels 16] [--precision bfloat16] [--out DIR]

For BN-InceptionV1 with non-trivial batch-norm statistics (4 layers x --channels channels) and for a tiny CNN
trained briefly on coloured-blob images (2 layers), each layer's channels are rendered in one batch (image i
maximises channel i, Lucid's FFT image, standard transforms, Adam 0.05) once in float32 and once in the lower
precision. Each picture, as its PNG stores it, is then scored in float32 by its channel's objective (the mean
of the channel). Prints per layer and overall the ratio lower / float32 (median, 10th percentile) and the
fraction of channels within +-5 %; last line `objective_ratio_median <x>`. A channel that no picture of
either precision makes fire (float32 objective below 1e-6 in both: a dead unit of a random network) has no
ratio and is counted apart. With --out, side-by-side grids (row
1 float32, row 2 the lower precision) are saved there for a human look. A quality benchmark, so the lower
precision runs on any machine (LUCIDTL_ALLOW_SLOW_PRECISION=1), however slow it is there.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["LUCIDTL_ALLOW_SLOW_PRECISION"] = "1"

import keras  # noqa: E402
import numpy as np  # noqa: E402

INCEPTION_LAYERS = ("Mixed_3b", "Mixed_4b", "Mixed_4d", "Mixed_5b")
DEAD = 1e-6


def inception_with_bn_statistics(seed=0):
    """Random BN-InceptionV1 whose batch norms are not the identity (non-trivial moving statistics)."""
    from lucidtl.models.inception_v1 import inception_v1

    keras.utils.set_random_seed(seed)
    return with_bn_statistics(inception_v1(), seed)


def with_bn_statistics(model, seed=0, mean_sd=0.2, variance=(0.5, 2.0)):
    """`model` with every batch norm's beta and moving statistics drawn at random (not the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.beta.assign(rng.normal(0.0, 0.1, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0.0, mean_sd, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(*variance, n).astype("float32"))
    return model


def trained_tiny_cnn(seed=0, steps=60):
    """A small CNN (two conv blocks, BN, ReLU) fitted for `steps` batches to tell four blob colours apart."""
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((None, None, 3))
    for i, width in enumerate((16, 32)):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(4, name="logits")(x), name="tiny_trained")
    rng = np.random.default_rng(seed)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    labels = rng.integers(0, 4, 32 * steps)
    yy, xx = np.mgrid[:32, :32]
    images = np.full((len(labels), 32, 32, 3), 0.5, np.float32)
    for k, c in enumerate(labels):
        cy, cx = rng.integers(8, 24, 2)
        images[k][(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = colours[c]
    images += rng.normal(0, 0.05, images.shape).astype(np.float32)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, batch_size=32, epochs=1, verbose=0)
    return model


def channel_scores(model, layer, images, channels):
    """float32 mean of channel c on image i, for the images as their PNGs store them."""
    from lucidtl import imageio
    from lucidtl.optvis import features

    acts = np.asarray(features.feature_model(model, [layer])(imageio.as_saved(images), training=False))
    return np.array([acts[i, ..., c].mean() for i, c in enumerate(channels)], np.float64)


def compare(model, layer, channels, size, steps, precision, seed=0):
    from lucidtl.optvis.render import render_channels

    pairs = [(layer, c) for c in channels]
    out, secs = {}, {}
    for p in ("float32", precision):
        t0 = time.perf_counter()
        out[p] = render_channels(model, pairs, size=size, steps=steps, seed=seed, precision=p)
        secs[p] = time.perf_counter() - t0
    s32, slow = (channel_scores(model, layer, out[p], channels) for p in ("float32", precision))
    live = np.maximum(s32, slow) > DEAD
    return slow[live] / np.maximum(s32[live], DEAD), int((~live).sum()), out, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=512)
    ap.add_argument("--channels", type=int, default=16, help="channels per InceptionV1 layer (4 layers)")
    ap.add_argument("--precision", default="bfloat16", choices=("bfloat16", "float16"))
    ap.add_argument("--out", default=None, help="folder for the side-by-side grids (not committed)")
    args = ap.parse_args()
    import tensorflow as tf

    from lucidtl import imageio
    from lucidtl.optvis import features, precision as precision_lib

    fast, where = precision_lib.fast_path(args.precision)
    print(f"tf {tf.__version__}, cpus {os.cpu_count()}, {args.precision} fast path here: {fast} ({where}); "
          f"size {args.size}, steps {args.steps}")
    jobs = [(inception_with_bn_statistics(), INCEPTION_LAYERS), (trained_tiny_cnn(), ("relu1", "relu2"))]
    ratios = []
    for model, layers in jobs:
        for layer in layers:
            count = features.channel_count(model, layer)
            chans = [int(c) for c in np.linspace(0, count - 1, min(args.channels, count))]
            r, dead, images, secs = compare(model, layer, chans, args.size, args.steps, args.precision)
            ratios.append(r)
            print(f"{model.name} {layer}: {len(chans)} channels ({dead} dead in both), ratio median {np.median(r):.3f}, "
                  f"p10 {np.percentile(r, 10):.3f}, within 5% {np.mean(np.abs(r - 1) <= 0.05):.2f}; "
                  f"float32 {secs['float32']:.0f} s, {args.precision} {secs[args.precision]:.0f} s", flush=True)
            if args.out:
                imageio.save_grid([list(images["float32"]), list(images[args.precision])],
                                  os.path.join(args.out, f"{model.name}_{layer}.png"),
                                  row_labels=["float32", args.precision], col_labels=[f"ch {c}" for c in chans])
    r = np.concatenate(ratios)
    print(f"all: {len(r)} channels, ratio p10 {np.percentile(r, 10):.3f}, "
          f"within 5% {np.mean(np.abs(r - 1) <= 0.05):.2f}")
    print(f"objective_ratio_median {np.median(r):.3f}")


if __name__ == "__main__":
    main()
