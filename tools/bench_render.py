"""Render step time vs the bare forward+backward of the same model to the same layer, per batch size.

    python tools/bench_render.py [--size 128] [--steps 30] [--layer Mixed_4c] [--batches 1,8,32,64]
                                 [--precisions float32,bfloat16]

For each batch B (image i maximises channel i of the layer, as `render --channels` and the atlas do): the
full render step (FFT/decorrelated param -> standard transforms -> BN-InceptionV1 to the layer -> channel
objective -> gradient -> Adam; steady state, i.e. the plain step after Lucid's 17 redirected-ReLU steps),
and the bare forward+backward of the whole layer (a fixed input tensor, gradient of the same objective
w.r.t. it; no param, no transforms, no optimiser). The standard transforms make the image the model sees
larger (128 -> 125..154 px), so the bare pass is timed twice: at the nominal size, and at exactly the sizes
the render's transforms produce at the same steps (size-matched: what the loop itself adds, or saves: the
render runs only the branches of the layer its channels are in). Render and bare steps are interleaved so
machine noise hits both alike; batches 32 and 64 take steps // 4 and steps // 8 steps (at least 4).

Prints image-steps/s per batch (at the median step, and at the fastest step, which machine noise cannot
flatter), the best batch size for this machine (by the fastest step), then `ratio_batch1 <x>` and, last,
`ratio_batch8 <x>` (render / bare at the nominal size, the issue's definition).

Each precision of --precisions is measured the same way (the bare pass then runs the same lowered network,
lucidtl.optvis.precision); the ratio lines are float32's, then `<precision>_ratio_batch8 <x>` and the
speed-up `<precision>_speedup_batch8 <x>` (render image-steps/s over float32's). A lower precision without a
fast path on this machine is measured anyway (the line says so): expect it to be slower there.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LUCIDTL_ALLOW_SLOW_PRECISION", "1")  # a benchmark measures what it is asked to

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lucidtl.models.inception_v1 import inception_v1  # noqa: E402
from lucidtl.optvis import features, objectives, param, precision as precision_lib  # noqa: E402
from lucidtl.optvis.render import Renderer  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bare_step(model, layer, batch, precision="float32"):
    """forward+backward to the layer, for any input size (traced once), the network in `precision`."""
    feat = features.feature_model(precision_lib.lowered(model, precision), [layer])
    onehot = tf.one_hot(tf.range(batch), feat.outputs[0].shape[-1])

    @tf.function(input_signature=[tf.TensorSpec([batch, None, None, 3], tf.float32)])
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            acts = tf.cast(feat(x, training=False), tf.float32)
            value = tf.reduce_sum(tf.reduce_mean(acts, axis=[1, 2]) * onehot)
        return tape.gradient(value, x)

    return lambda x: step(x).numpy()


def measure(model, layer, batch, size, steps, warmup=3, precision="float32"):
    obj = sum((objectives.channel(layer, i, batch=i) for i in range(batch)), 0)
    # steady state: the plain step that every step from 17 on runs (the warm-up steps are not timed)
    r = Renderer(model, obj, param_f=lambda: param.image(size, batch=batch), seed=0, relu_gradient_override=False,
                 precision=precision)
    bare = bare_step(model, layer, batch, precision)
    for _ in range(warmup):
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
    return (float(np.median(t_render)), float(np.median(t_bare)), float(np.sum(t_render) / np.sum(t_matched)),
            mean_px, float(np.min(t_render)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30, help="interleaved steps at batch <= 8")
    ap.add_argument("--layer", default="Mixed_4c")
    ap.add_argument("--batches", default="1,8,32,64", help="comma-separated; 1 and 8 give the ratio lines")
    ap.add_argument("--precisions", default="float32,bfloat16", help="comma-separated, float32 first")
    args = ap.parse_args()
    batches = [int(b) for b in str(args.batches).split(",")]
    precisions = [precision_lib.check(p) for p in str(args.precisions).split(",")]
    keras.utils.set_random_seed(0)
    model = inception_v1()
    print(f"tf {tf.__version__}, cpus {os.cpu_count()}, layer {args.layer}, size {args.size}, "
          f"{args.steps} interleaved steps (batch 32: //4, 64: //8), medians")
    ratios, speed, median = {}, {}, {}
    for prec in precisions:
        fast, where = precision_lib.fast_path(prec)
        print(f"precision {prec}: fast path here: {'yes' if fast else 'NO'} ({where})")
        for batch in batches:
            steps = max(4, args.steps // (8 if batch >= 64 else 4 if batch >= 32 else 1))
            render, bare, matched, px, fastest = measure(model, args.layer, batch, args.size, steps, precision=prec)
            ratios[prec, batch], speed[prec, batch] = render / bare, batch / fastest  # best-of: noise only adds
            median[prec, batch] = batch / render
            print(f"{prec} batch {batch}: render step {render * 1e3:.1f} ms ({batch / render:.1f} image-steps/s, "
                  f"best step {batch / fastest:.1f}); bare fwd+bwd {bare * 1e3:.1f} ms ({batch / bare:.1f} "
                  f"image-steps/s); ratio {render / bare:.3f}; size-matched ratio {matched:.3f} (transformed "
                  f"images average {px:.0f} px)", flush=True)
        best = max(batches, key=lambda b: speed[prec, b])
        print(f"{prec}: best batch size here: {best} (best-step image-steps/s {speed[prec, best]:.1f}; "
              + ", ".join(f"{b}: {speed[prec, b]:.1f}" for b in batches) + ")")
    for prec in precisions[1:]:
        for batch in (1, 8):
            if (prec, batch) in ratios:
                print(f"{prec}_ratio_batch{batch} {ratios[prec, batch]:.3f}")
                if ("float32", batch) in median:
                    print(f"{prec}_speedup_batch{batch} {median[prec, batch] / median['float32', batch]:.3f}")
    for batch in (1, 8):
        if ("float32", batch) in ratios:
            print(f"ratio_batch{batch} {ratios['float32', batch]:.3f}")


if __name__ == "__main__":
    main()
