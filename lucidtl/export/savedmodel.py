"""SavedModel export: a classifier with its pre-processing, and a channel renderer that runs Lucid's whole
render loop inside one TF graph. Both load with plain `tf.saved_model.load` (no lucidtl needed).
The command line is lucidtl/export/__main__.py."""
import contextlib
import dataclasses
import os

import numpy as np
import tensorflow as tf

from lucidtl import atomic
from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import features, objectives, redirected_relu
from lucidtl.optvis.param import fft_decoder, to_valid_rgb
from lucidtl.optvis.render import objective_value, resolve_transforms

SEED_SALT = 0x5EED  # Renderer's transform seeds: stateless_fold_in([seed, SEED_SALT], step)
SLIM_HEAD = "AvgPool_0a_7x7"  # inception_v1's slim pooling: needs 224 px inputs


@dataclasses.dataclass
class Exported:
    path: str
    signatures: dict  # name -> "inputs -> outputs" description


# ---- writing -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _atomic_dir(path, overwrite):
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not (os.path.isdir(path) and not os.listdir(path)) and not overwrite:
        raise InvalidArgumentError(f"{path} exists and is not an empty folder; use another --out, or --overwrite "
                                   "to replace it")
    parent = os.path.dirname(path)
    try:
        tmp = atomic.make_temp_dir(parent)
    except OSError as e:
        raise InvalidArgumentError(f"cannot write {path}: {e.strerror or e}; choose a writable --out") from e
    old = None
    try:
        yield tmp
        atomic.chmod_tree(tmp)  # the umask's modes, not the writer's
        if os.path.lexists(path):  # moved aside: a folder cannot be renamed onto a non-empty one
            old = tmp + "-old"
            atomic.replace(path, old)
        atomic.replace(tmp, path)
    except atomic.SimulatedKill:
        raise  # a killed process cleans nothing up
    except BaseException:
        if old is not None and not os.path.lexists(path):
            atomic.replace(old, path)
        raise
    finally:
        for leftover in (tmp, old):
            if leftover is None or not os.path.lexists(leftover) or atomic.killed():
                continue
            if os.path.isdir(leftover) and not os.path.islink(leftover):
                atomic.rmtree(leftover)
            else:
                atomic.remove(leftover)


def _describe(fn):
    """'(a: int32 [], ...) -> {out: float32 [None, 4]}' for a concrete function."""
    args, kwargs = fn.structured_input_signature
    specs = [(s.name, s) for s in args] + sorted(kwargs.items())
    ins = ", ".join(f"{k}: {s.dtype.name} {s.shape.as_list()}" for k, s in specs)
    outs = ", ".join(f"{k}: {t.dtype.name} {t.shape.as_list()}" for k, t in fn.structured_outputs.items())
    return f"({ins}) -> {{{outs}}}"


def _save(module, path, signatures, overwrite):
    fns = {name: fn.get_concrete_function() for name, fn in signatures.items()}  # traced before any writing
    # the render's gradients are already in its graph: no custom gradient functions to save
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    with _atomic_dir(path, overwrite) as tmp:
        tf.saved_model.save(module, tmp, signatures=fns, options=options)
    return Exported(os.path.abspath(os.fspath(path)), {name: _describe(fn) for name, fn in fns.items()})


def _range(input_range):
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"input_range must be two numbers (low, high), got {input_range!r}") from None
    return lo, hi


def _image_channels(model):
    c = model.inputs[0].shape[-1]
    if c is None:
        raise InvalidArgumentError(f"model {model.name!r} has no fixed channel count; give its Input one")
    return int(c)


# ---- classifier --------------------------------------------------------------------------------------

def _image_size(size, model):
    if size is None:
        return features.fixed_input_size(model)
    pair = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                 for v in pair):
        raise InvalidArgumentError(f"image_size must be a positive int or (height, width), got {size!r}")
    return tuple(int(v) for v in pair)


class Classifier(tf.Module):
    """`model` behind [0,1] (float) or 0..255 (uint8) images of any size; see export_classifier."""

    def __init__(self, model, input_range=(0.0, 1.0), image_size=None, class_names=None):
        super().__init__(name="classifier")
        if len(model.outputs) != 1:
            raise InvalidArgumentError(f"model {model.name!r} has {len(model.outputs)} outputs; export a "
                                       "single-output model")
        self.model = model
        self.final_activation = _final_activation(model)
        if class_names is not None:
            names = [str(n) for n in class_names]
            if model.outputs[0].shape[-1] is not None and len(names) != model.outputs[0].shape[-1]:
                raise InvalidArgumentError(f"{len(names)} class names for {model.outputs[0].shape[-1]} outputs")
            self.class_names = tf.Variable(names, trainable=False, name="class_names")
        self.input_range = _range(input_range)
        self.image_size = _image_size(image_size, model)
        c = _image_channels(model)
        self.classify = tf.function(self._float, input_signature=[
            tf.TensorSpec([None, None, None, c], tf.float32, name="images")])
        self.classify_uint8 = tf.function(self._uint8, input_signature=[
            tf.TensorSpec([None, None, None, c], tf.uint8, name="images")])

    def _float(self, images):
        x = images
        if self.image_size is not None:
            x = tf.image.resize(x, self.image_size)  # bilinear
        lo, hi = self.input_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        outputs = tf.cast(self.model(x, training=False), tf.float32)
        if self.final_activation in ("softmax", "sigmoid"):
            probabilities = outputs
        else:  # logits, e.g. InceptionV1's slim head (class 0: background)
            probabilities = tf.nn.softmax(outputs, axis=-1)
        return {"outputs": outputs, "probabilities": probabilities}

    def _uint8(self, images):
        return self._float(tf.cast(images, tf.float32) / 255.0)


def _final_activation(model):
    """"softmax" / "sigmoid" when the model's last layer ends in one, else "linear" (logits)."""
    act = getattr(model.layers[-1], "activation", None)
    name = getattr(act, "__name__", str(act or "linear"))
    return name if name in ("softmax", "sigmoid") else "linear"


def export_classifier(model, path, input_range=(0.0, 1.0), image_size=None, overwrite=False, class_names=None):
    """Save a Keras classifier as a SavedModel with two signatures:

    serving_default(images: float32 [N, H, W, C] in [0, 1]) -> {"outputs": float32 model output,
                                                              "probabilities": float32}
    serving_uint8(images: uint8 [N, H, W, C] in 0..255)    -> the same, on images / 255

    "probabilities" is the output itself when the model ends in softmax or sigmoid (a fine-tuned run's head),
    else softmax of the output (logits). class_names, when given, are stored as the string variable
    `class_names` of the loaded object (one per output).

    Images of any size are resized (bilinear, tf.image.resize) to `image_size` (int or (H, W); default: the
    model's fixed input size, or no resize), mapped linearly from [0,1] onto `input_range` (what the model
    expects, e.g. (0, 255) for keras.applications.ResNet50) and run with training=False. The folder is
    written beside `path` and renamed onto it; a non-empty `path` is refused unless overwrite=True."""
    module = Classifier(model, input_range, image_size, class_names)
    return _save(module, path, {"serving_default": module.classify, "serving_uint8": module.classify_uint8},
                 overwrite)


# ---- channel renderer --------------------------------------------------------------------------------

def _adam(var, grad, m, v, step, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """Keras 3 Adam's update (keras.optimizers.Adam.update_step) on tensors; step is 0-based."""
    t = tf.cast(step + 1, tf.float32)
    alpha = learning_rate * tf.sqrt(1 - tf.pow(tf.constant(beta_2), t)) / (1 - tf.pow(tf.constant(beta_1), t))
    m = m + (grad - m) * (1 - beta_1)
    v = v + (tf.square(grad) - v) * (1 - beta_2)
    return var - (m * alpha) / (tf.sqrt(v) + epsilon), m, v


class ChannelRenderer(tf.Module):
    """Lucid's render of objectives.channel(layer, channel) as one pure TF function of (channel, steps, seed).

    render(channel, steps, seed) (int32 scalars) -> {"image": float32 [size, size, C] in [0,1],
    "image_uint8": uint8 round(255 * image), "objective": float32}. It repeats render_vis(model,
    channel(layer, channel), param.image(size), thresholds=(steps - 1,), seed=seed): FFT + decorrelated
    colour parameterisation, the transforms, Adam(learning_rate, 0.9, 0.999, 1e-8), redirected ReLU for the
    first 17 steps, transform seeds stateless_fold_in([seed, 0x5EED], step), fixed-input-size resize. The
    one difference: the initial spectrum is tf.random.stateless_normal(shape, seed=[seed, 0]) * sd (not
    Keras' global generator), which makes the result a pure function of the inputs. "objective" is the
    objective on the returned image, with the transforms of step `steps` (Renderer.objective_value()).
    A channel outside [0, channels) or steps < 1 fails with tf.errors.InvalidArgumentError."""

    def __init__(self, model, layer, size=128, input_range=(0.0, 1.0), transforms="standard", sd=0.01,
                 learning_rate=0.05, decorrelate=True, relu_gradient_override=True):
        super().__init__(name="channel_renderer")
        self.layer = str(layer)
        self.channels = features.channel_count(model, self.layer)  # unknown layer: names the closest ones
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise InvalidArgumentError(f"size must be a positive int, got {size!r}")
        self.size = int(size)
        self.features = features.feature_model(model, [self.layer])
        self.input_range = _range(input_range)
        self.sd, self.learning_rate = float(sd), float(learning_rate)
        self.decorrelate, self.relu_gradient_override = bool(decorrelate), bool(relu_gradient_override)
        self._transform = resolve_transforms(transforms, model)
        self._fixed_size = features.fixed_input_size(model)
        self._spectrum_shape, self._decode = fft_decoder([1, self.size, self.size, _image_channels(model)])
        self.render = tf.function(self._render, autograph=False, input_signature=[
            tf.TensorSpec([], tf.int32, name="channel"), tf.TensorSpec([], tf.int32, name="steps"),
            tf.TensorSpec([], tf.int32, name="seed")])

    def _image(self, spectrum):
        return to_valid_rgb(self._decode(spectrum), decorrelate=self.decorrelate, sigmoid=True)

    def _objective(self, objective, image, seed, step=None):
        """As Renderer._objective: transforms, fixed-size resize, then the objective (the model's ReLUs
        redirected at `step` when given)."""
        x = self._transform(image, seed) if self._transform is not None else image
        if self._fixed_size is not None:
            x = tf.image.resize(x, self._fixed_size)
        feats = self.features
        if step is not None and self.relu_gradient_override:
            feats = redirected_relu.model_only(feats, step)
        return objective_value(objective, feats, [self.layer], image, x, self.input_range)

    def _step(self, objective, seeds, step, spectrum, m, v):
        value = self._objective(objective, self._image(spectrum),
                                tf.random.experimental.stateless_fold_in(seeds, step), step)
        (grad,) = tf.gradients(-value, [spectrum])
        if grad is None:
            raise InvalidArgumentError(f"the objective does not depend on the image; check layer {self.layer!r}")
        return _adam(spectrum, grad, m, v, step, self.learning_rate)

    def _render(self, channel, steps, seed):
        checks = [
            tf.debugging.assert_non_negative(channel, message="channel must be >= 0"),
            tf.debugging.assert_less(channel, self.channels,
                                     message=f"channel out of range: layer {self.layer} has {self.channels}"),
            tf.debugging.assert_positive(steps, message="steps must be >= 1"),
        ]
        with tf.control_dependencies(checks):
            channel, steps = tf.identity(channel), tf.identity(steps)
        objective = objectives.channel(self.layer, channel)
        seeds = tf.stack([seed, tf.constant(SEED_SALT, tf.int32)])
        spectrum = tf.random.stateless_normal(self._spectrum_shape, seed=tf.stack([seed, 0])) * self.sd
        zeros = tf.zeros_like(spectrum)

        def body(i, spectrum, m, v):
            return (i + 1, *self._step(objective, seeds, i, spectrum, m, v))

        _, spectrum, _, _ = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), spectrum, zeros, zeros))
        image = self._image(spectrum)
        value = self._objective(objective, image, tf.random.experimental.stateless_fold_in(seeds, steps))
        image = image[0]
        return {"image": image, "image_uint8": tf.cast(tf.round(tf.clip_by_value(image, 0, 1) * 255), tf.uint8),
                "objective": value}

    def __call__(self, channel, steps, seed):
        """render() in process, as numpy arrays."""
        out = self.render(tf.constant(channel, tf.int32), tf.constant(steps, tf.int32), tf.constant(seed, tf.int32))
        return {k: v.numpy() for k, v in out.items()}


def render_channel(model, layer, channel, steps, seed, **kw):
    """One render by ChannelRenderer(model, layer, **kw) in process: {"image", "image_uint8", "objective"}."""
    return ChannelRenderer(model, layer, **kw)(channel, steps, seed)


def export_renderer(model, layer, path, size=128, input_range=(0.0, 1.0), transforms="standard", sd=0.01,
                    learning_rate=0.05, decorrelate=True, relu_gradient_override=True, overwrite=False):
    """Save a ChannelRenderer (see its doc) with signatures `serving_default` and `render`, both
    (channel: int32, steps: int32, seed: int32) -> {"image", "image_uint8", "objective"}."""
    module = ChannelRenderer(model, layer, size, input_range, transforms, sd, learning_rate, decorrelate,
                             relu_gradient_override)
    return _save(module, path, {"serving_default": module.render, "render": module.render}, overwrite)
