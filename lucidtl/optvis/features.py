"""Layer endpoints of any functional Keras model, by name: the layer catalogue, `<name>_pre_relu`
endpoints, and the feature extractor the render loop differentiates through.

A model that addresses its tensors by name itself (a Lucid zoo graph, lucidtl.models.lucid_zoo) provides
`named_endpoints(names)` (symbolic tensors from model.inputs[0]; UnknownLayerError for unknown names),
`named_layers()` and `named_catalogue()` ((name, kind, shape, pre_relu) rows); the functions here use them."""
import dataclasses

import keras
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError, UnknownLayerError, did_you_mean

PRE_RELU = "_pre_relu"


def _is_relu_layer(layer):
    if isinstance(layer, keras.layers.ReLU):
        return layer.negative_slope == 0 and layer.threshold == 0
    if isinstance(layer, keras.layers.Activation):
        fn = layer.activation
        return getattr(fn, "__name__", "") in ("relu", "relu6")
    return False


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
            "want in a functional keras.Model whose outputs include that layer (see README, 'Any Keras model')"
        )


def _pre_activation(tensor, name):
    """The tensor before the ReLU that produced `tensor` (through concatenations of ReLU outputs)."""
    layer = _producer(tensor)
    if layer is not None and _is_relu_layer(layer):
        return layer.input
    if isinstance(layer, keras.layers.Concatenate):
        parts = [_pre_activation(t, name) for t in layer.input]
        return keras.layers.Concatenate(axis=layer.axis, name=name)(parts)
    raise UnknownLayerError(
        f"no pre-ReLU endpoint {name!r}: {layer.name if layer else 'its layer'} is not a separate ReLU "
        "layer (or a concatenation of them); pick the layer that feeds the activation instead"
    )


def _named(model):
    return getattr(model, "named_endpoints", None)


def layer_names(model):
    if _named(model):
        return model.named_layers()
    return [layer.name for layer in model.layers]


def endpoint(model, name):
    """The symbolic output of layer `name`, or its pre-ReLU input for `<layer>_pre_relu`."""
    if _named(model):
        return model.named_endpoints([name])[0]
    _require_functional(model)
    names = layer_names(model)
    if name in names:
        layer = model.get_layer(name)
        out = layer.output
        if isinstance(out, (list, tuple)):
            raise UnknownLayerError(f"layer {name!r} has {len(out)} outputs; pick a single-output layer")
        return out
    if name.endswith(PRE_RELU) and name[: -len(PRE_RELU)] in names:
        return _pre_activation(model.get_layer(name[: -len(PRE_RELU)]).output, name)
    raise UnknownLayerError(
        f"unknown layer {name!r} in model {model.name!r}{did_you_mean(name, names)} "
        "(list them with: python -m lucidtl.render layers)"
    )


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


def _has_pre_relu(layer):
    try:
        _pre_activation(layer.output, layer.name + PRE_RELU)
    except UnknownLayerError:
        return False
    return True


def catalogue(model):
    """Every layer with a single output: name, class, channel count, shape, pre-ReLU availability."""
    if _named(model):
        return [LayerEntry(n, kind, shape[-1] if len(shape) > 1 else None, tuple(shape), pre)
                for n, kind, shape, pre in model.named_catalogue()]
    _require_functional(model)
    entries = []
    for layer in model.layers:
        out = layer.output
        if isinstance(out, (list, tuple)):
            continue
        shape = tuple(out.shape)
        channels = shape[-1] if len(shape) > 1 else None
        pre = (_is_relu_layer(layer) or isinstance(layer, keras.layers.Concatenate)) and _has_pre_relu(layer)
        entries.append(LayerEntry(layer.name, type(layer).__name__, channels, shape, pre))
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
