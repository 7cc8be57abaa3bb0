"""Lucid's render loop: optimise a parameterised image so that `objective` grows.

One optimisation step (param -> transforms -> model -> objective -> gradient -> Adam update) is one
`tf.function`; transforms change the image size inside it without retracing. A render traces two: the
redirected-ReLU warm-up step (steps 0..16) and the plain step after it, which carries no per-ReLU switch.
"""
import keras
import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError, LucidtlError
from lucidtl.optvis import features, objectives, precision as precision_lib, redirected_relu
from lucidtl.optvis import transform as transform_lib
from lucidtl.optvis.param import image as param_image

DEFAULT_THRESHOLDS = (512,)


def default_optimizer():
    """Lucid's optimiser: Adam(0.05) with TF1's epsilon 1e-8 (Keras' default is 1e-7)."""
    return keras.optimizers.Adam(learning_rate=0.05, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def resolve_transforms(transforms, model=None):
    """None or "standard" -> Lucid's standard list; "distill"; "patch" -> patch_transforms sized to the
    model's patch size (16 where it names none); "none" or [] -> identity; a list/tuple or a single
    transform -> composed. (Lucid also treats any non-list as standard; see README deviations.)"""
    if transforms is None or transforms == "standard":
        transforms = transform_lib.standard_transforms
    elif transforms == "distill":
        transforms = [transform_lib.distill_transforms()]
    elif transforms == "patch":
        from lucidtl.optvis.taps import patch_size

        transforms = transform_lib.patch_transforms((patch_size(model) if model is not None else None) or 16)
    elif transforms == "none":
        transforms = []
    elif isinstance(transforms, str):
        raise InvalidArgumentError(
            f"unknown transforms {transforms!r}; use standard, distill, patch, none or a list of transforms"
        )
    elif callable(transforms):
        transforms = [transforms]
    transforms = list(transforms)
    return transform_lib.compose(transforms) if transforms else None


def check_thresholds(thresholds):
    """Sorted unique non-negative integer thresholds (threshold t = image after t+1 updates)."""
    if isinstance(thresholds, (int, np.integer)):
        thresholds = (thresholds,)
    out = []
    for t in thresholds:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise InvalidArgumentError(
                f"threshold {t!r} is not a non-negative integer step; use e.g. thresholds=(64, 512)"
            )
        out.append(int(t))
    if not out:
        raise InvalidArgumentError("no thresholds given; use e.g. thresholds=(512,)")
    return sorted(set(out))


def objective_layers(objective, model, batch=1):
    """The layers `objective` reads: declared ones, or (layers=None) those a dry run asks T for; a channel
    beyond a declared layer's channels is a one-line error (check_channel_range)."""
    if objective.layers is not None:
        check_channel_range(objective, model)
        return sorted(objective.layers)
    asked = []

    def T(name):
        if name == "input":
            return tf.zeros([batch, 32, 32, model.inputs[0].shape[-1] or 3])
        shape = [batch] + [d or 8 for d in features.endpoint(model, name).shape[1:]]
        asked.append(name)
        return tf.zeros(shape)

    try:  # traced, never run: only the names matter
        tf.function(lambda: objective(T)).get_concrete_function()
    except LucidtlError:
        raise
    except Exception:  # noqa: BLE001 - the dummy values may not suit the objective's arithmetic
        pass
    return sorted(set(asked))


def check_channel_range(objective, model):
    """A one-line ChannelRangeError for a channel the objective reads beyond its layer's channels (before
    TensorFlow's "slice index ... out of bounds" in the middle of a trace)."""
    from lucidtl.errors import ChannelRangeError

    for layer, chans in sorted(objective.channels.items()):
        count = features.endpoint(model, layer).shape[-1]
        bad = [c for c in sorted(chans) if count is not None and not -count <= c < count]
        if bad:
            raise ChannelRangeError(f"channel {bad[0]} of layer {layer!r} is out of range: the layer has {count} "
                                    f"channels (0..{count - 1})")


def objective_value(objective, feature_model, layers, image, x, input_range=(0.0, 1.0)):
    """The objective (summed to a scalar) with T("input") = image and the layers computed on x, the image
    the model sees (transformed), mapped linearly from [0,1] onto input_range.

    A plain sum of channel means of one layer (objective.picks) gets its gradient in one pass (T.sole_reader)."""
    acts = {}
    if layers:
        lo, hi = input_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        outs = feature_model(x, training=False)
        acts = dict(zip(layers, outs if isinstance(outs, (list, tuple)) else [outs]))

    def T(name):
        if name == "input":
            return image
        if name not in acts:
            raise InvalidArgumentError(
                f"objective {objective.name!r} reads layer {name!r} without declaring it in its layers"
            )
        return tf.cast(acts[name], tf.float32)

    T.sole_reader = bool(objective.picks) and len(acts) == 1
    return tf.reduce_sum(tf.cast(objective(T), tf.float32))


def _fresh_seed():
    return int(np.random.SeedSequence().entropy % (2**31 - 1))


class Renderer:
    """One render: the parameterised image, its optimiser and the compiled step.

    seed: seeds the parameterisation's initial values (through keras.utils.set_random_seed) and the
    transforms' draws; the same seed gives the same picture. None draws a fresh one (see `.seed`).
    input_range: the value range the model expects; the [0,1] image is mapped linearly onto it.
    precision: float32 (Lucid's numbers), bfloat16 or float16: what the network computes in (a rebuilt copy
    with the same weights; see optvis.precision); the image, transforms, objective and Adam stay float32.
    transparency: accumulate |d objective / d image| over the steps (MaCo's transparency; see
    transparency_map()).
    """

    def __init__(self, model, objective, param_f=None, optimizer=None, transforms=None,
                 relu_gradient_override=True, seed=None, input_range=(0.0, 1.0), precision="float32",
                 transparency=False):
        self.precision = precision_lib.require_fast(precision_lib.check(precision))
        self.objective = objectives.as_objective(objective)
        self.seed = _fresh_seed() if seed is None else int(seed)
        keras.utils.set_random_seed(self.seed)
        self.param = (param_f or (lambda: param_image(128)))()
        self.variables = list(getattr(self.param, "trainable_variables", ()))
        if not callable(self.param) or not self.variables:
            raise InvalidArgumentError(
                "param_f must return a parameterisation (a tf.Module with variables, e.g. param.image(128))"
            )
        self.transform = resolve_transforms(transforms, model)
        self.optimizer = optimizer or default_optimizer()
        self.optimizer.build(self.variables)
        self.relu_gradient_override = relu_gradient_override
        self.input_range = tuple(float(v) for v in input_range)
        self.model = model
        self.layers = objective_layers(self.objective, model, int(self.param().shape[0]))
        net = precision_lib.lowered(model, self.precision) if self.layers else model
        self._features = self._features_of(net)
        self._features32 = self._features if net is model else None  # float32 values, built when asked
        self._size = features.fixed_input_size(model) if self.layers else None
        self._check_channels(model)
        self._seed_pair = tf.constant([self.seed, 0x5EED], tf.int32)
        self._step = tf.Variable(0, dtype=tf.int32, trainable=False, name="step")
        self._grad_sum = (tf.Variable(tf.zeros(self.param().shape), trainable=False, name="gradient_sum")
                          if transparency else None)
        self._plain_ready = not relu_gradient_override  # the plain step compiled (see _prime_plain_step)
        self.traces = 0
        self._warmup_fn = tf.function(lambda: self._update(redirect=True))
        self._plain_fn = tf.function(lambda: self._update(redirect=False))
        self._value_fn = tf.function(self._value)

    def _features_of(self, net):
        """The feature extractor of `net` for the objective's layers: only the branches of a concatenation it
        reads, where that is all it reads."""
        if not self.layers:
            return None
        if len(self.layers) == 1 and self.layers[0] in self.objective.channels:  # skip branches it never reads
            layer = self.layers[0]
            part = features.partial_feature_model(net, layer, self.objective.channels[layer])
            if part is not None:
                return part
        return features.feature_model(net, self.layers)

    def _check_channels(self, model):
        image_channels = self.param().shape[-1]
        if self.layers:
            want = model.inputs[0].shape[-1]
            if want is not None and image_channels != want:
                raise InvalidArgumentError(
                    f"the parameterisation makes {image_channels}-channel images but the model takes {want}; "
                    f"use param.image(..., channels={want})"
                )

    def _objective(self, image, seed, redirect=False):
        """Objective value of `image` after this step's transforms; redirect: the model's ReLUs (Lucid's
        scope: the model's only) get the redirected gradient. The warm-up function that asks for it only
        runs steps 0..16, so a constant step lets the graph drop every ReLU's switch."""
        x = image
        if self._features is not None:
            x = self.transform(image, seed) if self.transform is not None else image
            if self._size is not None:  # models with a fixed input size see the transformed image resized
                x = tf.image.resize(x, self._size)
        feats = self._features
        if feats is not None and redirect:
            feats = redirected_relu.model_only(feats, tf.constant(0))
        return objective_value(self.objective, feats, self.layers, image, x, self.input_range)

    def _seed(self):
        return tf.random.experimental.stateless_fold_in(self._seed_pair, self._step)

    def _update(self, redirect):
        """redirect: the warm-up step (redirected ReLU gradient); the plain step builds no override at all."""
        self.traces += 1  # runs only while tracing
        image = self.param()
        value = self._objective(image, self._seed(), redirect)
        sources = self.variables + ([image] if self._grad_sum is not None else [])
        grads = tf.gradients(-value, sources)
        if any(g is None for g in grads):
            raise InvalidArgumentError("the objective does not depend on the image; check its layers")
        if self._grad_sum is not None:
            self._grad_sum.assign_add(tf.abs(grads.pop()))
        self.optimizer.apply_gradients(zip(grads, self.variables))
        self._step.assign_add(1)
        return value

    def _value(self):
        return self._objective(self.param(), self._seed())

    @property
    def steps_done(self):
        return int(self._step.numpy())

    def _prime_plain_step(self):
        """Compile the plain step before the first update, so that its one-off cost (tracing, graph
        optimisation: about a second) is not paid in the middle of the loop at step 17: run it once on the
        current state and put every variable back (param, optimiser slots and counters, step)."""
        self._plain_ready = True
        state = [self._step, *self.variables, *self.optimizer.variables]
        state += [self._grad_sum] if self._grad_sum is not None else []
        saved = [v.numpy() for v in state]
        self._plain_fn()
        for v, value in zip(state, saved):
            v.assign(value)

    def _step_fn(self):
        if not self._plain_ready:
            self._prime_plain_step()
        warmup = self.relu_gradient_override and self.steps_done < redirected_relu.WARMUP_STEPS
        return (self._warmup_fn if warmup else self._plain_fn)()

    def step(self):
        """One optimiser update; returns the objective value before it (what Lucid prints as loss)."""
        return float(self._step_fn())

    def objective_value(self):
        """The objective on the current image, with the transforms of the next step."""
        return float(self._value_fn())

    def evaluate(self, image=None):
        """The objective computed in float32 on `image` (default: the current image), without transforms
        (resized for a fixed-size model): comparable between renders of any precision."""
        image = tf.convert_to_tensor(self.param() if image is None else image, tf.float32)
        if self.layers and self._features32 is None:
            self._features32 = self._features_of(self.model)
        x = tf.image.resize(image, self._size) if self._size is not None else image
        return float(objective_value(self.objective, self._features32, self.layers, image, x, self.input_range))

    def transparency_map(self):
        """MaCo's transparency: the |gradient| of the objective with respect to the image, accumulated over
        the steps so far and summed over colour channels, divided by each image's maximum: float32
        [B, H, W, 1] in [0, 1] (0 where the objective never depended on a pixel)."""
        if self._grad_sum is None:
            raise InvalidArgumentError("this render does not accumulate gradients; make it with transparency=True")
        total = np.sum(self._grad_sum.numpy(), axis=-1, keepdims=True)
        peak = total.max(axis=(1, 2, 3), keepdims=True)
        return (total / np.where(peak > 0, peak, 1.0)).astype(np.float32)

    def image(self):
        """The current untransformed image, float32 [B,H,W,C] in the parameterisation's range."""
        return np.asarray(self.param(), dtype=np.float32)

    def run(self, thresholds=DEFAULT_THRESHOLDS, verbose=True, progress=False, callback=None):
        """Lucid's loop: for i in 0..max(thresholds): update; at i in thresholds keep the image.

        callback(i, value, image) is called at each threshold. Returns the images, ascending thresholds."""
        thresholds = check_thresholds(thresholds)
        if self.steps_done + max(thresholds) < redirected_relu.WARMUP_STEPS:
            self._plain_ready = True  # this run never reaches the plain step: nothing to compile ahead
        images = []
        bar = progress_bar(max(thresholds) + 1, progress)
        try:
            for i in range(max(thresholds) + 1):
                value = self.step()
                bar.update(1)
                if i in thresholds:
                    img = self.image()
                    images.append(img)
                    if verbose:
                        bar.write(f"{i} {value:.4f}") if progress else print(i, value)
                    if callback is not None:
                        callback(i, value, img)
        finally:
            bar.close()
        return images


class _NoBar:
    def update(self, n):
        pass

    def write(self, text):
        print(text)

    def close(self):
        pass


class LineBar:
    """Progress for a log file or a pipe: a whole line at about every tenth of the way (at most one every
    `interval` seconds, and the last), instead of a terminal bar's carriage-return redraws."""

    def __init__(self, total, unit="step", desc=None, stream=None, interval=10.0):
        import sys
        import time

        self.total, self.unit, self.desc, self.n = total, unit, desc, 0
        self.stream, self.clock, self.interval = stream or sys.stderr, time.monotonic, interval
        self.start = self.last = self.clock()
        self.next = max(1, -(-total // 10)) if total else 1

    def _line(self, final=False):
        elapsed = self.clock() - self.start
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        what = f"{self.desc}: " if self.desc else ""
        tail = f"done in {elapsed:.1f} s" if final else f"{elapsed:.1f} s"
        print(f"{what}{self.n}/{self.total or '?'} {self.unit}{share} {tail}", file=self.stream, flush=True)
        self.last = self.clock()

    def update(self, n=1):
        self.n += n
        if self.total and self.n >= self.total:
            return
        if self.n >= self.next and self.clock() - self.last >= min(self.interval, 1e9):
            self._line()
            while self.next <= self.n:
                self.next += max(1, -(-self.total // 10)) if self.total else 1

    def write(self, text):
        print(text, file=self.stream, flush=True)

    def close(self):
        if self.n:
            self._line(final=True)


def _interactive(stream):
    """A terminal, or a Jupyter kernel (whose front end draws tqdm.auto's bar in place)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or _in_notebook()


def progress_bar(total, enabled, unit="step", desc=None, leave=False, stream=None, interval=10.0):
    """A tqdm.auto bar in a terminal or a notebook, whole lines (LineBar) in a log file or a pipe, or a bar
    that does nothing when not enabled."""
    import sys

    if not enabled:
        return _NoBar()
    stream = stream or sys.stderr
    if not _interactive(stream):
        return LineBar(total, unit, desc, stream, interval)
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, leave=leave, dynamic_ncols=True, file=stream)


def _in_notebook():
    """Running in a Jupyter kernel (an IPython shell with a kernel; not a terminal IPython)."""
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def render_vis(model, objective, param_f=None, optimizer=None, transforms=None, thresholds=DEFAULT_THRESHOLDS,
               verbose=True, relu_gradient_override=True, seed=None, use_fixed_seed=False, progress=False,
               input_range=(0.0, 1.0), precision="float32", show_inline=None):
    """Lucid's render_vis: returns one float32 [B,H,W,C] image array per threshold (ascending).

    objective: an Objective or "layer:channel". model: a functional Keras model (any input size).
    use_fixed_seed=True (Lucid's flag) means seed 0 when no seed is given. precision: what the network
    computes in (float32, bfloat16, float16; see Renderer).
    show_inline (Lucent's name): show the images at each threshold inline (lucidtl.misc.io.show, as Lucid's
    verbose render_vis does); None: when verbose and running in a Jupyter kernel."""
    if seed is None and use_fixed_seed:
        seed = 0
    thresholds = check_thresholds(thresholds)
    if show_inline is None:
        show_inline = bool(verbose) and _in_notebook()
    renderer = Renderer(model, objective, param_f=param_f, optimizer=optimizer, transforms=transforms,
                        relu_gradient_override=relu_gradient_override, seed=seed, input_range=input_range,
                        precision=precision)
    callback = None
    if show_inline:
        from lucidtl.misc.io import show

        def callback(i, value, images):
            show(np.concatenate(list(images), axis=1) if len(images) > 1 else images[0])  # Lucid: np.hstack

    return renderer.run(thresholds, verbose=verbose, progress=progress, callback=callback)


def render_channels(model, channels, size=128, steps=512, seed=0, input_range=(0.0, 1.0), transforms="standard",
                    precision="float32"):
    """Every (layer, channel) of `channels` drawn in one batched optimisation (image i maximises
    channel(layer_i, channel_i, batch=i); FFT + decorrelated image, Lucid's transforms, Adam 0.05);
    float32 [len(channels), size, size, 3] at threshold `steps`."""
    terms = [objectives.channel(layer, ch, batch=i) for i, (layer, ch) in enumerate(channels)]
    renderer = Renderer(model, sum(terms[1:], terms[0]), param_f=lambda: param_image(size, batch=len(channels)),
                        transforms=transforms, seed=seed, input_range=input_range, precision=precision)
    return renderer.run(thresholds=(steps,), verbose=False)[-1]


def evaluate(model, objective, image, input_range=(0.0, 1.0)):
    """The objective's value on a fixed image batch (no transforms)."""
    objective = objectives.as_objective(objective)
    image = tf.convert_to_tensor(image, tf.float32)
    layers = objective_layers(objective, model, int(image.shape[0]))
    feats = features.feature_model(model, layers) if layers else None
    return float(objective_value(objective, feats, layers, image, image, input_range))
