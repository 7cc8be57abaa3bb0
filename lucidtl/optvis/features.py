"""Layer endpoints of any functional Keras model, by name: the layer catalogue, `<name>_pre_relu`
endpoints, and the feature extractor the render loop differentiates through.

A layer inside a nested model (a keras.applications backbone inside a Sequential or functional wrapper, the
usual way to fine-tune) is addressed by its path, `resnet50/conv3_block1_out`; a bare `conv3_block1_out`
works where exactly one nested layer has that name. The endpoint is the nested layer's output computed from
the outer model's input, through the outer layers that feed the nested model.

A model that addresses its tensors by name itself (a Lucid zoo graph, lucidtl.models.lucid_zoo) provides
`named_endpoints(names)` (symbolic tensors from model.inputs[0]; UnknownLayerError for unknown names),
`named_layers()` and `named_catalogue()` ((name, kind, shape, pre_relu) rows); the functions here use them."""
import dataclasses
import weakref

import keras
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError, UnknownLayerError, did_you_mean

PRE_RELU = "_pre_relu"
SEP = "/"  # path separator of nested models' layers
_nested_cache = weakref.WeakKeyDictionary()  # model -> {path: endpoint tensor}: one sub-graph per path


def _is_relu_layer(layer):
    if isinstance(layer, keras.layers.ReLU):
        return layer.negative_slope == 0 and layer.threshold == 0
    if isinstance(layer, keras.layers.Activation):
        fn = layer.activation
        return getattr(fn, "__name__", "") in ("relu", "relu6")
    return False


def _fused_relu(layer):
    """Whether a layer other than an activation layer ends in a ReLU (Conv2D(activation="relu"), Dense...)."""
    if isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
        return False
    return getattr(getattr(layer, "activation", None), "__name__", "") in ("relu", "relu6")


class WithoutActivation(keras.layers.Layer):
    """A layer with a fused ReLU called with its activation replaced by the identity: its pre-ReLU value,
    from the same weights (the `_pre_relu` endpoint of Conv2D(activation="relu"), as VGG's convs are)."""

    def __init__(self, layer, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.inner = layer

    def call(self, x):
        activation = self.inner.activation
        self.inner.activation = keras.activations.linear
        try:
            return self.inner.call(x)
        finally:
            self.inner.activation = activation

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history else None


def _require_functional(model):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise UnknownLayerError(
            f"model {model.name!r} is subclassed, so its layers have no symbolic outputs; wrap the part you "
            "want in a functional keras.Model whose outputs include that layer (see README, 'Your own model')"
        )


def _pre_activation(tensor, name):
    """The tensor before the ReLU that produced `tensor` (through concatenations of ReLU outputs)."""
    layer = _producer(tensor)
    if layer is not None and _is_relu_layer(layer):
        return layer.input
    if layer is not None and _fused_relu(layer) and not isinstance(layer.input, (list, tuple)):
        return WithoutActivation(layer, name=name)(layer.input)
    if isinstance(layer, keras.layers.Concatenate):
        parts = [_pre_activation(t, name) for t in layer.input]
        return keras.layers.Concatenate(axis=layer.axis, name=name)(parts)
    raise UnknownLayerError(
        f"no pre-ReLU endpoint {name!r}: {layer.name if layer else 'its layer'} is not a ReLU (a ReLU layer, "
        "a layer with activation='relu', or a concatenation of them); pick the layer that feeds the activation"
    )


def _named(model):
    return getattr(model, "named_endpoints", None)


def _graph_nodes(model):
    """The nodes of a model's own functional graph (a Sequential keeps its graph in `_functional`)."""
    graph = getattr(model, "_functional", None) or model
    return [n for nodes in (getattr(graph, "_nodes_by_depth", None) or {}).values() for n in nodes]


def _nested(layer):
    return isinstance(layer, keras.Model) and not _named(layer)


def _paths(model, prefix=""):
    """Every layer path of a model, nested models' layers included (depth first, model order)."""
    out = []
    for layer in model.layers:
        out.append(prefix + layer.name)
        if _nested(layer):
            out += _paths(layer, prefix + layer.name + SEP)
    return out


def layer_names(model):
    """Every layer name: the top-level ones, then nested models' layers by path."""
    if _named(model):
        return model.named_layers()
    return _paths(model)


def _resolve(model, name):
    """The full path of `name` (a top-level name, a path, or a bare name unique among nested layers)."""
    paths = layer_names(model)
    base = name[: -len(PRE_RELU)] if name.endswith(PRE_RELU) else None
    for candidate in (name, base):
        if candidate is not None and candidate in paths:
            return name
    if SEP not in name:
        for candidate, suffix in ((name, ""), (base, PRE_RELU)):
            if candidate is None:
                continue
            found = [p for p in paths if p.rsplit(SEP, 1)[-1] == candidate]
            if len(found) == 1:
                return found[0] + suffix
            if len(found) > 1:
                raise UnknownLayerError(f"layer name {name!r} is ambiguous in model {model.name!r}: "
                                        f"{', '.join(p + suffix for p in found[:4])}; write its path")
    raise UnknownLayerError(
        f"unknown layer {name!r} in model {model.name!r}{did_you_mean(name, paths)} "
        "(list them with: python -m lucidtl.render layers)"
    )


def _top_endpoint(model, name):
    names = [layer.name for layer in model.layers]
    if name in names:
        out = model.get_layer(name).output
        if isinstance(out, (list, tuple)):
            raise UnknownLayerError(f"layer {name!r} has {len(out)} outputs; pick a single-output layer")
        return out
    return _pre_activation(model.get_layer(name[: -len(PRE_RELU)]).output, name)


def _input_in(model, layer):
    """The symbolic input(s) of the nested model `layer` inside `model`'s graph."""
    nodes = [n for n in _graph_nodes(model) if n.operation is layer]
    if len(nodes) != 1:
        raise UnknownLayerError(
            f"nested model {layer.name!r} is called {len(nodes)} times in model {model.name!r}, so its layers "
            "have no single endpoint; build a functional model that calls it once")
    tensors = list(nodes[0].input_tensors)
    return tensors[0] if len(tensors) == 1 else tensors


def _nested_endpoint(model, path):
    """A nested layer's endpoint computed from `model`'s input: the nested model's graph from its input to
    the layer, applied to the tensor that feeds the nested model in `model`."""
    cache = _nested_cache.setdefault(model, {})
    if path not in cache:
        head, rest = path.split(SEP, 1)
        inner = model.get_layer(head)
        if not _nested(inner):
            raise UnknownLayerError(f"layer {head!r} of model {model.name!r} is not a nested model; "
                                    f"{path!r} names nothing")
        part = endpoint(inner, rest)
        inputs = inner.inputs[0] if len(inner.inputs) == 1 else inner.inputs
        cache[path] = keras.Model(inputs, part, name=f"{inner.name}_to_{rest.replace(SEP, '_')}")(
            _input_in(model, inner))
    return cache[path]


def endpoint(model, name):
    """The symbolic output of layer `name` (a path into nested models, or a bare name unique among them),
    or its pre-ReLU input for `<layer>_pre_relu`."""
    if _named(model):
        return model.named_endpoints([name])[0]
    _require_functional(model)
    path = _resolve(model, str(name))
    if SEP in path:
        return _nested_endpoint(model, path)
    return _top_endpoint(model, path)


def feature_model(model, names):
    """A keras.Model from the model's input to the endpoints `names` (a list, same order)."""
    outputs = model.named_endpoints(names) if _named(model) else [endpoint(model, n) for n in names]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a bare tensor calls it cleanly
    return keras.Model(inputs, outputs, name=f"{model.name}_features")


def partial_feature_model(model, name, channels):
    """A callable x -> endpoint `name` that computes only the parts of a channel concatenation (an
    Inception block, its `_pre_relu`) holding `channels`; the other parts are zeros. Their branches are not
    run at all, so an objective that reads only `channels` sees the same numbers, and gets the same
    gradient, for less work. None when `name` is not such a concatenation or every part is needed."""
    out = endpoint(model, name)
    layer = _producer(out)
    if not isinstance(layer, keras.layers.Concatenate) or layer.axis not in (-1, len(out.shape) - 1):
        return None
    parts = list(layer.input)
    widths = [p.shape[-1] for p in parts]
    if None in widths or out.shape[-1] is None:
        return None
    total, starts = int(out.shape[-1]), [sum(widths[:i]) for i in range(len(widths))]
    wanted = set()
    for c in channels:
        if not -total <= c < total:
            return None
        wanted.add(c % total)
    keep = [i for i, (s, w) in enumerate(zip(starts, widths)) if any(s <= c < s + w for c in wanted)]
    if not keep or len(keep) == len(parts):
        return None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    computed = keras.Model(inputs, [parts[i] for i in keep], name=f"{model.name}_features")

    def call(x, training=False):
        outs = computed(x, training=training)
        outs = dict(zip(keep, outs if isinstance(outs, (list, tuple)) else [outs]))
        like = outs[keep[0]]
        zeros = lambda w: tf.zeros(tf.concat([tf.shape(like)[:-1], [w]], 0), like.dtype)  # noqa: E731
        return tf.concat([outs[i] if i in outs else zeros(w) for i, w in enumerate(widths)], -1)

    return call


@dataclasses.dataclass(frozen=True)
class LayerEntry:
    name: str
    kind: str  # layer class name
    channels: int | None  # size of the last axis
    shape: tuple  # output shape, batch axis included (None where dynamic)
    pre_relu: bool  # `<name>_pre_relu` resolves
    activation: str = ""  # a fused activation (Conv2D(activation="relu")): its name


def _has_pre_relu(layer):
    try:
        _pre_activation(layer.output, layer.name + PRE_RELU)
    except UnknownLayerError:
        return False
    return True


def catalogue(model):
    """Every layer with a single output: path, class, channel count, shape, pre-ReLU availability; nested
    models' layers follow their model, by path (shapes as the nested model's own graph knows them)."""
    if _named(model):
        return [LayerEntry(n, kind, shape[-1] if len(shape) > 1 else None, tuple(shape), pre)
                for n, kind, shape, pre in model.named_catalogue()]
    _require_functional(model)
    return _entries(model, "")


def _entries(model, prefix):
    entries = []
    for layer in model.layers:
        out = layer.output
        if not isinstance(out, (list, tuple)):
            shape = tuple(out.shape)
            channels = shape[-1] if len(shape) > 1 else None
            pre = (_is_relu_layer(layer) or isinstance(layer, keras.layers.Concatenate)
                   or _fused_relu(layer)) and _has_pre_relu(layer)
            fused = getattr(getattr(layer, "activation", None), "__name__", "")
            fused = "" if isinstance(layer, keras.layers.Activation) or fused == "linear" else fused
            entries.append(LayerEntry(prefix + layer.name, type(layer).__name__, channels, shape, pre, fused))
        if _nested(layer):
            entries += _entries(layer, prefix + layer.name + SEP)
    return entries


def fixed_input_size(model):
    """(H, W) of a model that takes images of one size only, else None."""
    hw = tuple(model.inputs[0].shape[1:3])
    return hw if len(hw) == 2 and None not in hw else None


def fit_input(model, x):
    """x resized (bilinear) to the model's fixed input size when it has one and x differs; else x."""
    hw = fixed_input_size(model)
    return tf.image.resize(x, hw) if hw is not None and tuple(x.shape[1:3]) != hw else x


def channel_count(model, name):
    shape = endpoint(model, name).shape
    if len(shape) < 2 or shape[-1] is None:
        raise InvalidArgumentError(f"layer {name!r} has output shape {tuple(shape)}: no channel axis")
    return int(shape[-1])
