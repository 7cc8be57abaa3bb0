"""Feature accentuation (Hamblin et al., 2024): image-seeded feature visualisation. A real image is the start;
a unit is maximised while the image's activations at an earlier layer are kept close to the seed's:

    maximise  unit(T(x)) - penalty * ||h(x) - h(x0)||^2 / ||h(x0)||^2

unit: the channel's mean activation on the transformed image T(x) (Lucid's transforms); h: the earlier
layer's activations on the untransformed image; x0 the seed. The image lives in Lucid's Fourier space
(decorrelated colours, sigmoid), started exactly at the seed. DEFAULT_PENALTY is the public implementation's
default weight (Horama's `penalty=1.0`).

The image returned is the one of the steps (the seed included) with the highest J(x) = unit(x) - penalty *
d(x) on the untransformed image, so J(x) >= J(x0) = unit(x0): the regulariser's tolerance
d(x) <= (unit(x) - unit(x0)) / penalty holds: the further the unit rises, the further the image may move.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import features
from lucidtl.optvis.param import Param, to_valid_rgb
from lucidtl.optvis.param.maco import decorrelated
from lucidtl.optvis.render import resolve_transforms

DEFAULT_PENALTY = 1.0
LEARNING_RATE = 0.01  # Adam's (Lucid's 0.05 overshoots a real image at once under a strong penalty)
EPS = 0.01  # the seed's values are clipped to [EPS, 1 - EPS] before the inverse sigmoid


def seeded_image(image, decorrelate=True, decay_power=1.0):
    """Lucid's Fourier image parameterisation (1/f scaled spectrum, decorrelated colours, sigmoid) whose
    starting value is `image` [H, W, C] in [0, 1] (clipped to [EPS, 1 - EPS]); a Param making [1, H, W, C]."""
    image = np.asarray(image, np.float64)
    if image.ndim != 3:
        raise InvalidArgumentError(f"a seed image is [H, W, C], got shape {image.shape}")
    h, w, ch = image.shape
    x = np.clip(image, EPS, 1.0 - EPS)
    t = np.log(x / (1.0 - x))
    rotate = decorrelate and ch == 3
    if rotate:
        t = decorrelated(t)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    scale = (np.sqrt(w * h) / np.maximum(np.sqrt(fx * fx + fy * fy), 1.0 / max(w, h)) ** decay_power)
    coeffs = np.fft.rfft2(np.moveaxis(t, -1, 0)) / scale  # [C, H, Wf]
    real = tf.Variable(coeffs.real[None].astype(np.float32), name="spectrum_real")
    imag = tf.Variable(coeffs.imag[None].astype(np.float32), name="spectrum_imag")
    scale_t = tf.constant(scale.astype(np.float32))

    def make():
        spatial = tf.signal.irfft2d(tf.complex(real * scale_t, imag * scale_t), fft_length=[h, w])
        return tf.transpose(spatial, [0, 2, 3, 1])

    return to_valid_rgb(Param(make, [real, imag], name="seeded_image"), decorrelate=rotate, sigmoid=True)


@dataclasses.dataclass
class Accentuation:
    image: np.ndarray  # [H, W, C] float32 in [0, 1]
    seed_image: np.ndarray  # the seed as the parameterisation makes it (clipped)
    unit_before: float  # the unit on the seed (untransformed)
    unit_after: float  # the unit on the accentuation (untransformed)
    distance: float  # d(x): the earlier layer's squared distance to the seed's, relative
    tolerance: float  # (unit_after - unit_before) / penalty: d may not exceed it
    penalty: float


def accentuate(model, layer, channel, image, regularize_layer, penalty=DEFAULT_PENALTY, steps=256,
               transforms="standard", seed=0, input_range=(0.0, 1.0), optimizer=None):
    """Feature accentuation of one image [H, W, C] in [0, 1] toward channel `channel` of `layer`, keeping
    `regularize_layer`'s activations near the seed's (module docstring); Adam(LEARNING_RATE) unless an
    optimizer is given. Returns an Accentuation."""
    import keras

    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty <= 0:
        raise InvalidArgumentError(f"the penalty must be a number > 0, got {penalty!r}")
    keras.utils.set_random_seed(int(seed))
    param = seeded_image(image)
    variables = list(param.trainable_variables)
    fm = features.feature_model(model, [layer, regularize_layer])
    transform = resolve_transforms(transforms)
    optimizer = optimizer or keras.optimizers.Adam(LEARNING_RATE, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    optimizer.build(variables)
    lo, hi = (float(v) for v in input_range)
    size = features.fixed_input_size(model)

    def acts(x):
        x = tf.image.resize(x, size) if size is not None else x
        unit, reg = fm(x * (hi - lo) + lo, training=False)
        return tf.reduce_mean(tf.cast(unit, tf.float32)[..., channel]), tf.cast(reg, tf.float32)

    x0 = param()
    unit0, h0 = acts(x0)
    norm = tf.maximum(tf.reduce_mean(tf.square(h0)), 1e-12)

    def distance(h):
        return tf.reduce_mean(tf.square(h - h0)) / norm

    seed_pair = tf.constant([int(seed), 0xACC], tf.int32)

    @tf.function
    def step(i):
        """One update; returns J of the image before it, untransformed."""
        x = param()
        xt = transform(x, tf.random.experimental.stateless_fold_in(seed_pair, i)) if transform else x
        unit, _ = acts(xt)
        plain, h = acts(x)
        total = unit - penalty * distance(h)
        optimizer.apply_gradients(zip(tf.gradients(-total, variables), variables))
        return plain - penalty * distance(h)

    best, kept = -np.inf, None
    for i in range(int(steps) + 1):
        state = [v.numpy() for v in variables]
        value = float(step(tf.constant(i))) if i < int(steps) else float(
            acts(param())[0] - penalty * distance(acts(param())[1]))
        if value > best:  # keep the best image by J (the seed's J included): d <= tolerance holds
            best, kept = value, state
    for v, value in zip(variables, kept):
        v.assign(value)
    x = param()
    unit1, h1 = acts(x)
    gain = float(unit1) - float(unit0)
    return Accentuation(np.asarray(x[0], np.float32), np.asarray(x0[0], np.float32), float(unit0), float(unit1),
                        float(distance(h1)), gain / float(penalty), float(penalty))
