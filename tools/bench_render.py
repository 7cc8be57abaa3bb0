"""Render step time vs the bare forward+backward of the same model to the same layer.

    python tools/bench_render.py [--size 128] [--steps 30] [--layer Mixed_4c]

For batch 1 and 8: the full render step (FFT/decorrelated param -> standard transforms -> InceptionV1 to
the layer -> channel objective -> gradient -> Adam), and the bare forward+backward (a fixed input tensor,
gradient of the same objective w.r.t. it; no param, no transforms, no optimiser). The standard transforms
make the image the model sees larger (128 -> 125..154 px), so the bare pass is timed twice: at the
nominal size, and at exactly the sizes the render's transforms produce at the same steps (size-matched:
what the loop itself adds). Render and bare steps are interleaved so machine noise hits both alike.
Last line: `ratio_batch8 <x>` (render / bare at the nominal size, the issue's definition).
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


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bare_step(model, layer, batch):
    """forward+backward to the layer, for any input size (traced once)."""
    feat = features.feature_model(model, [layer])
    onehot = tf.one_hot(tf.range(batch), feat.outputs[0].shape[-1])

    @tf.function(input_signature=[tf.TensorSpec([batch, None, None, 3], tf.float32)])
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(tf.reduce_mean(feat(x, training=False), axis=[1, 2]) * onehot)
        return tape.gradient(value, x)

    return step


def measure(model, layer, batch, size, steps, warmup=20):
    obj = sum((objectives.channel(layer, i, batch=i) for i in range(batch)), 0)
    r = Renderer(model, obj, param_f=lambda: param.image(size, batch=batch), seed=0)
    bare = bare_step(model, layer, batch)
    for _ in range(warmup):  # past the redirected-ReLU warm-up (17 steps) and the tracing
        r.step()
    probe = tf.zeros([batch, size, size, 3])
    seen = [tuple(r.transform(probe, tf.random.experimental.stateless_fold_in(r._seed_pair, warmup + i)).shape[1:3])
            for i in range(steps)]
    nominal = tf.random.stateless_uniform([batch, size, size, 3], seed=[0, 1])
    inputs = {hw: tf.random.stateless_uniform([batch, *hw, 3], seed=[0, 2]) for hw in set(seen)}
    for x in [nominal, *inputs.values()]:  # warm each size once
        bare(x)
    t_render, t_bare, t_matched = [], [], []
    for hw in seen:
        t_render.append(_timed(r.step))
        t_bare.append(_timed(lambda: bare(nominal)))
        t_matched.append(_timed(lambda hw=hw: bare(inputs[hw])))
    mean_px = float(np.mean([h * w for h, w in seen])) ** 0.5
    return float(np.median(t_render)), float(np.median(t_bare)), float(np.sum(t_render) / np.sum(t_matched)), mean_px


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--layer", default="Mixed_4c")
    args = ap.parse_args()
    model = inception_v1()
    print(f"tf {tf.__version__}, cpus {os.cpu_count()}, layer {args.layer}, size {args.size}, "
          f"{args.steps} interleaved steps, medians")
    ratios = {}
    for batch in (1, 8):
        render, bare, matched, px = measure(model, args.layer, batch, args.size, args.steps)
        ratios[batch] = render / bare
        print(f"batch {batch}: render step {render * 1e3:.1f} ms ({batch / render:.1f} image-steps/s); "
              f"bare fwd+bwd {bare * 1e3:.1f} ms ({batch / bare:.1f} image-steps/s); ratio {render / bare:.3f}; "
              f"size-matched ratio {matched:.3f} (transformed images average {px:.0f} px)")
    print(f"ratio_batch1 {ratios[1]:.3f}")
    print(f"ratio_batch8 {ratios[8]:.3f}")


if __name__ == "__main__":
    main()
