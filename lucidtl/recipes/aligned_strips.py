"""Aligned strips: one channel drawn at every checkpoint of a run in one optimisation, so that the pictures
differ only where the network changed (the aligned interpolation of "Differentiable Image
Parameterizations", Mordvintsev et al., Distill 2018; Lucid's multi_interpolation_basis idea).

Image k (checkpoint k) = a shared low-resolution part + its own full-resolution FFT part, through Lucid's
decorrelated colours and sigmoid. The shared part follows Lucid's aligned-interpolation notebook: for a
128 px strip, low-resolution tensors of 64, 32 and 16 px that every image shares, and of 16 and 8 px with
two values along the strip, interpolated linearly from the first checkpoint to the last (an 8 px one also
shared). Each image is seen only by its own checkpoint's model: a render's batch is split by checkpoint
and every part goes through its model, so each image still climbs its own checkpoint's objective.
"""
import keras
import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import features, objectives
from lucidtl.optvis.param import Param, fft_decoder, to_valid_rgb
from lucidtl.optvis.render import Renderer

# (values along the strip, size divisor): the notebook's (1,64,64) (1,32,32) (1,16,16) (2,16,16) (1,8,8)
# (2,8,8) at 128 px
LEVELS = ((1, 2), (1, 4), (1, 8), (2, 8), (1, 16), (2, 16))


def _resize(t, size):
    """TF1 bilinear resize (Lucid's lowres_tensor: align_corners=False, half_pixel_centers=False)."""
    return tf.raw_ops.ResizeBilinear(images=t, size=size, align_corners=False, half_pixel_centers=False)


def strip_param(n_channels, n_checkpoints, size, seeds, sd=0.01, shared=True):
    """[n_channels * n_checkpoints, size, size, 3] images, channel-major (image c * K + k: channel c at
    checkpoint k). Every image of a channel starts from the same own part (drawn from seeds[c]); with
    shared=False there is no shared part (the pictures are then independent renders from one start)."""
    C, K = int(n_channels), int(n_checkpoints)
    spectrum_shape, decode = fft_decoder([C * K, size, size, 3])
    one = (spectrum_shape[0], 1) + tuple(spectrum_shape[2:])
    init = tf.concat([tf.random.stateless_normal(one, [int(s), 0x57], stddev=sd) for s in seeds for _ in range(K)], 1)
    spectrum = tf.Variable(init, name="own_spectrum")
    levels = []
    for i, (m, div) in enumerate(LEVELS if shared else ()):
        side = max(1, size // div)
        value = tf.concat([tf.random.stateless_normal([1, m, side, side, 3], [int(s), 0x58 + i], stddev=sd)
                           for s in seeds], 0)
        levels.append((m, tf.Variable(value, name=f"shared_{m}x{side}")))
    t = np.linspace(0.0, 1.0, K, dtype=np.float32).reshape(1, K, 1, 1, 1) if K > 1 else np.zeros((1, 1, 1, 1, 1),
                                                                                               np.float32)

    def make():
        image = tf.reshape(decode(spectrum), [C, K, size, size, 3])
        for m, var in levels:
            up = tf.reshape(_resize(tf.reshape(var, [C * m] + var.shape[2:].as_list()), [size, size]),
                            [C, m, size, size, 3])
            if m == 1:
                image += up
            else:  # from the first checkpoint's value to the last's, linearly along the strip
                image += (1.0 - t) * up[:, :1] + t * up[:, 1:]
        return tf.reshape(image, [C * K, size, size, 3])

    return to_valid_rgb(Param(make, [spectrum] + [v for _, v in levels], name="strip"), decorrelate=True)


class _PerCheckpoint(keras.layers.Layer):
    """A batch of C * K images (channel-major) -> each checkpoint's endpoint on its own images."""

    def __init__(self, parts, channels, name):
        super().__init__(name=name)
        self.parts, self.channels = parts, channels

    def call(self, x):
        K = len(self.parts)
        shape = tf.shape(x)
        x = tf.reshape(x, tf.concat([[-1, K], shape[1:]], 0))
        outs = [part(xk, training=False) for part, xk in zip(self.parts, tf.unstack(x, num=K, axis=1))]
        out = tf.stack(outs, 1)
        return tf.reshape(out, tf.concat([[-1], tf.shape(out)[2:]], 0))

    def compute_output_shape(self, input_shape):
        return (None, None, None, self.channels)


def strip_layer(layer):
    """The name of `layer` in the strip model: Keras names hold no "/", which a nested path does."""
    return str(layer).replace("/", "__")


def per_checkpoint_model(models, layer):
    """A Keras model whose layer strip_layer(layer) is each checkpoint's `layer` on that checkpoint's images."""
    parts = [features.feature_model(m, [layer]) for m in models]
    channels = features.channel_count(models[0], layer)
    first = models[0].inputs[0]
    inp = keras.Input(tuple(first.shape[1:]), name="strip_images")
    return keras.Model(inp, _PerCheckpoint(parts, channels, strip_layer(layer))(inp), name="strip")


def strip_objective(layer, channels, n_checkpoints):
    """Image c * K + k maximises channel(layer, channels[c]) (seen by checkpoint k's model)."""
    terms = [objectives.channel(layer, c, batch=i * n_checkpoints + k) for i, c in enumerate(channels)
             for k in range(n_checkpoints)]
    return sum(terms[1:], terms[0])


def render_strips(models, layer, channels, size=128, steps=512, seed=0, aligned=True, transforms="standard",
                  relu_gradient_override=True, input_range=(0.0, 1.0), progress=False, callback=None,
                  thresholds=None):
    """Each channel at every checkpoint (models: one per checkpoint, in run order), in one optimisation.

    Returns {threshold: float32 [len(channels), K, size, size, 3]}; aligned=False: no shared part (the
    independent renders it is compared with, all from the same start). Lucid's render defaults otherwise
    (Adam 0.05, the standard transforms, the redirected ReLU gradient for the first steps)."""
    if len(models) < 1:
        raise InvalidArgumentError("aligned strips need at least one checkpoint")
    channels = [int(c) for c in channels]
    K = len(models)
    model = per_checkpoint_model(models, layer)
    seeds = [(int(seed) * 7919 + c) % (2**31 - 1) for c in channels]
    renderer = Renderer(model, strip_objective(strip_layer(layer), channels, K),
                        param_f=lambda: strip_param(len(channels), K, size, seeds, shared=aligned),
                        transforms=transforms, relu_gradient_override=relu_gradient_override, seed=seed,
                        input_range=input_range)
    thresholds = sorted(set(thresholds or ()) | {int(steps)})
    images = renderer.run(thresholds, verbose=False, progress=progress, callback=callback)
    return {t: img.reshape(len(channels), K, size, size, 3) for t, img in zip(thresholds, images)}


def own_objectives(models, layer, channels, strips, input_range=(0.0, 1.0)):
    """[len(channels), K]: channel c's mean activation in checkpoint k's model on strip image (c, k)."""
    lo, hi = input_range
    out = np.zeros(strips.shape[:2])
    for k, m in enumerate(models):
        fm = features.feature_model(m, [layer])
        x = tf.constant(lo + (hi - lo) * strips[:, k].astype(np.float32))
        acts = np.asarray(fm(features.fit_input(m, x), training=False), np.float64)
        for i, c in enumerate(channels):
            out[i, k] = acts[i, ..., c].mean()
    return out


def neighbour_correlation(strips):
    """Mean Pearson correlation of the pixels of neighbouring checkpoints' pictures ([C, K, H, W, 3])."""
    strips = np.asarray(strips, np.float64)
    rs = []
    for strip in strips:
        for a, b in zip(strip[:-1], strip[1:]):
            rs.append(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    return float(np.mean(rs))


def strip_seeds(seed, channels):
    return [(int(seed) * 7919 + int(c)) % (2**31 - 1) for c in channels]


def aligned_render(run, layer="Mixed_4c", channels="0:8", size=128, steps=512, thresholds=(512,),
                   transforms="standard", seed=0, out="out", batch_size=32, relu_gradient_override=True,
                   progress=True, overwrite=False):
    """`python -m lucidtl.render --aligned`: every channel at every checkpoint of `run`, as aligned strips.

    Writes <out>/<layer>_<channel>_iter_<i>_<t>.png, a grid (a row per channel, a column per checkpoint)
    and <layer>_aligned_render.json (settings, each image's own-checkpoint objective, the mean pixel
    correlation of neighbouring checkpoints). batch_size images per optimisation: floor(batch_size / K)
    channels (at least one). A killed render resumes: finished channel batches are not drawn again."""
    import glob
    import json
    import os

    from lucidtl import imageio
    from lucidtl.atomic import clear_stale_pattern
    from lucidtl.optvis import features as F
    from lucidtl.run import Run
    from lucidtl.selection import parse_channels

    run = Run.of(run)
    iterations = list(run.iterations)
    models = [run.model_at(it) for it in iterations]
    input_range = run.input_range
    chans = parse_channels(channels, F.channel_count(models[0], layer))
    K = len(models)
    per = max(1, int(batch_size) // K)
    tag = str(layer).replace("/", "_")
    settings = {"run": os.path.abspath(os.fspath(run)), "iterations": iterations, "layer": str(layer),
                "channels": chans, "size": size, "thresholds": list(thresholds), "transforms": transforms,
                "seed": seed, "batch_size": batch_size, "aligned": True, "input_range": list(input_range),
                "relu_gradient_override": bool(relu_gradient_override), "png_encoding": "uint8 = round(255 * image)"}
    record_path = os.path.join(out, f"{tag}_aligned_render.json")
    previous = {}
    if os.path.isfile(record_path) and not overwrite:
        with open(record_path, encoding="utf-8") as f:
            previous = json.load(f)
        changed = [k for k, v in settings.items() if previous.get(k) != v]
        if changed:
            raise InvalidArgumentError(f"{out} holds an aligned render with other settings ({changed[0]}); use "
                                       "another --out, or --overwrite to replace it")
    values = dict(previous.get("objective_values", {}))
    clear_stale_pattern(out, f"{glob.escape(tag)}_*")
    png = lambda c, it, t: os.path.join(out, f"{tag}_{c:04d}_iter_{it:06d}_{t}.png")  # noqa: E731
    last = max(thresholds)
    finals, pngs = {}, []
    chunks = [chans[i:i + per] for i in range(0, len(chans), per)]
    for chunk in chunks:
        key = f"{chunk[0]}-{chunk[-1]}"
        paths = [png(c, it, t) for t in thresholds for c in chunk for it in iterations]  # the order of writing
        if key in values and all(os.path.exists(p) for p in paths):
            for c in chunk:
                finals[c] = np.stack([imageio.load_png(png(c, it, last)) for it in iterations])
            pngs += paths
            continue
        got = render_strips(models, layer, chunk, size, last, seed, True, transforms, relu_gradient_override,
                            input_range, progress, thresholds=thresholds)
        saved = {t: np.rint(np.clip(v, 0, 1) * 255) / 255 for t, v in got.items()}
        values[key] = own_objectives(models, layer, chunk, saved[last].astype(np.float32), input_range).tolist()
        imageio.save_json(dict(settings, status="running", objective_values=values), record_path)
        for t in thresholds:
            for i, c in enumerate(chunk):
                for k, it in enumerate(iterations):
                    pngs.append(imageio.save_png(saved[t][i, k], png(c, it, t)))
        for i, c in enumerate(chunk):
            finals[c] = saved[last][i]
    strips = np.stack([finals[c] for c in chans])
    grid = imageio.save_grid([list(s) for s in strips], os.path.join(out, f"{tag}_aligned_grid.png"),
                             row_labels=[f"ch {c}" for c in chans], col_labels=[f"iter {it}" for it in iterations])
    record = imageio.save_json(dict(settings, status="complete", objective_values=values,
                                    neighbour_correlation=round(neighbour_correlation(strips), 6),
                                    pngs=[os.path.basename(p) for p in pngs]), record_path)
    return pngs, grid, record
