"""StyleGAN2 latent-ascent step time vs the generator's bare forward+backward.

    python tools/bench_stylegan2.py                       # small 256 px generator, tiny classifier (CPU, < 1 min)
    python tools/bench_stylegan2.py --full --classifier inception_v1 --size 224   # config-f channels (GPU)

bare: w -> synthesis (fresh noise) -> sum(image * fixed weights) -> gradient w.r.t. w, one tf.function.
ascent: one Ascent step (synthesis -> [0,1] NHWC -> resize -> classifier -> channel objective - lam penalty ->
gradient -> Adam), one tf.function. Steps are interleaved so machine noise hits both alike.
Last line: `ratio <x>` (ascent step time / bare generator fwd+bwd time).
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lucidtl.stylegan2.ascent import Ascent  # noqa: E402
from lucidtl.stylegan2.networks import Config, Generator  # noqa: E402


def tiny_classifier():
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    return keras.Model(inp, x, name="tiny"), "conv2"


def bare_step(g):
    cfg = g.config
    w = tf.Variable(tf.zeros([1, cfg.dlatent_size]))
    weights = tf.random.stateless_normal([1, cfg.num_channels, cfg.resolution, cfg.resolution], seed=[0, 1])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            img = g.synthesis(w, noise=g.noise_maps(1))
            value = tf.reduce_sum(img * weights)
        return tape.gradient(value, w)

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--full", action="store_true", help="config-f channels (fmap_base 16384, max 512, w 512)")
    ap.add_argument("--classifier", default="tiny", choices=["tiny", "inception_v1"])
    ap.add_argument("--size", type=int, default=None, help="classifier input size (default: 224 / resolution)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()

    if args.full:
        cfg = Config(resolution=args.resolution)
    else:
        cfg = Config(resolution=args.resolution, latent_size=64, dlatent_size=64, mapping_layers=2, mapping_fmaps=64,
                     fmap_base=2048, fmap_max=64)
    g = Generator(cfg, seed=0)
    g.estimate_w_avg(256)
    if args.classifier == "tiny":
        model, layer = tiny_classifier()
        size = args.size or cfg.resolution
    else:
        from lucidtl.models import inception_v1

        keras.utils.set_random_seed(0)
        model, layer = inception_v1(), "Mixed_5c_Branch_3_b_1x1"
        size = args.size or 224
    run = Ascent(g, model, layer=layer, channel=0, size=size, noise="resample")
    run.reset()
    bare = bare_step(g)
    for _ in range(args.warmup):
        run._step_fn()
        bare()
    t_run = t_bare = 0.0
    for _ in range(args.steps):
        t0 = time.perf_counter()
        run._step_fn()[0].numpy()
        t1 = time.perf_counter()
        bare().numpy()
        t2 = time.perf_counter()
        t_run += t1 - t0
        t_bare += t2 - t1
    device = tf.config.list_logical_devices("GPU")
    print(f"device {'GPU ' + device[0].name if device else 'CPU'}; generator {cfg.resolution}px, "
          f"channels 4px {cfg.channels(4)} .. {cfg.resolution}px {cfg.channels(cfg.resolution)}, w {cfg.dlatent_size}; "
          f"classifier {args.classifier} at {size}px ({layer}); traces {run.traces}")
    print(f"bare G fwd+bwd: {args.steps / t_bare:.2f} steps/s ({1000 * t_bare / args.steps:.1f} ms)")
    print(f"ascent step:    {args.steps / t_run:.2f} steps/s ({1000 * t_run / args.steps:.1f} ms)")
    print(f"ratio {t_run / t_bare:.2f}")
    return np.float32(t_run / t_bare)


if __name__ == "__main__":
    main()
