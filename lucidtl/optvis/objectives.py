"""Objectives: what a render maximises, as an algebra of functions of the activations.

An Objective wraps fn(T) -> float32 tensor, where T(name) is the activation of layer `name` on the
transformed batch and T("input") the untransformed image. `obj.layers` names the layers it reads, so the
render loop extracts exactly those. Means and sums run over every axis, batch included, unless `batch=k`
restricts an objective to image k of the batch.
"""
import functools
import numbers

import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis.features import SCORE

INPUT = "input"


def _is_number(x):
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _fmt(x):
    return f"{x:g}" if isinstance(x, float) else str(x)


class Objective:
    """fn(T) -> tensor, with the layers it reads. Supports +, -, * (numbers or objectives), / number."""

    def __init__(self, fn, name="", description="", layers=(), channels=None, picks=None):
        """layers=None: not known in advance; the render loop finds them with a dry run of fn.
        channels: {layer: frozenset of channel indices} for layers read at those channels only (others: all).
        picks: set when the objective is a plain sum of channel means, ((layer, channel, batch), ...)."""
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "objective")
        self.description = description or self.name
        self.layers = None if layers is None else frozenset(layer for layer in layers if layer != INPUT)
        self.channels = {} if self.layers is None else {k: frozenset(v) for k, v in (channels or {}).items()
                                                         if k in self.layers}
        self.picks = None if picks is None else tuple(picks)

    def __call__(self, T):
        if self.picks and getattr(T, "sole_reader", False):
            return _sum_of_channel_means(self, T)
        return self.fn(T)

    def __repr__(self):
        return f"Objective({self.description})"

    __str__ = lambda self: self.description  # noqa: E731

    @staticmethod
    def _lift(other):
        if isinstance(other, Objective):
            return other
        if _is_number(other):  # 0 is the start of sum(objectives, 0): an empty sum of channel means
            return Objective(lambda T: tf.constant(float(other)), _fmt(other), picks=() if other == 0 else None)
        raise InvalidArgumentError(f"cannot combine an objective with {type(other).__name__}; "
                                   "use numbers or objectives")

    def _combine(self, other, op, symbol):
        other = self._lift(other)
        layers = None if None in (self.layers, other.layers) else self.layers | other.layers
        name = f"{self.name} {symbol} {other.name}"
        channels = _merge_channels(self, other, layers)
        if op is tf.add and self.picks is not None and other.picks is not None:  # still a sum of channel means
            return Objective(lambda T: op(self.fn(T), other.fn(T)), name, layers=layers, channels=channels,
                             picks=self.picks + other.picks)
        return Objective(lambda T: op(self(T), other(T)), name, layers=layers, channels=channels)

    def __add__(self, other):
        return self._combine(other, tf.add, "+")

    def __radd__(self, other):
        return self._lift(other)._combine(self, tf.add, "+")

    def __sub__(self, other):
        return self._combine(other, tf.subtract, "-")

    def __rsub__(self, other):
        return self._lift(other)._combine(self, tf.subtract, "-")

    def __neg__(self):
        return Objective(lambda T: -self(T), f"-({self.name})", layers=self.layers, channels=self.channels)

    def __mul__(self, other):
        return self._combine(other, tf.multiply, "*")

    def __rmul__(self, other):
        return self._lift(other)._combine(self, tf.multiply, "*")

    def __truediv__(self, other):
        if not _is_number(other):
            raise InvalidArgumentError("an objective can only be divided by a number")
        if other == 0:
            raise InvalidArgumentError("cannot divide an objective by zero")
        return self._combine(other, tf.divide, "/")

    @staticmethod
    def sum(objectives):
        objectives = list(objectives)
        if not objectives:
            raise InvalidArgumentError("Objective.sum needs at least one objective")
        return sum(objectives[1:], objectives[0])


def objective(name, *layers):
    """Decorator: turn `inner(T)` into an Objective named `name` reading `layers`."""
    return lambda fn: Objective(fn, name, layers=layers)


def _merge_channels(a, b, layers):
    """The channels of each layer that a combination of a and b reads (absent: all of them)."""
    if layers is None:
        return {}
    merged = {}
    for layer in layers:
        parts = [o.channels.get(layer) if layer in o.layers else frozenset() for o in (a, b)]
        if None not in parts:
            merged[layer] = parts[0] | parts[1]
    return merged


def _sum_of_channel_means(obj, T):
    """obj(T) for a sum of channel means (obj.picks), its gradient written in one pass.

    The value is obj.fn's, unchanged. Autodiff would give each term's gradient as a full-size zero tensor
    with one channel set, and add the N of them (N^2 work for a batch of N images); here the same numbers
    (upstream / count, at the picked positions only) are written into one tensor per layer. The render
    loop asks for it (T.sole_reader) only where the objective is the sole reader of its activations, so
    that no other gradient is added to these in a different order."""
    layers = list(dict.fromkeys(layer for layer, _, _ in obj.picks))
    acts = [T(layer) for layer in layers]
    picks = {layer: _resolved_picks(obj.picks, layer, act) for layer, act in zip(layers, acts)}
    if any(p is None for p in picks.values()):  # overlapping or out-of-range picks: plain autodiff
        return obj.fn(T)

    @tf.custom_gradient
    def total(*xs):
        given = dict(zip(layers, xs))
        value = obj.fn(lambda name: given[name] if name in given else T(name))

        def grad(dy):
            return [_channel_means_grad(dy, x, picks[layer]) for layer, x in zip(layers, xs)]

        return value, grad

    return total(*acts)


def _resolved_picks(all_picks, layer, act):
    """[(batch or None, channel >= 0)] of `layer`, or None where autodiff must handle them (unknown sizes,
    indices out of range, the same position picked twice)."""
    n, c = act.shape[0], act.shape[-1]
    if n is None or c is None or act.shape.rank is None or act.shape.rank < 2:
        return None
    out, seen = [], set()
    for name, ch, b in all_picks:
        if name != layer:
            continue
        if not -c <= ch < c or (b is not None and not 0 <= b < n):
            return None
        ch = ch % c
        cells = {(i, ch) for i in range(n)} if b is None else {(b, ch)}
        if cells & seen:
            return None
        seen |= cells
        out.append((b, ch))
    return out


def _channel_means_grad(dy, x, picks):
    """d(sum of the picks' channel means)/dx: dy / count at each picked (image, channel), 0 elsewhere,
    computed as autodiff of reduce_mean computes it."""
    shape = tf.shape(x)
    n, c = x.shape[0], x.shape[-1]
    per_image = tf.reduce_prod(shape[1:-1])
    indices, updates = [], []
    for b, ch in picks:
        count = per_image * (n if b is None else 1)
        g = tf.math.truediv(dy, tf.cast(count, dy.dtype))
        for i in range(n) if b is None else (b,):
            indices.append((i, ch))
            updates.append(g)
    table = tf.scatter_nd(tf.constant(indices, tf.int32), tf.stack(updates), [n, c])
    table = tf.reshape(table, [n] + [1] * (x.shape.rank - 2) + [c])
    return tf.cast(tf.broadcast_to(table, shape), x.dtype)


def _f32(t):
    return tf.cast(t, tf.float32)


def _pick(acts, batch):
    """All images, or image `batch` (keeping a batch axis of 1)."""
    return acts if batch is None else acts[batch:batch + 1]


def _centre(acts, x, y):
    """Lucid's neuron position: x indexes rows (default H//2), y columns (default W//2)."""
    shape = tf.shape(acts)
    x_ = shape[1] // 2 if x is None else x
    y_ = shape[2] // 2 if y is None else y
    return acts[:, x_, y_]


def _label(name, *args, batch=None):
    parts = ", ".join(_fmt(a) if not isinstance(a, np.ndarray) else "vec" for a in args)
    return f"{name}({parts}{'' if batch is None else f', batch={batch}'})"


def neuron(layer, n_channel, x=None, y=None, batch=None):
    """The unit at (x, y) (default: centre; x = row H//2, y = column W//2) of channel n, averaged over images."""
    @objective(_label("neuron", layer, n_channel, batch=batch), layer)
    def inner(T):
        return tf.reduce_mean(_centre(_pick(_f32(T(layer)), batch), x, y)[..., n_channel])
    return inner


def channel(layer, n_channel, batch=None):
    """mean(A[..., n]): the paper's average-pooled channel activation."""
    def inner(T):
        return tf.reduce_mean(_pick(_f32(T(layer)), batch)[..., n_channel])

    known = _is_index(n_channel) and (batch is None or _is_index(batch)) and layer != INPUT
    return Objective(inner, _label("channel", layer, n_channel, batch=batch), layers=(layer,),
                     channels={layer: {int(n_channel)}} if known else None,
                     picks=((layer, int(n_channel), None if batch is None else int(batch)),) if known else None)


def _is_index(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _dot_cossim(acts, vec, cossim_pow):
    """mean(dot) or mean(dot * max(0.1, cos)^pow) over positions; dot and cos along the channel axis."""
    dot = tf.reduce_sum(acts * vec, -1)
    if cossim_pow == 0:
        return tf.reduce_mean(dot)
    norm_a = tf.sqrt(tf.reduce_sum(acts * acts, -1))
    norm_v = tf.sqrt(tf.reduce_sum(vec * vec, -1))
    cos = dot / (1e-4 + norm_a) / (1e-4 + norm_v)
    return tf.reduce_mean(dot * tf.maximum(0.1, cos) ** cossim_pow)


def direction(layer, vec, cossim_pow=0, batch=None):
    """Activations along the channel-space direction vec, at every position."""
    vec = np.asarray(vec, np.float32)

    @objective(_label("direction", layer, vec, batch=batch), layer)
    def inner(T):
        return _dot_cossim(_pick(_f32(T(layer)), batch), vec, cossim_pow)
    return inner


direction_cossim = direction  # Lucid 0.3.10's alias


def direction_neuron(layer, vec, x=None, y=None, cossim_pow=0, batch=None):
    """direction() at the neuron position only."""
    vec = np.asarray(vec, np.float32)

    @objective(_label("direction_neuron", layer, vec, batch=batch), layer)
    def inner(T):
        return _dot_cossim(_centre(_pick(_f32(T(layer)), batch), x, y), vec, cossim_pow)
    return inner


def dot_compare(layer, batch=1, cossim_pow=0):
    """Lucid's dot_compare (caricatures): with t = image 0's activations (the target) and c = image
    `batch`'s, over all of H x W x C: dot = sum(t * c), s = max(0.1, dot / (1e-6 + |c|)), value dot * s^pow."""
    @objective(_label("dot_compare", layer, batch=batch), layer)
    def inner(T):
        acts = _f32(T(layer))
        target, image = acts[0], acts[batch]
        dot = tf.reduce_sum(target * image)
        s = tf.maximum(0.1, dot / (1e-6 + tf.sqrt(tf.reduce_sum(image * image))))
        return dot * s ** cossim_pow
    return inner


def _crop_to(t, h, w):
    """Central crop of [B,H,W,C] (or [H,W,C]) to h x w."""
    shape = tf.shape(t)
    top, left = (shape[-3] - h) // 2, (shape[-2] - w) // 2
    return t[..., top:top + h, left:left + w, :]


def tensor_direction(layer, vec, cossim_pow=0, batch=None):
    """Lucid's tensor_direction: vec is an [h,w,C] (or [1,h,w,C]) activation pattern; the mean over
    images and positions of dot(A, vec) * max(0.1, cos(A, vec))^pow, dot and cos along the channel axis
    at each position (as direction()). The activations are cropped centrally to vec's h x w, as in Lucid;
    where the layer is smaller than vec (transforms shrink it), vec is cropped centrally too."""
    vec = np.asarray(vec, np.float32)
    if vec.ndim == 4:
        vec = vec[0]
    if vec.ndim != 3:
        raise InvalidArgumentError(f"tensor_direction needs vec of shape [h, w, C], got {vec.shape}")

    @objective(_label("tensor_direction", layer, vec, batch=batch), layer)
    def inner(T):
        acts = _pick(_f32(T(layer)), batch)
        shape = tf.shape(acts)
        h = tf.minimum(shape[1], vec.shape[0])
        w = tf.minimum(shape[2], vec.shape[1])
        return _dot_cossim(_crop_to(acts, h, w), _crop_to(tf.constant(vec), h, w)[None], cossim_pow)
    return inner


def deepdream(layer):
    """mean(A^2) (Mordvintsev et al., 2015)."""
    @objective(_label("deepdream", layer), layer)
    def inner(T):
        return tf.reduce_mean(_f32(T(layer)) ** 2)
    return inner


def class_logit(layer, label, batch=None):
    """sum(scores[:, label]) of a [B, classes] layer; layer None (or features.SCORE): the model's class score,
    the pre-activation of its final softmax / sigmoid wherever it sits (optvis.features.class_score)."""
    layer = SCORE if layer is None else layer

    @objective(_label("class_logit", layer, label, batch=batch), layer)
    def inner(T):
        return tf.reduce_sum(_pick(_f32(T(layer)), batch)[:, label])
    return inner


def class_probability(layer, label, batch=None):
    """sum(softmax(logits)[:, label]): like class_logit, on the softmax of `layer`'s last axis (None: the
    class score)."""
    layer = SCORE if layer is None else layer

    @objective(_label("class_probability", layer, label, batch=batch), layer)
    def inner(T):
        return tf.reduce_sum(tf.nn.softmax(_pick(_f32(T(layer)), batch), axis=-1)[:, label])
    return inner


def total_variation(layer=INPUT):
    """Per image: sum |row differences| + sum |column differences| (a [B] vector, as in Lucid)."""
    @objective(_label("total_variation", layer), layer)
    def inner(T):
        return tf.image.total_variation(_f32(T(layer)))
    return inner


def L1(layer=INPUT, constant=0, batch=None):  # noqa: N802 (Lucid's name)
    """sum |A - constant|."""
    @objective(_label("L1", layer, batch=batch), layer)
    def inner(T):
        return tf.reduce_sum(tf.abs(_pick(_f32(T(layer)), batch) - constant))
    return inner


def L2(layer=INPUT, constant=0, epsilon=1e-6, batch=None):  # noqa: N802 (Lucid's name)
    """sqrt(epsilon + sum (A - constant)^2)."""
    @objective(_label("L2", layer, batch=batch), layer)
    def inner(T):
        return tf.sqrt(epsilon + tf.reduce_sum((_pick(_f32(T(layer)), batch) - constant) ** 2))
    return inner


def blur(x, w=3):
    """Lucid's box-ish blur: a w x w kernel of 0.5 with 1.0 inside the border ring, per channel, SAME,
    normalised by the same convolution of ones."""
    k = np.full([w, w], 0.5, np.float32)
    k[1:-1, 1:-1] = 1.0
    kernel = tf.constant(np.tile(k[:, :, None, None], [1, 1, x.shape[-1], 1]))

    def conv(t):
        return tf.nn.depthwise_conv2d(t, kernel, [1, 1, 1, 1], "SAME")

    return conv(x) / conv(tf.ones_like(x))


def blur_input_each_step():
    """0.5 * sum((x - stop_gradient(blur(x)))^2); maximising -k times it blurs the input each step."""
    @objective("blur_input_each_step()")
    def inner(T):
        x = T(INPUT)
        return 0.5 * tf.reduce_sum((x - tf.stop_gradient(blur(x))) ** 2)
    return inner


def blur_alpha_each_step():
    """blur_input_each_step() on the alpha channel (T("input")[..., 3:4]) only."""
    @objective("blur_alpha_each_step()")
    def inner(T):
        x = T(INPUT)[..., 3:4]
        return 0.5 * tf.reduce_sum((x - tf.stop_gradient(blur(x))) ** 2)
    return inner


def _static_batch(t, name):
    n = t.shape[0]
    if n is None:
        raise InvalidArgumentError(f"{name} needs a known batch size; build the image with param.image(..., batch=N)")
    return n


def channel_interpolate(layer1, n_channel1, layer2, n_channel2):
    """Across the batch, from 100% channel n1 of layer1 (image 0) to 100% channel n2 of layer2 (image N-1)."""
    @objective(_label("channel_interpolate", layer1, n_channel1, layer2, n_channel2), layer1, layer2)
    def inner(T):
        a1, a2 = _f32(T(layer1))[..., n_channel1], _f32(T(layer2))[..., n_channel2]
        n = _static_batch(a1, "channel_interpolate")
        weights = np.arange(n) / max(n - 1, 1)
        return sum((1 - wt) * tf.reduce_mean(a1[i]) + wt * tf.reduce_mean(a2[i]) for i, wt in enumerate(weights))
    return inner


def alignment(layer, decay_ratio=2):
    """-sum_{d=1..4} sum_i mean((A[i] - A[i+d])^2) / decay_ratio^d: neighbouring images alike."""
    @objective(_label("alignment", layer), layer)
    def inner(T):
        acts = _f32(T(layer))
        total = tf.constant(0.0)
        for d in (1, 2, 3, 4):
            diff = acts[d:] - acts[:-d]  # pairs (i, i+d); empty when the batch is smaller
            per_pair = tf.reduce_mean(tf.reshape(diff ** 2, [tf.shape(diff)[0], -1]), axis=1)
            total += tf.reduce_sum(per_pair) / decay_ratio ** d
        return -total
    return inner


def diversity(layer):
    """Mean pairwise similarity of the images' l2-normalised Gram matrices at `layer`:
    sum_i sum_{j != i} <G_i, G_j> / N. Use with a negative weight to make a batch diverse."""
    @objective(_label("diversity", layer), layer)
    def inner(T):
        acts = _f32(T(layer))
        n = tf.shape(acts)[0]
        flat = tf.reshape(acts, [n, -1, tf.shape(acts)[-1]])
        grams = tf.nn.l2_normalize(tf.matmul(flat, flat, transpose_a=True), axis=[1, 2], epsilon=1e-10)
        total = tf.reduce_sum(tf.reduce_sum(grams, axis=0) ** 2)  # sum over all (i, j)
        same = tf.reduce_sum(grams ** 2)  # the i == j terms
        return (total - same) / tf.cast(n, tf.float32)
    return inner


def input_diff(orig_img):
    """sqrt(mean((input - orig_img)^2)); usually a penalty (negative weight)."""
    orig = np.asarray(orig_img, np.float32)

    @objective("input_diff(orig)")
    def inner(T):
        return tf.sqrt(tf.reduce_mean((T(INPUT) - orig) ** 2))
    return inner


def penalize_boundary_complexity(shp, w=20, mask=None, C=0.5):
    """-sum(mask * ((blur5(x) - x)^2 + 0.8 (x - C)^2)): plain boundaries of colour C.

    shp: the input's shape [B,H,W,C]; the default mask is the border of width w."""
    if mask is None:
        mask = np.ones(shp, np.float32)
        mask[:, w:-w, w:-w] = 0
    mask = np.asarray(mask, np.float32)

    @objective("penalize_boundary_complexity()")
    def inner(T):
        x = T(INPUT)
        diffs = (blur(x, w=5) - x) ** 2 + 0.8 * (x - C) ** 2
        return -tf.reduce_sum(diffs * mask)
    return inner


def wrap_objective(fn):
    """Lucid's decorator for objective factories: `fn(*args)` returns inner(T); the layers inner reads are
    found by the render loop's dry run."""
    @functools.wraps(fn)
    def factory(*args, **kwargs):
        return Objective(fn(*args, **kwargs), _label(fn.__name__, *args), layers=None)
    return factory


def as_objective(obj):
    """An Objective unchanged; "layer:n" -> channel(layer, n); a callable fn(T) -> an Objective whose layers
    the render loop finds with a dry run."""
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, str):
        layer, sep, n = obj.rpartition(":")
        if not sep or not layer.strip() or not n.strip().isdigit():
            raise InvalidArgumentError(f"cannot read objective {obj!r}; use 'layer:channel', e.g. 'Mixed_4c:7'")
        return channel(layer.strip(), int(n))
    if callable(obj):
        return Objective(obj, layers=None)
    raise InvalidArgumentError(f"cannot use {type(obj).__name__} as an objective; pass an Objective or 'layer:n'")
