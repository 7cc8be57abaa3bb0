"""Spatial and channel attribution of a layer to a class (The Building Blocks of Interpretability, Olah et
al. 2018; Lucid's building-blocks notebooks).

The model is split at the layer: `lower(x) -> a` (the layer's activations) and `upper(a, x) -> logits`
(everything after it; paths that bypass the layer read x). The score is the class score of the resolver
(optvis.features.class_score: the pre-activation of the final softmax / sigmoid, wherever it sits); a model
holding nested models is split in its flat graph, so a layer inside a nested backbone is on the path to it.

- linear (Lucid's "linear approximation"): attr = a * d logit_k / d a, at the actual activations.
- integrated gradients (Sundararajan et al. 2017) along the layer's activations from a baseline b (zeros):
  attr = (a - b) * mean_n d logit_k / d a at b + alpha_n (a - b), alpha_n = (n + 1/2) / N (the midpoint rule;
  Lucid's path method uses the left sum n / N, whose error is O(1/N) even for smooth networks). Completeness:
  sum(attr) = logit_k(a) - logit_k(b) up to the quadrature error.

spatial = attr summed over channels [.., H, W]; channel = attr summed over positions [.., C].

A token layer of a patch model [B, T, C] is split at its tokens; activations and attributions are returned on
its patch grid [B, H, W, C] (the class and register tokens' share is left out, so completeness holds for the
patch tokens plus that share). A sublayer that is not a graph node (a transformer block's MLP) is split by a
tap that puts the activations in place of its output during the model's forward pass (optvis.taps).
"""
import numpy as np

from lucidtl.errors import InvalidArgumentError

METHODS = ("linear", "integrated")


# ---- classes -----------------------------------------------------------------------------------------

def resolve_classes(classes, count, class_names=None):
    """--classes ("all", "3", "0,2", "tabby,beagle", [1, "pug"]) -> sorted-unique-preserving list of indices.

    A number is an index (checked against count); anything else a name looked up in class_names."""
    names = [str(n) for n in class_names] if class_names is not None else None
    if classes is None or (isinstance(classes, str) and classes.strip() == "all") or (
            isinstance(classes, (list, tuple)) and [str(c).strip() for c in classes] == ["all"]):
        return list(range(count))
    items = classes.split(",") if isinstance(classes, str) else list(classes) if isinstance(
        classes, (list, tuple)) else [classes]
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if text.lstrip("-").isdigit():
            k = int(text)
            if not 0 <= k < count:
                raise InvalidArgumentError(f"class {k} is out of range: the output has {count} classes "
                                           f"(0..{count - 1}); pass --classes indices in that range or names")
        elif names is not None and text in names:
            k = names.index(text)
        else:
            from lucidtl.errors import did_you_mean

            known = ("the run has no class names; pass class indices 0.."
                     f"{count - 1}" if names is None else f"its classes are {', '.join(names[:12])}"
                     f"{' ...' if len(names) > 12 else ''}{did_you_mean(text, names)}")
            raise InvalidArgumentError(f"class {text!r} is not a class of the output; {known}")
        out.append(k)
    if not out:
        raise InvalidArgumentError("no classes given; pass --classes all, indices (0,2) or names")
    return list(dict.fromkeys(out))


def class_label(k, class_names=None):
    return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) else str(k)


# ---- the split model ---------------------------------------------------------------------------------

class Attributor:
    """The model split at `layer`, for attributing its activations to output classes, batch by batch.

    model: a functional Keras model (InceptionV1, a run's checkpoint with its head, a .keras file).
    output: the score layer (default: the model's output, read before a final softmax / sigmoid)."""

    def __init__(self, model, layer, output=None, input_range=(0.0, 1.0)):
        import tensorflow as tf

        self._grid = lambda values: values  # tokens [..., T, C] -> their patch grid, for token layers

        from lucidtl.optvis import features

        self.layer = str(layer)
        self.input_range = tuple(float(v) for v in input_range)
        if hasattr(model, "lucid_graph"):
            self._split_graph(model.lucid_graph, output)
        elif features.names_itself(model):
            raise InvalidArgumentError(f"attribution cannot split {model.name} at a layer; use a Keras model or a "
                                       "Lucid graph")
        else:
            self._split_keras(model, output)
        self._grad = tf.function(self._gradients)

    def _split_keras(self, model, output):
        from lucidtl.optvis import features

        lower, upper, grid = features.split(model, self.layer, output)
        act, logits = lower.outputs[0], upper.outputs[0]
        if grid is not None:
            self._grid = grid
        elif len(act.shape) != 4:
            raise InvalidArgumentError(f"layer {self.layer!r} has output shape {tuple(act.shape)}; attribution "
                                       "needs a spatial [H, W, C] layer (or tokens forming a patch grid)")
        if len(logits.shape) != 2:
            raise InvalidArgumentError(f"the score output has shape {tuple(logits.shape)}; pass output= a layer "
                                       "of class scores [batch, classes]")
        self.lower = lambda x: lower(x, training=False)
        self.upper = lambda a, x: upper([a, x], training=False)
        self.num_classes, self.channels = int(logits.shape[-1]), int(act.shape[-1])

    def _split_graph(self, graph, output):
        """A Lucid frozen graph: the layer's tensor replaced by `a` when the graph is imported (its input_map)."""
        import tensorflow as tf

        from lucidtl.optvis import features

        out = str(output) if output is not None else features.graph_score(graph)
        shape, scores = graph.shape(self.layer), graph.shape(out)
        if len(shape) != 4 or len(scores) != 2:
            raise InvalidArgumentError(f"attribution needs a spatial layer and class scores; {self.layer} has shape "
                                       f"{tuple(shape)}, {out} {tuple(scores)}")
        layer = self.layer
        self.lower = tf.function(lambda x: graph.build(x, [layer])[0], reduce_retracing=True, autograph=False)
        self.upper = tf.function(lambda a, x: graph.build(x, [out], given={layer: a})[0], reduce_retracing=True,
                                 autograph=False)
        self.num_classes, self.channels = int(scores[-1]), int(shape[-1])

    def _gradients(self, a, x, classes):
        import tensorflow as tf

        with tf.GradientTape(persistent=True) as tape:
            tape.watch(a)
            logits = tf.cast(self.upper(a, x), tf.float32)
            picked = [tf.reduce_sum(logits[:, k]) for k in classes]
        grads = [tape.gradient(p, a) for p in picked]
        del tape
        if any(g is None for g in grads):
            raise InvalidArgumentError(f"the output does not depend on {self.layer!r} as an endpoint (a "
                                       "_pre_relu concatenation is not on the forward path); use the layer itself")
        return tf.stack(grads), tf.gather(logits, list(classes), axis=1)

    def _forward(self, images):
        import tensorflow as tf

        x = tf.convert_to_tensor(_scaled(images, self.input_range), tf.float32)
        return x, self.lower(x)

    def activations(self, images):
        """The layer's activations [B, H, W, C] of images in [0, 1]."""
        return self._grid(np.asarray(self._forward(images)[1]))

    def __call__(self, images, classes, method="linear", steps=64, baseline=None):
        """(activations [B, H, W, C], attributions [K, B, H, W, C]) of images ([B, H, W, 3] in [0, 1])
        for class indices `classes` (K of them)."""
        import tensorflow as tf

        if method not in METHODS:
            raise InvalidArgumentError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
        classes = tuple(int(k) for k in classes)
        x, a = self._forward(images)
        if method == "linear":
            g, _ = self._grad(a, x, classes)
            return self._grid(np.asarray(a)), self._grid(np.asarray(g * a[None]))
        steps = int(steps)
        if steps < 1:
            raise InvalidArgumentError(f"integrated gradients need steps >= 1, got {steps}")
        b = tf.zeros_like(a) if baseline is None else tf.broadcast_to(tf.cast(baseline, a.dtype), tf.shape(a))
        total = None
        for n in range(steps):
            alpha = (n + 0.5) / steps
            g, _ = self._grad(b + alpha * (a - b), x, classes)
            total = g if total is None else total + g
        return self._grid(np.asarray(a)), self._grid(np.asarray(total / steps * (a - b)[None]))

    def reduced(self, images, classes, method="linear", steps=64, baseline=None, chunk=8):
        """(channel [K, B, C], spatial [K, B, H, W]) for many classes, `chunk` classes at a time (so a
        [K, B, H, W, C] array is never held)."""
        classes = list(classes)
        channel, spatial = [], []
        for i in range(0, len(classes), chunk):
            attr = self(images, classes[i:i + chunk], method, steps, baseline)[1]
            channel.append(attr.sum((2, 3)))
            spatial.append(attr.sum(-1))
        return np.concatenate(channel), np.concatenate(spatial)

    def logits(self, a, images):
        """The class scores [B, classes] with the layer's activations set to a (and the images as x)."""
        import tensorflow as tf

        x = _scaled(images, self.input_range)
        return np.asarray(self.upper(tf.constant(np.asarray(a, np.float32)), tf.constant(np.asarray(x, np.float32))))


def _scaled(images, input_range):
    lo, hi = input_range
    images = np.asarray(images, np.float32)
    return images if (lo, hi) == (0.0, 1.0) else images * (hi - lo) + lo


# ---- the library functions ---------------------------------------------------------------------------

def layer_attribution(model, images, layer, classes, method="linear", steps=64, baseline=None, output=None,
                      input_range=(0.0, 1.0)):
    """Per-unit attribution [K, B, H, W, C] of `layer` to each class index in `classes` (int or list)."""
    many = isinstance(classes, (list, tuple, np.ndarray))
    attr = Attributor(model, layer, output, input_range)
    ks = resolve_classes(list(classes) if many else [classes], attr.num_classes)
    out = attr(images, ks, method, steps, baseline)[1]
    return out if many else out[0]


def spatial_attribution(model, images, layer, classes, method="linear", steps=64, baseline=None, output=None,
                        input_range=(0.0, 1.0)):
    """attr summed over channels: [B, H, W] for one class, [K, B, H, W] for a list."""
    return layer_attribution(model, images, layer, classes, method, steps, baseline, output,
                             input_range).sum(-1)


def channel_attribution(model, images, layer, classes, method="linear", steps=64, baseline=None, output=None,
                        input_range=(0.0, 1.0)):
    """attr summed over positions: [B, C] for one class, [K, B, C] for a list."""
    return layer_attribution(model, images, layer, classes, method, steps, baseline, output,
                             input_range).sum((-3, -2))


# ---- pictures ----------------------------------------------------------------------------------------

def diverging(t):
    """Building Blocks' orange_blue colours for t in [-1, 1]: positive orange, negative blue, 0 light grey."""
    t = np.clip(np.asarray(t, np.float64), -1, 1)[..., None]
    pos, neg = np.maximum(t, 0), np.maximum(-t, 0)
    orange, blue, grey = np.array([1.0, 0.55, 0.1]), np.array([0.15, 0.45, 1.0]), np.array([0.92, 0.92, 0.92])
    return grey * (1 - pos - neg) + orange * pos + blue * neg


def heatmap(image, spatial, vmax=None, opacity=0.7):
    """The image with a spatial attribution map [h, w] overlaid in diverging colours (orange: for the class,
    blue: against), scaled by vmax (default: the map's max |value|). [H, W, 3] in [0, 1]."""
    from lucidtl.analysis.examples import upsample

    image = np.asarray(image, np.float64)[..., :3]
    up = upsample(spatial, image.shape[:2])
    top = float(np.abs(up).max()) if vmax is None else float(vmax)
    t = up / top if top > 0 else np.zeros_like(up)
    a = opacity * np.abs(t)[..., None]
    return np.clip(image * (1 - a) + diverging(t) * a, 0, 1)
