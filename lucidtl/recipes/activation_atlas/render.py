"""Rendering an activation atlas's cells (Lucid's recipes/activation_atlas/render.py): each cell's mean
activation vector drawn as a direction at the centre position, many cells in one optimisation, and the
icons tiled into one canvas."""
import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import features, objectives
from lucidtl.optvis import transform as T
from lucidtl.optvis.param import Param, fft_decoder, to_valid_rgb
from lucidtl.optvis.render import Renderer


def icon_transforms(size):
    """render_icons' list: pad 16 (grey 0.5); jitter 4, 4, 8, 8, 8; scale 0.998^n, n = 20..39; rotate
    {-20..19} + {-10..9} + {-5..4} + 5 x 0 degrees; jitter 2; crop or pad back to size."""
    return [T.pad(16, mode="constant", constant_value=0.5), T.jitter(4), T.jitter(4), T.jitter(8), T.jitter(8),
            T.jitter(8), T.random_scale([0.998 ** n for n in range(20, 40)]),
            T.random_rotate(list(range(-20, 20)) + list(range(-10, 10)) + list(range(-5, 5)) + 5 * [0]),
            T.jitter(2), T.crop_or_pad_to(size, size)]


def direction_neuron_cossim_S(layer, vec, batch, S=None, cossim_pow=2, cossim=True):  # noqa: N802 (Lucid's name)
    """Lucid's atlas objective for icon `batch`: a = the activation vector at the centre (H//2, W//2);
    v' = v S (S given); dot = mean_c(a v'); with cossim, dot * max(0.1, dot / (1e-4 + |a|))^cossim_pow
    (no |v| in it, and a mean where objectives.direction_neuron sums: Lucid's recipe as it is)."""
    vec = np.asarray(vec, np.float32)
    if S is not None:
        vec = vec @ np.asarray(S, np.float32)

    def inner(T_):
        acts = tf.cast(T_(layer), tf.float32)
        shape = tf.shape(acts)
        a = acts[batch, shape[1] // 2, shape[2] // 2]
        dot = tf.reduce_mean(a * vec)
        if not cossim:
            return dot
        cos = dot / (1e-4 + tf.sqrt(tf.reduce_sum(a * a)))
        return dot * tf.maximum(0.1, cos) ** cossim_pow

    return objectives.Objective(inner, f"direction_neuron_cossim_S({layer}, batch={batch})", layers=(layer,))


def icon_scores(model, layer, images, directions, S=None, cossim=True, input_range=(0.0, 1.0)):
    """Each icon's own objective (direction_neuron_cossim_S, cossim_pow 2) on the icons as given (no
    transforms): what picks the best attempt, and what the records keep."""
    lo, hi = input_range
    x = tf.constant(lo + (hi - lo) * np.asarray(images, np.float32))
    acts = np.asarray(features.feature_model(model, [layer])(features.fit_input(model, x), training=False),
                      np.float64)
    a = acts[:, acts.shape[1] // 2, acts.shape[2] // 2]
    v = np.asarray(directions, np.float64)
    if S is not None:
        v = v @ np.asarray(S, np.float64)
    dot = (a * v).mean(-1)
    if not cossim:
        return dot
    return dot * np.maximum(0.1, dot / (1e-4 + np.linalg.norm(a, axis=-1))) ** 2


def seeded_icons(size, seeds, sd=0.01):
    """Lucid's param.image(size, batch=len(seeds)) (FFT, decorrelated, sigmoid) whose image i starts from a
    spectrum drawn from seeds[i] alone: a cell starts from the same picture whichever batch it is in."""
    spectrum_shape, decode = fft_decoder([len(seeds), size, size, 3])
    one = (spectrum_shape[0], 1) + tuple(spectrum_shape[2:])
    init = tf.concat([tf.random.stateless_normal(one, [int(s), 0x1C0], stddev=sd) for s in seeds], axis=1)
    spectrum = tf.Variable(init, name="spectrum")
    return to_valid_rgb(Param(lambda: decode(spectrum), [spectrum], name="fft_image"), decorrelate=True)


def render_icons(directions, model, layer, size=80, n_steps=128, verbose=False, S=None, num_attempts=3,
                 cossim=True, alpha=False, seeds=None, input_range=(0.0, 1.0), boundary=True):
    """Lucid's render_icons: one joint optimisation of len(directions) icons (Adam 0.05, no redirected
    ReLU, the icon transforms, + penalize_boundary_complexity(w=5)), n_steps updates, num_attempts tries of
    which each icon keeps its best (its own objective on the final icon). Returns (icons [n, size, size, 3]
    float32 in [0, 1], scores [n]).

    seeds: one per icon (default 0..n-1); attempt k starts from seeds + k. Lucid's alpha icons are not
    offered."""
    if alpha:
        raise InvalidArgumentError("alpha icons are not offered; use alpha=False")
    if n_steps < 1 or num_attempts < 1:
        raise InvalidArgumentError("render_icons needs n_steps >= 1 and num_attempts >= 1")
    directions = np.asarray(directions, np.float32)
    n = len(directions)
    seeds = list(range(n)) if seeds is None else [int(s) for s in seeds]
    best, best_scores = None, None
    for attempt in range(num_attempts):
        objective = sum((direction_neuron_cossim_S(layer, v, i, S, cossim=cossim) for i, v in enumerate(directions)),
                        objectives.penalize_boundary_complexity([n, size, size, 3], w=5) if boundary else 0)
        renderer = Renderer(model, objective, param_f=lambda: seeded_icons(size, [s + attempt for s in seeds]),
                            transforms=icon_transforms(size), relu_gradient_override=False, seed=seeds[0] + attempt,
                            input_range=input_range)
        icons = renderer.run(thresholds=(n_steps - 1,), verbose=verbose)[-1]
        icons = np.stack([np.rint(np.clip(i, 0, 1) * 255) / 255 for i in icons]).astype(np.float32)  # as saved
        scores = icon_scores(model, layer, icons, directions, S, cossim, input_range)
        if best is None:
            best, best_scores = icons, scores
        else:
            better = scores > best_scores
            best[better], best_scores[better] = icons[better], scores[better]
    return best, best_scores


def make_canvas(icon_batch, coordinates, grid_size):
    """Lucid's make_canvas: a white canvas with icon i in block row `coordinates[i][0]` and column
    `coordinates[i][1]` (the layout's first axis runs down)."""
    icon_batch = np.asarray(icon_batch)
    h, w, c = icon_batch.shape[1:]
    canvas = np.ones((grid_size, grid_size, h, w, c), icon_batch.dtype)
    for icon, (x, y) in zip(icon_batch, coordinates):
        canvas[int(x), int(y)] = icon
    return canvas.transpose(0, 2, 1, 3, 4).reshape(grid_size * h, grid_size * w, c)
