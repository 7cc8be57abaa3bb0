"""A small ViT: the render step vs the bare forward+backward, and what the patch transform set changes.

    python tools/bench_vit.py [--size 64] [--patch 8] [--layers 2] [--hidden 64] [--steps 20]
                              [--render-steps 128] [--neurons 4]

The model is a random-weight keras-hub ViTBackbone (image --size, patch --patch, --layers blocks, --hidden
width, 4 heads, MLP 2 x hidden); the objective is an MLP neuron (the GELU output of the last block's
`mlp/dense_1`, the centre patch), a batch of --neurons images, image i its own neuron.

1. Speed: the steady-state render step (FFT/decorrelated param -> patch transforms -> the tapped model ->
   objective -> gradient -> Adam) and the bare forward+backward (a fixed input, gradient of the same objective
   w.r.t. it), interleaved; prints `ratio <x>` (render / bare, medians).
2. Quality, standard vs patch transforms (same seeds, --render-steps steps): the activation reached on the
   image as rendered; the same averaged over the image shifted by 1..p-1 px (a picture that only works where
   the patch grid falls collapses when shifted off it); and the share of the image's power spectrum on the
   patch-grid harmonics (frequencies k * size / p, the period of the patch embedding; the share a spectrum
   spread evenly would have is printed beside it), for the FFT / decorrelated and the pixel parameterisation
   (--params). Prints `<param> <set> activation <a> shifted <s> grid_power <g>`.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lucidtl.models.keras_hub import require  # noqa: E402
from lucidtl.optvis import features, objectives, param  # noqa: E402
from lucidtl.optvis.render import Renderer  # noqa: E402


def build(size, patch, layers, hidden):
    keras.utils.set_random_seed(0)
    return require().models.ViTBackbone(image_shape=(size, size, 3), patch_size=patch, num_layers=layers,
                                        num_heads=4, hidden_dim=hidden, mlp_dim=2 * hidden)


def objective(layer, count):
    return sum((objectives.neuron(layer, i, batch=i) for i in range(count)), 0)


def bare_step(model, layer, batch, size):
    feat = features.feature_model(model, [layer])
    onehot = tf.one_hot(tf.range(batch), feat.outputs[0].shape[-1])

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            acts = feat(x, training=False)
            h, w = acts.shape[1] // 2, acts.shape[2] // 2
            value = tf.reduce_sum(acts[:, h, w] * onehot)
        return tape.gradient(value, x)

    x = tf.random.stateless_uniform([batch, size, size, 3], seed=[0, 1])
    return lambda: step(x).numpy()


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def speed(model, layer, batch, size, steps):
    r = Renderer(model, objective(layer, batch), param_f=lambda: param.image(size, batch=batch), seed=0,
                 transforms="patch")
    bare = bare_step(model, layer, batch, size)
    for _ in range(20):  # past the redirected-ReLU warm-up (a ViT has no ReLU: the two steps are alike)
        r.step()
    bare()
    t_render, t_bare = [], []
    for _ in range(steps):
        t_render.append(timed(r.step))
        t_bare.append(timed(bare))
    return float(np.median(t_render)), float(np.median(t_bare))


def grid_power(images, patch):
    """Share of each image's (grey, mean-removed) power spectrum on the patch-grid harmonics; and the share
    those frequency bins have of all bins."""
    grey = images.mean(-1)
    grey = grey - grey.mean((1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    size = grey.shape[1]
    step = size // patch  # the patch grid's fundamental frequency index
    idx = np.arange(size)
    on = (idx % step == 0) & (idx != 0)
    mask = on[:, None] | on[None, :]
    return float((power[:, mask].sum((1,)) / power.sum((1, 2))).mean()), float(mask.mean())


def quality(model, layer, count, size, patch, steps, transforms, fft=True):
    r = Renderer(model, objective(layer, count), seed=0, transforms=transforms,
                 param_f=lambda: param.image(size, batch=count, fft=fft, decorrelate=fft))
    r.run((steps,), verbose=False)
    image = r.image()
    reached = r.evaluate(image) / count
    shifted = np.mean([r.evaluate(np.roll(image, (d, d), axis=(1, 2))) for d in range(1, patch)]) / count
    share, bins = grid_power(image, patch)
    return reached, shifted, share, bins


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="interleaved timed steps")
    ap.add_argument("--render-steps", type=int, default=128)
    ap.add_argument("--neurons", type=int, default=4, help="batch: image i maximises neuron i")
    ap.add_argument("--params", default="fft,pixel", help="the quality comparison for these parameterisations")
    args = ap.parse_args()
    model = build(args.size, args.patch, args.layers, args.hidden)
    layer = f"transformer_block_{args.layers}/mlp/dense_1"
    print(f"tf {tf.__version__}, cpus {os.cpu_count()}, ViT {args.size}px patch {args.patch}, {args.layers} blocks, "
          f"hidden {args.hidden}, layer {layer}, batch {args.neurons}")
    render, bare = speed(model, layer, args.neurons, args.size, args.steps)
    print(f"render step {render * 1e3:.1f} ms, bare fwd+bwd {bare * 1e3:.1f} ms")
    print(f"ratio {render / bare:.3f}")
    for kind in args.params.split(","):
        for transforms in ("standard", "patch"):
            reached, shifted, share, bins = quality(model, layer, args.neurons, args.size, args.patch,
                                                    args.render_steps, transforms, fft=kind == "fft")
            print(f"{kind} {transforms} activation {reached:.3f} shifted {shifted:.3f} grid_power {share:.3f} "
                  f"(even spectrum: {bins:.3f})", flush=True)


if __name__ == "__main__":
    main()
