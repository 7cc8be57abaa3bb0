"""Render step time vs the bare forward+backward of the same model to the same layer.

    python tools/bench_render.py [--size 128] [--steps 20] [--layer Mixed_4c]

For batch 1 and 8: the full render step (FFT/decorrelated param -> standard transforms -> InceptionV1 to
the layer -> channel objective -> gradient -> Adam), and the bare forward+backward (a fixed input tensor of
the same size, gradient of the same objective w.r.t. it; no param, no transforms, no optimiser). The
standard transforms make the image the model sees larger on average (128 -> 125..154 px), so the bare
pass is also timed at the transformed mean size for reference. Last line: `ratio_batch8 <x>`.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lucidtl.models.inception_v1 import inception_v1  # noqa: E402
from lucidtl.optvis import features, objectives, param  # noqa: E402
from lucidtl.optvis.render import Renderer  # noqa: E402


def _time(fn, steps, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def render_step_time(model, layer, batch, size, steps):
    obj = sum((objectives.channel(layer, i, batch=i) for i in range(batch)), 0)
    r = Renderer(model, obj, param_f=lambda: param.image(size, batch=batch), seed=0)
    for _ in range(20):  # past the redirected-ReLU warm-up (17 steps)
        r.step()
    return _time(r.step, steps, warmup=0)


def bare_step_time(model, layer, batch, size, steps):
    feat = features.feature_model(model, [layer])
    x = tf.random.stateless_uniform([batch, size, size, 3], seed=[0, 1])
    onehot = tf.one_hot(tf.range(batch), feat.outputs[0].shape[-1])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            acts = feat(x, training=False)
            value = tf.reduce_sum(tf.reduce_mean(acts, axis=[1, 2]) * onehot)
        return tape.gradient(value, x)

    return _time(step, steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--layer", default="Mixed_4c")
    args = ap.parse_args()
    model = inception_v1()
    mean_size = int(round((0.9 + 1.1) / 2 * (args.size + 16))) - 4  # standard transforms' mean output
    print(f"tf {tf.__version__}, threads intra={tf.config.threading.get_intra_op_parallelism_threads()}, "
          f"cpus={os.cpu_count()}, layer {args.layer}, size {args.size}")
    ratios = {}
    for batch in (1, 8):
        render = render_step_time(model, args.layer, batch, args.size, args.steps)
        bare = bare_step_time(model, args.layer, batch, args.size, args.steps)
        bare_t = bare_step_time(model, args.layer, batch, mean_size, args.steps)
        ratios[batch] = render / bare
        print(f"batch {batch}: render step {render * 1e3:.1f} ms ({batch / render:.1f} image-steps/s); "
              f"bare fwd+bwd {bare * 1e3:.1f} ms at {args.size}px ({batch / bare:.1f} image-steps/s), "
              f"{bare_t * 1e3:.1f} ms at {mean_size}px; ratio {render / bare:.3f} "
              f"(vs bare at {mean_size}px: {render / bare_t:.3f})")
    print(f"ratio_batch1 {ratios[1]:.3f}")
    print(f"ratio_batch8 {ratios[8]:.3f}")


if __name__ == "__main__":
    main()
