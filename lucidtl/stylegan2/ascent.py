"""Latent ascent: a classifier's channel drawn by StyleGAN2 (Szabó et al. 2020, Section 3 / Figures 1, 4, 5).

    w* = argmax_w  F(classifier(resize(G(w)))) - lam * ||w - w_avg||^2,   started at w = w_avg,

G's noise maps resampled at every step (the paper's recipe); the picture is G(w*). One optimisation step
(synthesis -> [0,1] NHWC -> resize -> classifier -> objective -> gradient -> Adam) is one tf.function, traced
once per Ascent and reused for every repeat (and every ablation step).
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import features, objectives, precision as precision_lib
from lucidtl.optvis.render import objective_layers, objective_value
from lucidtl.stylegan2.networks import to_classifier_image

DEFAULT_LAYER = "Mixed_5c_Branch_3_b_1x1"  # the CelebA classifier's top conv layer (paper, Figure 1)
DEFAULT_LAMBDA = 0.01  # the paper gives no value; see README: keeps w* about one sample-spread from w_avg
DEFAULT_STEPS = 200
DEFAULT_LR = 0.05
NOISE_MODES = ("resample", "fixed")
RESIZE_METHODS = ("bilinear", "area")
SEED_SALT = 0x57E9


def resize_image(x, size, method="bilinear"):
    """[N,H,W,C] -> [N,size,size,C], differentiably.

    bilinear: tf.image.resize(bilinear, antialias=True) (a triangle filter as wide as the scale when
      shrinking). area: average pooling by the integer factor H // size (exact area when it divides),
      then antialiased bilinear for any remainder. (tf.image.resize's own "area" has no gradient.)"""
    size = int(size)
    h = x.shape[1]
    if h == size:
        return x
    if method == "area" and h > size and h // size > 1:
        f = h // size
        x = tf.nn.avg_pool2d(x, f, f, "VALID")
        if x.shape[1] == size:
            return x
    elif method not in RESIZE_METHODS:
        raise InvalidArgumentError(f"unknown resize {method!r}; choose one of {', '.join(RESIZE_METHODS)}")
    return tf.image.resize(x, [size, size], method="bilinear", antialias=True)


@dataclasses.dataclass
class AscentResult:
    images: np.ndarray  # [K, R, R, C] G(w*) as [0,1] NHWC at the generator's resolution
    w: np.ndarray  # [K, D] (W) or [K, num_ws, D] (W+)
    values: np.ndarray  # [K, steps] objective value at each step (before its update)
    penalties: np.ndarray  # [K, steps] lam * ||w - w_avg||^2 at each step
    final_values: np.ndarray  # [K] objective on the returned image (its noise, no update)


def _check(lam, steps, lr, noise, resize, repeats):
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0:
        raise InvalidArgumentError(f"--lam must be a number >= 0, got {lam!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise InvalidArgumentError(f"--steps must be an integer >= 0, got {steps!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise InvalidArgumentError(f"--repeats must be an integer >= 1, got {repeats!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise InvalidArgumentError(f"--lr must be a number > 0, got {lr!r}")
    if noise not in NOISE_MODES:
        raise InvalidArgumentError(f"unknown --noise {noise!r}; choose one of {', '.join(NOISE_MODES)}")
    if resize not in RESIZE_METHODS:
        raise InvalidArgumentError(f"unknown --resize {resize!r}; choose one of {', '.join(RESIZE_METHODS)}")


def default_objective(layer=DEFAULT_LAYER, channel=0):
    return objectives.channel(layer, int(channel))


class Ascent:
    """One compiled ascent: generator + classifier + objective. run(repeats) optimises from w_avg.

    objective: an Objective or "layer:channel" (None: channel `channel` of `layer`).
    size: the classifier's input size (None: its fixed input size, else the generator's resolution).
    w_plus: optimise one w per synthesis layer (W+) instead of one shared w (W).
    noise: "resample" (fresh maps every step, seeded by (seed, repeat, step): the paper's recipe) or
      "fixed" (the generator's stored noise constants; runs are then deterministic and repeats identical).
    input_range: the classifier's input range; the [0,1] image is mapped linearly onto it.
    precision: what the classifier computes in during the ascent (float32, bfloat16, float16; see
      optvis.precision); the generator, w and Adam stay float32, and final_values are computed in float32.
    """

    def __init__(self, generator, model, objective=None, layer=DEFAULT_LAYER, channel=0, lam=DEFAULT_LAMBDA,
                 lr=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear", size=None, seed=0,
                 input_range=(0.0, 1.0), precision="float32"):
        _check(lam, 0, lr, noise, resize, 1)
        self.precision = precision_lib.require_fast(precision_lib.check(precision))
        self.generator, self.model = generator, model
        self.objective = default_objective(layer, channel) if objective is None else objectives.as_objective(objective)
        self.lam, self.lr, self.w_plus, self.noise, self.resize = float(lam), float(lr), bool(w_plus), noise, resize
        self.seed = int(seed)
        self.input_range = tuple(float(v) for v in input_range)
        self.layers = objective_layers(self.objective, model)
        net = precision_lib.lowered(model, self.precision) if self.layers else model
        self._features = features.feature_model(net, self.layers) if self.layers else None
        self._features32 = (features.feature_model(model, self.layers) if net is not model else self._features)
        fixed = tuple(model.inputs[0].shape[1:3])
        self.size = int(size or (fixed[0] if None not in fixed else generator.config.resolution))
        cfg = generator.config
        shape = [1, cfg.num_ws, cfg.dlatent_size] if self.w_plus else [1, cfg.dlatent_size]
        self.w = tf.Variable(tf.zeros(shape), name="w")
        self.optimizer = keras.optimizers.Adam(self.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        self.optimizer.build([self.w])
        self._repeat = tf.Variable(0, dtype=tf.int32, trainable=False)
        self._step = tf.Variable(0, dtype=tf.int32, trainable=False)
        self.traces = 0
        self._step_fn = tf.function(self._update)
        self._final_fn = tf.function(self._final)

    # -- the pieces of one step --
    def _w_avg(self):
        w_avg = tf.convert_to_tensor(self.generator.w_avg)
        return w_avg[None, None] if self.w_plus else w_avg[None]

    def _noise_seed(self):
        pair = tf.stack([tf.constant(self.seed, tf.int32), tf.constant(SEED_SALT, tf.int32)])
        return tf.random.experimental.stateless_fold_in(
            tf.random.experimental.stateless_fold_in(pair, self._repeat), self._step)

    def _image(self):
        """G(w) as NHWC [0, 1] at the generator's resolution, with this step's noise."""
        noise = "const" if self.noise == "fixed" else self.generator.noise_maps(1, seed=self._noise_seed())
        return to_classifier_image(self.generator.synthesis(self.w, noise=noise))

    def _value(self, image, float32=False):
        x = resize_image(image, self.size, self.resize)
        feats = self._features32 if float32 else self._features
        return objective_value(self.objective, feats, self.layers, x, x, self.input_range)

    def _update(self):
        self.traces += 1  # runs only while tracing
        with tf.GradientTape() as tape:
            value = self._value(self._image())
            penalty = self.lam * tf.reduce_sum(tf.square(self.w - self._w_avg()))
            loss = penalty - value
        grad = tape.gradient(loss, self.w)
        if grad is None:
            raise InvalidArgumentError("the objective does not depend on the generated image; check its layers")
        self.optimizer.apply_gradients([(grad, self.w)])
        self._step.assign_add(1)
        return value, penalty

    def _final(self):
        image = self._image()
        return image, self._value(image, float32=True)

    # -- running --
    def reset(self, repeat=0):
        """w = w_avg, fresh Adam state, step 0; `repeat` selects the noise sequence."""
        self.w.assign(tf.broadcast_to(self._w_avg(), self.w.shape))
        for v in self.optimizer.variables:  # iteration count and moments; the learning rate stays
            if v is not self.optimizer._learning_rate:
                v.assign(tf.zeros_like(v))
        self._step.assign(0)
        self._repeat.assign(int(repeat))

    def run(self, steps=DEFAULT_STEPS, repeats=1, callback=None):
        """`repeats` runs from w_avg, differing only in their noise; returns an AscentResult.
        callback(repeat, step, value, penalty) is called after every update."""
        _check(self.lam, steps, self.lr, self.noise, self.resize, repeats)
        images, ws, values, penalties, finals = [], [], [], [], []
        for r in range(int(repeats)):
            self.reset(r)
            vals, pens = [], []
            for i in range(int(steps)):
                value, penalty = self._step_fn()
                vals.append(float(value))
                pens.append(float(penalty))
                if callback is not None:
                    callback(r, i, vals[-1], pens[-1])
            image, final = self._final_fn()
            images.append(image.numpy()[0])
            ws.append(self.w.numpy()[0])
            values.append(vals)
            penalties.append(pens)
            finals.append(float(final))
        return AscentResult(np.stack(images), np.stack(ws), np.asarray(values, np.float32).reshape(repeats, -1),
                            np.asarray(penalties, np.float32).reshape(repeats, -1), np.asarray(finals, np.float32))


def ascent(generator, model, objective=None, layer=DEFAULT_LAYER, channel=0, lam=DEFAULT_LAMBDA,
           steps=DEFAULT_STEPS, lr=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear", size=None,
           seed=0, repeats=1, input_range=(0.0, 1.0), callback=None, precision="float32"):
    """Maximise objective(model(resize(G(w)))) - lam ||w - w_avg||^2 from w_avg with Adam; see Ascent.
    Returns an AscentResult: G(w*) images [K,R,R,3] in [0,1], w* and the per-step values."""
    _check(lam, steps, lr, noise, resize, repeats)
    run = Ascent(generator, model, objective, layer, channel, lam, lr, w_plus, noise, resize, size, seed,
                 input_range, precision)
    return run.run(steps, repeats, callback)
