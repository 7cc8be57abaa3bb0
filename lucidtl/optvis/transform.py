"""Random image transforms the visualisation must be robust to (Lucid's "transformation robustness").

A transform is a callable `t(image, seed) -> image`: `image` is float32 NHWC in [0, 1], `seed` an int32
tensor of shape [2] for the `tf.random.stateless_*` ops. Each call makes ONE random draw, shared by the
whole batch. All ops use `tf.shape`, so a `tf.function` with dynamic H, W traces once however the size
changes. `seed=None` draws a fresh seed from TF's global generator (handy interactively; not reproducible).

Lucid quirks kept on purpose (each has an explicit option for the "fixed" behaviour):
- random_rotate converts degrees with 3.14, not pi (`exact_pi=True` uses pi);
- random_scale truncates float32(scale) * float32(size), as Lucid's TF graph did, so e.g.
  1.06 * 50 gives 52, not Python's 53 (`float64_size=True` gives Python's int(scale * size));
- random_scale resizes with TF1 bilinear, half_pixel_centers=False (`half_pixel_centers=True` fixes it).
"""
import math

import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError

__all__ = [
    "Transform", "pad", "jitter", "random_scale", "random_rotate", "rotation_matrix", "crop_or_pad_to",
    "normalize_gradient",
    "compose", "standard_transforms", "distill_transforms", "patch_transforms",
]

_PAD_MODES = ("CONSTANT", "REFLECT", "SYMMETRIC")
_DEGREES = ("degrees", "degree", "deg")
_RADIANS = ("radians", "radian", "rads", "rad")


class Transform:
    """A named transform: `fn(image, seed)` with a readable repr (for logs and error messages)."""

    def __init__(self, fn, name):
        self._fn = fn
        self.name = name

    def __call__(self, image, seed=None):
        image = tf.convert_to_tensor(image, dtype_hint=tf.float32)
        return self._fn(image, _as_seed(seed))

    def __repr__(self):
        return self.name


def _as_seed(seed):
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    seed = tf.convert_to_tensor(seed)
    return seed if seed.dtype in (tf.int32, tf.int64) else tf.cast(seed, tf.int32)


def _choose(values, seed, dtype=tf.float32):
    """One element of `values`, uniformly by position (repeats weigh more, as in Lucid's lists)."""
    index = tf.random.stateless_uniform([], seed, minval=0, maxval=len(values), dtype=tf.int32)
    return tf.gather(tf.constant(values, dtype), index)


def _keep_batch_and_channels(out, image, height=None, width=None):
    """Restore the static batch/channel sizes that dynamic slicing may lose (Keras layers need C)."""
    out.set_shape([image.shape[0], height, width, image.shape[-1]])
    return out


def _check_values(values, what):
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{what} must be a list of numbers, got {values!r}; pass e.g. [0.9, 1.0, 1.1]")
    if not values:
        raise InvalidArgumentError(f"{what} is empty; pass at least one value")
    return values


def _check_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidArgumentError(f"{what} must be an int >= 0, got {value!r}")
    return int(value)


def pad(w, mode="REFLECT", constant_value=0.5):
    """Pad H and W by `w` pixels on every side. mode: "constant", "reflect" or "symmetric" (any case).
    constant_value="uniform" draws one U(0, 1) grey per call (shared by the batch)."""
    w = _check_int(w, "pad width")
    mode_ = str(mode).upper()
    if mode_ not in _PAD_MODES:
        raise InvalidArgumentError(f"unknown pad mode {mode!r}; use constant, reflect or symmetric")
    uniform = isinstance(constant_value, str)
    if uniform and constant_value != "uniform":
        raise InvalidArgumentError(f"constant_value {constant_value!r} is not a number; use a float or 'uniform'")

    def fn(image, seed):
        if mode_ != "CONSTANT":
            value = tf.constant(0, image.dtype)  # ignored by reflect/symmetric
        elif uniform:
            value = tf.random.stateless_uniform([], seed, dtype=image.dtype)
        else:
            value = tf.constant(constant_value, image.dtype)
        return tf.pad(image, [(0, 0), (w, w), (w, w), (0, 0)], mode=mode_, constant_values=value)

    return Transform(fn, f"pad({w}, mode={mode!r}, constant_value={constant_value!r})")


def jitter(d):
    """Random crop to [H - d, W - d] (the image shrinks by d); offsets uniform in {0..d}, one per call."""
    d = _check_int(d, "jitter distance")

    def fn(image, seed):
        shape = tf.shape(image)
        offset = tf.random.stateless_uniform([2], seed, minval=0, maxval=d + 1, dtype=tf.int32)
        oy, ox = offset[0], offset[1]
        # tf.slice, not image[...]: a strided slice's gradient is slow on CPU
        out = tf.slice(image, tf.stack([0, oy, ox, 0]), tf.stack([-1, shape[1] - d, shape[2] - d, -1]))
        h, w = image.shape[1], image.shape[2]
        return _keep_batch_and_channels(out, image, h - d if h is not None else None, w - d if w is not None else None)

    return Transform(fn, f"jitter({d})")


def random_scale(scales, half_pixel_centers=False, float64_size=False):
    """Resize by one scale drawn from `scales`: new size int(scale * H), int(scale * W) (truncated, at
    least 1), TF1 bilinear (align_corners=False, half_pixel_centers=False). No crop or pad back."""
    scales = _check_values(scales, "scales")
    if min(scales) <= 0:
        raise InvalidArgumentError(f"scales must be > 0, got {scales}")
    dtype = tf.float64 if float64_size else tf.float32

    def fn(image, seed):
        scale = _choose(scales, seed, dtype)
        size = tf.cast(scale * tf.cast(tf.shape(image)[1:3], dtype), tf.int32)
        size = tf.maximum(size, 1)
        out = tf.raw_ops.ResizeBilinear(images=image, size=size, align_corners=False,
                                        half_pixel_centers=bool(half_pixel_centers))
        return _keep_batch_and_channels(tf.cast(out, image.dtype), image)

    return Transform(fn, f"random_scale({scales})")


def rotation_matrix(angle, height, width):
    """Projective transform [1, 8] that rotates an HxW image counter-clockwise by `angle` radians about its
    centre ((W-1)/2, (H-1)/2): output pixel (x, y) samples input R(angle) ((x, y) - c) + c."""
    cos, sin = tf.cos(angle), tf.sin(angle)
    h, w = tf.cast(height, tf.float32) - 1.0, tf.cast(width, tf.float32) - 1.0
    x_offset = (w - (cos * w - sin * h)) / 2.0
    y_offset = (h - (sin * w + cos * h)) / 2.0
    zero = tf.zeros_like(cos)
    return tf.reshape(tf.stack([cos, -sin, x_offset, sin, cos, y_offset, zero, zero]), [1, 8])


def random_rotate(angles, units="degrees", interpolation="nearest", exact_pi=False):
    """Rotate counter-clockwise about the centre by one angle drawn from `angles`; nearest interpolation,
    the uncovered corners filled with 0. Degrees become radians as 3.14 * deg / 180 (Lucid's quirk)."""
    angles = _check_values(angles, "angles")
    unit = str(units).lower()
    if unit not in _DEGREES + _RADIANS:
        raise InvalidArgumentError(f"unknown angle units {units!r}; use 'degrees' or 'radians'")
    interp = str(interpolation).upper()
    if interp not in ("NEAREST", "BILINEAR"):
        raise InvalidArgumentError(f"unknown interpolation {interpolation!r}; use 'nearest' or 'bilinear'")
    pi = math.pi if exact_pi else 3.14

    def fn(image, seed):
        angle = _choose(angles, seed)
        if unit in _DEGREES:
            angle = tf.constant(pi, tf.float32) * angle / 180.0
        shape = tf.shape(image)
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=image, transforms=rotation_matrix(angle, shape[1], shape[2]), output_shape=shape[1:3],
            fill_value=tf.constant(0.0, tf.float32), interpolation=interp, fill_mode="CONSTANT")
        return _keep_batch_and_channels(out, image, image.shape[1], image.shape[2])

    return Transform(fn, f"random_rotate({angles}, units={units!r})")


def crop_or_pad_to(height, width, constant_value=0.0):
    """Centre-crop or pad H, W to (height, width), like Lucid's (tf.image.resize_with_crop_or_pad: crop
    offset (H - height) // 2, top padding (height - H) // 2, pad value 0). height/width may be tensors."""
    for v, what in ((height, "height"), (width, "width")):
        if not tf.is_tensor(v):
            _check_int(v, what)

    def fn(image, seed):
        shape = tf.shape(image)
        th, tw = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
        oy, ox = tf.maximum(shape[1] - th, 0) // 2, tf.maximum(shape[2] - tw, 0) // 2
        size = tf.stack([-1, tf.minimum(shape[1], th), tf.minimum(shape[2], tw), -1])
        out = tf.slice(image, tf.stack([0, oy, ox, 0]), size)  # tf.slice: its gradient is fast on CPU
        py, px = tf.maximum(th - shape[1], 0), tf.maximum(tw - shape[2], 0)
        out = tf.pad(out, [[0, 0], [py // 2, py - py // 2], [px // 2, px - px // 2], [0, 0]],
                     constant_values=tf.constant(constant_value, image.dtype))
        static = [v if isinstance(v, (int, np.integer)) else None for v in (height, width)]
        return _keep_batch_and_channels(out, image, *static)

    return Transform(fn, f"crop_or_pad_to({height}, {width})")


def normalize_gradient(grad_scales=None):
    """Identity forward; backward divides each example's gradient by its L2 norm over H, W, C (then
    multiplies by grad_scales[b] if given). A zero gradient stays zero (Lucid would give NaN)."""
    scales = None if grad_scales is None else np.asarray(grad_scales, np.float32)

    @tf.custom_gradient
    def identity(x):
        def grad(g):
            norm = tf.sqrt(tf.reduce_sum(tf.square(g), axis=[1, 2, 3], keepdims=True))
            if scales is not None:
                g = g * tf.reshape(tf.constant(scales, g.dtype), [-1, 1, 1, 1])
            return tf.math.divide_no_nan(g, norm)

        return tf.identity(x), grad

    return Transform(lambda image, seed: identity(image), "normalize_gradient()")


def compose(transforms):
    """Apply `transforms` in order; member i draws from stateless_fold_in(seed, i)."""
    transforms = list(transforms)
    for t in transforms:
        if not callable(t):
            raise InvalidArgumentError(f"transform {t!r} is not callable; pass functions t(image, seed)")

    def fn(image, seed):
        for i, t in enumerate(transforms):
            image = t(image, tf.random.experimental.stateless_fold_in(seed, i))
        return image

    return Transform(fn, f"compose({transforms})")


standard_transforms = [
    pad(12, mode="constant", constant_value=0.5),
    jitter(8),
    random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
    random_rotate(list(range(-10, 11)) + 5 * [0]),
    jitter(4),
]


def distill_transforms():
    """The Distill "Feature Visualization" set (footnote 9): pad 16 (grey, as standard_transforms), jitter 16,
    scale from [1, 0.975, 1.025, 0.95, 1.05], rotate from -5..5 degrees, jitter 8, then crop back to the
    incoming H, W, read at call time. Up to 144 px only cropping happens; larger images can leave the
    chain smaller than they came (scale 0.95) and are then padded back with grey 0.5."""
    inner = compose([
        pad(16, mode="constant", constant_value=0.5),
        jitter(16),
        random_scale([1, 0.975, 1.025, 0.95, 1.05]),
        random_rotate(list(range(-5, 6))),
        jitter(8),
    ])

    def fn(image, seed):
        shape = tf.shape(image)
        out = crop_or_pad_to(shape[1], shape[2], constant_value=0.5)(inner(image, seed), seed)
        return _keep_batch_and_channels(out, image, image.shape[1], image.shape[2])

    return Transform(fn, "distill_transforms()")


def patch_transforms(patch_size=16):
    """The set for patch models (ViT, DeiT, DINOv2, CLIP / SigLIP vision): Lucid's standard chain with its
    translations and scales sized to the patch. A patch embedding is a convolution of stride `patch_size`, so
    its gradient at the image repeats with that period and a render grows a grid of patch-sized tiles unless
    the patch grid lands elsewhere on the image at every step: pad p (grey), jitter p (a whole period, where
    standard's jitter 8 covers half a 16 px patch), scale 0.8..1.2 (moves the period itself), rotate -10..10
    degrees, jitter p // 2. The ViT feature-visualisation literature uses the same remedies: large jitter and
    scale augmentations (Ghiasi et al. 2022, "What do Vision Transformers Learn?") and random crops with an
    FFT / magnitude-constrained parameterisation (Fel et al. 2023, MaCo); see docs/guide/transformers.md
    for the measurement."""
    p = int(patch_size)
    if p < 1:
        raise InvalidArgumentError(f"patch_size must be a positive integer, got {patch_size!r}")
    return [
        pad(p, mode="constant", constant_value=0.5),
        jitter(p),
        random_scale([0.8 + 0.04 * i for i in range(11)]),
        random_rotate(list(range(-10, 11)) + 5 * [0]),
        jitter(max(1, p // 2)),
    ]
