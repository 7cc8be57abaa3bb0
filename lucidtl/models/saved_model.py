"""TF SavedModel folders as models addressed by name, as Lucid's frozen graphs are (lucid_zoo.py).

    build_model("exported/")            # tf.saved_model.save(module, ...), Keras model.export(...), lucidtl export

The image signature (`serving_default`, else the only one taking one float [N, H, W, C] tensor) is frozen
(variables become constants, function calls inlined) into a GraphDef, and that graph is served by
lucid_zoo's LucidGraph: every op by name (`name:k` for output k), `<relu>_pre_relu`, `<concat>_pre_relu`, the
same listing, and import into the caller's graph, so the redirected-ReLU warm-up reaches its Relu ops.
Names lose the `StatefulPartitionedCall/` wrappers of the call. A Keras model's layers are also addressable by
their layer names (`conv1_relu`, `resnet50/conv3_block1_out` inside a nested model): the last op of the
layer's name scope, which is the layer's output.

The model takes the signature's input as it is; lucidtl assumes [0, 1] (lucidtl's own classifier export
takes that), so pass --input-range where it expects another range.
"""
import os
import re

import tensorflow as tf

from lucidtl.errors import InvalidArgumentError, WeightsError, one_line
from lucidtl.models import lucid_zoo
from lucidtl.models.info import RANDOM_SOURCE, ModelInfo

MARKER = "saved_model.pb"
_WRAPPERS = re.compile(r"^(?:(?:Stateful)?PartitionedCall(?:_\d+)?/)+")


def is_saved_model(name):
    name = os.fspath(name)
    return os.path.isdir(name) and os.path.isfile(os.path.join(name, MARKER))


def _image_signature(loaded, path, signature=None):
    """(name, concrete function) of the signature that takes one float image batch."""
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    if signature is not None:
        if signature not in sigs:
            raise InvalidArgumentError(f"SavedModel {path} has no signature {signature!r}; it has "
                                       f"{', '.join(sigs) or 'none'}")
        return signature, sigs[signature]

    def takes_image(fn):
        specs = list(fn.structured_input_signature[1].values()) + list(fn.structured_input_signature[0])
        return len(specs) == 1 and specs[0].dtype.is_floating and specs[0].shape.rank == 4

    order = sorted(sigs, key=lambda n: n != "serving_default")
    for name in order:
        if takes_image(sigs[name]):
            return name, sigs[name]
    call = getattr(loaded, "__call__", None)
    fns = getattr(call, "concrete_functions", None) or []
    for fn in fns:
        if takes_image(fn):
            return "__call__", fn
    raise WeightsError(f"SavedModel {path} has no signature that takes one float image batch [N, H, W, C] "
                       f"(signatures: {', '.join(sigs) or 'none'}); save it with an input_signature such as "
                       "tf.TensorSpec([None, None, None, 3], tf.float32)")


def _rename(graph_def):
    """The GraphDef with `StatefulPartitionedCall/` prefixes dropped from op names (where no name collides)."""
    names = [n.name for n in graph_def.node]
    taken, new = set(names), {}
    for name in names:
        short = _WRAPPERS.sub("", name)
        if short != name and short not in taken:
            new[name] = short
            taken.add(short)
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    for node in out.node:
        node.name = new.get(node.name, node.name)
        for i, ref in enumerate(node.input):
            control = ref.startswith("^")
            op, colon, k = ref.lstrip("^").partition(":")
            node.input[i] = ("^" if control else "") + new.get(op, op) + colon + k
    return out


def _layer_aliases(graph):
    """{Keras layer path: op name}: the last float op (graph order) of each layer's name scope
    (`model_1/conv_1/BiasAdd` -> `conv`, `outer_1/resnet50_1/conv1_relu_1/Relu` -> `resnet50/conv1_relu`)."""
    aliases = {}
    for node in graph.graph_def.node:
        parts = node.name.split("/")
        outs = graph.shapes.get(node.name) or [(None, None)]
        if (len(parts) < 3 or node.op in lucid_zoo.HIDDEN_OPS or parts[0] == "Func"
                or outs[0][0] is None or not outs[0][1].is_floating):
            continue
        aliases["/".join(re.sub(r"_\d+$", "", p) for p in parts[1:-1])] = node.name
    return {a: op for a, op in aliases.items() if a not in graph.nodes}


class SavedModelGraph(lucid_zoo.LucidGraph):
    """A frozen signature as a LucidGraph, with Keras layer names as aliases of their output ops."""

    def __init__(self, graph_def, meta, label):
        super().__init__(graph_def, meta, label)
        self.aliases = _layer_aliases(self)
        self.alias_of = {op: a for a, op in self.aliases.items()}

    def _lookup(self, name):
        name = str(name)
        if name in self.aliases:
            return super()._lookup(self.aliases[name])
        if name.endswith(lucid_zoo.PRE_RELU) and name[: -len(lucid_zoo.PRE_RELU)] in self.aliases:
            return super()._lookup(self.aliases[name[: -len(lucid_zoo.PRE_RELU)]] + lucid_zoo.PRE_RELU)
        return super()._lookup(name)

    def receptive_field(self, name):
        return super().receptive_field(self.aliases.get(str(name), name))

    def names(self):
        return super().names() + sorted(self.aliases)

    def listed(self):
        """The graph's listing; for a Keras model, its layers' outputs only, by layer name (the ops inside a
        layer stay addressable by their op names)."""
        rows = super().listed()
        if self.aliases:
            rows = [r for r in rows if r[0] in self.alias_of or r[0].count("/") < 2]
        return [(self.alias_of.get(name, name), op, shape, pre) for name, op, shape, pre in rows]


def freeze(path, signature=None):
    """(GraphDef, input op name, output op name, input shape, signature name) of a SavedModel folder."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    path = os.fspath(path)
    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001 - TF raises many kinds for a damaged folder
        raise WeightsError(f"cannot load SavedModel {path}: {one_line(e, 200)}") from e
    name, fn = _image_signature(loaded, path, signature)
    try:
        frozen = convert_variables_to_constants_v2(fn)
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"cannot freeze signature {name!r} of SavedModel {path}: {one_line(e, 200)}") from e
    graph_def = _rename(frozen.graph.as_graph_def())
    rename = {n: _WRAPPERS.sub("", n) for n in (frozen.inputs[0].op.name, frozen.outputs[0].op.name)}
    ops = {n.name for n in graph_def.node}
    inp, out = (rename[t.op.name] if rename[t.op.name] in ops else t.op.name
                for t in (frozen.inputs[0], frozen.outputs[0]))
    return graph_def, inp, out, tuple(frozen.inputs[0].shape[1:]), name


def build(path, weights=None, signature=None):
    """(LucidGraphModel, ModelInfo) for a SavedModel folder. weights: None (its own) or "random" (fresh
    Glorot-uniform filters, zero biases: lucid_zoo.randomize)."""

    path = os.fspath(path)
    if weights not in (None, "random"):
        raise WeightsError(f"a SavedModel holds its own weights; drop --weights {weights} (or pass random)")
    graph_def, inp, out, shape, sig = freeze(path, signature)
    if weights == "random":
        graph_def = lucid_zoo.randomize(graph_def)
    meta = lucid_zoo.GraphMeta(inp, (0.0, 1.0), shape, False, ((out, None),), f"{path} signature {sig!r}")
    label = os.path.basename(os.path.normpath(path)) or "saved_model"
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in label)
    net = lucid_zoo.LucidGraphModel(SavedModelGraph(graph_def, meta, label), name=safe)
    note = (f"SavedModel signature {sig!r}: input {inp!r}, output {out!r}; input range (0, 1) assumed (pass "
            "--input-range LO,HI if it expects another)")
    return net, ModelInfo(path, RANDOM_SOURCE if weights == "random" else path, (0.0, 1.0), weights == "random",
                          note)
