"""Layer endpoints of any functional Keras model, by name: the layer catalogue, `<name>_pre_relu`
endpoints, and the feature extractor the render loop differentiates through.

A layer inside a nested model (a keras.applications backbone inside a Sequential or functional wrapper, the
usual way to fine-tune) is addressed by its path, `resnet50/conv3_block1_out`; a bare `conv3_block1_out`
works where exactly one nested layer has that name. A model holding nested models is read through its flat
graph: every nested model's layers called on the outer tensors (as the nested model's own call runs them), so
a nested layer's tensor lies on the path from the input to the output and a model split there (attribution)
reaches the score through it.

The score of class k (`class_score`, the endpoint name SCORE): the pre-activation of the model's final
softmax / sigmoid, wherever it sits: a Dense(activation="softmax"|"sigmoid") read without its activation, the
input of a Softmax / Activation("softmax"|"sigmoid") layer that ends the model (top level or inside a nested
model), or a layer the user names (output=...). A Lucid graph's score is the input of its final Softmax op.

A model that addresses its tensors by name itself (a Lucid zoo graph, lucidtl.models.lucid_zoo) provides
`named_endpoints(names)` (symbolic tensors from model.inputs[0]; UnknownLayerError for unknown names),
`named_layers()` and `named_catalogue()` ((name, kind, shape, pre_relu) rows); the functions here use them."""
import dataclasses
import weakref

import keras
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError, UnknownLayerError, did_you_mean, layers_command

PRE_RELU = "_pre_relu"
SEP = "/"  # path separator of nested models' layers
SCORE = "class_score"  # the endpoint name of the class scores (a layer of that name wins)
SQUASHES = ("softmax", "sigmoid")  # the final activations the class score is read before
_flat_cache = weakref.WeakKeyDictionary()  # model -> _Flat: one flat graph per model
_score_cache = weakref.WeakKeyDictionary()  # model -> its class score tensor


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
    """A layer with a fused activation called with it replaced by the identity: its pre-activation value,
    from the same weights (the `_pre_relu` endpoint of Conv2D(activation="relu"), as VGG's convs are; the
    class score of a Dense(activation="softmax") head)."""

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


def _node_inputs(tensor):
    """The input tensors of the call that produced `tensor` (not the layer's first call: in a flat graph a
    nested model's layers are called again)."""
    history = tensor._keras_history
    return list(history.operation._inbound_nodes[history.node_index].input_tensors)


def _layer_name(name):
    return name.replace(SEP, "_")  # Keras layer names cannot hold "/"


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
    inputs = _node_inputs(tensor) if layer is not None else []
    if layer is not None and _is_relu_layer(layer):
        return inputs[0]
    if layer is not None and _fused_relu(layer) and len(inputs) == 1:
        return WithoutActivation(layer, name=_layer_name(name))(inputs[0])
    if isinstance(layer, keras.layers.Concatenate):
        parts = [_pre_activation(t, name) for t in inputs]
        return keras.layers.Concatenate(axis=layer.axis, name=_layer_name(name))(parts)
    raise UnknownLayerError(
        f"no pre-ReLU endpoint {name!r}: {layer.name if layer else 'its layer'} is not a ReLU (a ReLU layer, "
        "a layer with activation='relu', or a concatenation of them); pick the layer that feeds the activation"
    )


def _named(model):
    return getattr(model, "named_endpoints", None)


def names_itself(model):
    """Whether the model addresses its tensors by name itself (a Lucid zoo graph; see the module notes)."""
    return _named(model) is not None


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
        f"(list them with: {layers_command(model)})"
    )


def _graph(model):
    """A model's own functional graph (a Sequential keeps it in `_functional`), or None (subclassed)."""
    graph = getattr(model, "_functional", None) or model
    return graph if getattr(graph, "_nodes_by_depth", None) else None


def _flattenable(layer):
    return _nested(layer) and _graph(layer) is not None


class _Flat:
    """A model's flat graph: every nested (functional / Sequential) model's layers called on the outer
    tensors, as the nested model's call runs them (an explicit `training=` of its call passed on). The
    tensors upstream of every nested model are the model's own. `tensors`: path -> tensor (None where a
    layer is called more than once, so its path names no single tensor); `outputs`: the flat outputs."""

    def __init__(self, model):
        self.tensors, self.calls, self.derived = {}, {}, {}
        self.outputs = self._run(model, list(model.inputs), "", None)

    def _run(self, model, inputs, prefix, training):
        graph = _graph(model)
        known = {id(a): b for a, b in zip(graph.inputs, inputs)}
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                op = node.operation
                if not op or node.is_input or any(id(t) not in known for t in node.input_tensors):
                    continue
                args, kwargs = node.arguments.fill_in(known)
                given = [known[id(t)] for t in node.input_tensors]
                path = prefix + op.name
                self.calls[path] = self.calls.get(path, 0) + 1
                if _flattenable(op):
                    outs = self._run(op, given, path + SEP, kwargs.get("training", training))
                elif all(g is t for g, t in zip(given, node.input_tensors)):
                    outs = list(node.output_tensors)  # upstream of every nested model: the model's own
                else:
                    if training is not None and "training" in getattr(op, "_call_context_args", {}):
                        kwargs["training"] = training
                    outs = keras.tree.flatten(op(*args, **kwargs))
                for x, y in zip(node.output_tensors, outs):
                    known[id(x)] = y
                self.tensors[path] = outs[0] if len(outs) == 1 and self.calls[path] == 1 else None
        return [known[id(x)] for x in graph.outputs]

    def tensor(self, model, path):
        if path not in self.tensors:
            head = path.split(SEP, 1)[0]
            raise UnknownLayerError(f"layer {head!r} of model {model.name!r} is not a functional nested model; "
                                    f"{path!r} names nothing it can read (wrap it in a functional keras.Model)")
        out = self.tensors[path]
        if out is None:
            calls = self.calls[path]
            why = f"it is called {calls} times" if calls > 1 else "it has several outputs"
            raise UnknownLayerError(f"layer {path!r} of model {model.name!r} has no single endpoint: {why}; build "
                                    "a functional model that calls it once, or pick a single-output layer")
        return out


def _has_nested(model):
    return any(_flattenable(layer) for layer in model.layers)


def flat(model):
    """The model's flat graph (see _Flat), built once per model."""
    if model not in _flat_cache:
        _flat_cache[model] = _Flat(model)
    return _flat_cache[model]


def _top_endpoint(model, name):
    names = [layer.name for layer in model.layers]
    if name in names:
        out = model.get_layer(name).output
        if isinstance(out, (list, tuple)):
            raise UnknownLayerError(f"layer {name!r} has {len(out)} outputs; pick a single-output layer")
        return out
    return _pre_activation(model.get_layer(name[: -len(PRE_RELU)]).output, name)


def _flat_endpoint(model, path):
    """A layer's tensor in the model's flat graph (a nested layer's on the path to the output)."""
    base = path[: -len(PRE_RELU)] if path.endswith(PRE_RELU) and path not in layer_names(model) else None
    graph = flat(model)
    tensor = graph.tensor(model, base or path)
    if base and path not in graph.derived:  # one pre-activation layer per path (names are unique in a model)
        graph.derived[path] = _pre_activation(tensor, path)
    return graph.derived[path] if base else tensor


def endpoint(model, name):
    """The symbolic output of layer `name` (a path into nested models, or a bare name unique among them),
    its pre-ReLU input for `<layer>_pre_relu`, or the class scores for SCORE (see class_score)."""
    if _named(model):
        return model.named_endpoints([_graph_score(model) if str(name) == SCORE else name])[0]
    _require_functional(model)
    if str(name) == SCORE and SCORE not in layer_names(model):
        return class_score(model)
    path = _resolve(model, str(name))
    if _has_nested(model):
        return _flat_endpoint(model, path)
    if SEP in path:
        return endpoint(model.get_layer(path.split(SEP, 1)[0]), path.split(SEP, 1)[1])  # a subclassed one
    return _top_endpoint(model, path)


# ---- the class score ----------------------------------------------------------------------------------

def _activation_name(layer):
    return getattr(getattr(layer, "activation", None), "__name__", "")


def _before_squash(tensor):
    """The pre-activation of a tensor made by a final softmax / sigmoid, else None."""
    layer = _producer(tensor)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax) or (
            isinstance(layer, keras.layers.Activation) and _activation_name(layer) in SQUASHES):
        return _node_inputs(tensor)[0]
    if not isinstance(layer, keras.layers.Activation) and _activation_name(layer) in SQUASHES:
        inputs = _node_inputs(tensor)
        if len(inputs) == 1:
            return WithoutActivation(layer, name=f"{layer.name}_logits")(inputs[0])
    return None


def class_score(model, output=None):
    """The symbolic class scores [batch, classes] of `model` (in its flat graph when it holds nested models,
    so every endpoint is upstream of them): `output` (a layer name) when given, else the model's output read
    before its final softmax / sigmoid (a Dense's fused one, or a Softmax / Activation layer, top level or
    inside a nested model), else the output itself (already logits)."""
    if _named(model):
        return model.named_endpoints([_graph_score(model) if output is None else str(output)])[0]
    if output is not None:
        return endpoint(model, str(output))
    _require_functional(model)
    if len(model.outputs) != 1:
        raise InvalidArgumentError(f"model {model.name!r} has {len(model.outputs)} outputs; name the class score "
                                   "layer (output=...)")
    if model not in _score_cache:
        out = flat(model).outputs[0] if _has_nested(model) else model.outputs[0]
        score = _before_squash(out)
        _score_cache[model] = out if score is None else score
    if len(_score_cache[model].shape) != 2:
        raise UnknownLayerError(f"model {model.name!r} has no class scores: its output has shape "
                                f"{tuple(_score_cache[model].shape)}, not [batch, classes]; use a model with its "
                                "classifier head, or name the score layer")
    return _score_cache[model]


def _graph_score(model):
    graph = getattr(model, "lucid_graph", None)
    if graph is None:
        raise InvalidArgumentError(f"model {model.name!r} names its tensors itself but has no default output; "
                                   "name the class score layer")
    return graph_score(graph)


def graph_score(graph):
    """A Lucid graph's score tensor name: its output, read before a final Softmax op."""
    name = graph.default_output()
    node = graph.nodes.get(name.split(":")[0])
    if node is not None and node.op == "Softmax":
        op, _, k = node.input[0].partition(":")
        return f"{op}:{int(k) if k.isdigit() else 0}"
    return name


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
    parts = _node_inputs(out)
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
