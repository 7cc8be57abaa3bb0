"""Lucid's model zoo in TF2: a frozen TF1 GraphDef (`.pb`) as a Keras model addressed by Lucid's tensor names.

    build_model("lucid:InceptionV1")                       # the zoo file, fetched through Keras' cache
    build_model("lucid:InceptionV1", weights="InceptionV1.pb")   # the same metadata, a local copy
    build_model("my_model.pb")                              # saved by Lucid's Model.save (metadata inside)
    build_model("manifest.json")                            # Lucid's load_from_manifest format

As Lucid's `Model.import_graph`: the [0,1] image is reversed to BGR where the model is BGR, mapped onto
image_value_range, and fed to the graph's input op with any height and width (forget_xy); `T("name")` is
the op's output 0 (`"name:k"` for output k). After import Lucid adds, for every concatenation `<block>`,
`<block>_pre_relu`: the concatenation of its towers with their final Relu stripped. lucidtl also resolves
`<relu>_pre_relu` to a Relu's input where no op has that name (its Keras models do the same).

The graph is imported into the caller's graph when the model is called inside a tf.function, so
redirected_relu's gradient override reaches its Relu ops exactly as it reaches a Keras model's.
"""
import dataclasses
import json
import os
import urllib.parse

import keras
import numpy as np
import tensorflow as tf

from lucidtl.errors import (InvalidArgumentError, UnknownLayerError, UnknownModelError, WeightsError, did_you_mean,
                            one_line)
from lucidtl.models.info import RANDOM_SOURCE, ModelInfo
from lucidtl.models.resources import ZOO_DIR, check_cached, keras_cache_dir

PREFIX = "lucid:"
METADATA_NODE = "lucid_metadata_json"
PRE_RELU = "_pre_relu"
_CONCAT = ("Concat", "ConcatV2")
# ops the layer listing leaves out
HIDDEN_OPS = ("Const", "Placeholder", "PlaceholderWithDefault", "NoOp", "Assert", "Shape", "Identity")


def is_graph_source(name):
    """True for what this module loads: `lucid:NAME`, a `.pb` file or a Lucid `.json` manifest."""
    name = os.fspath(name)
    return name.startswith(PREFIX) or name.endswith(".pb") or (name.endswith(".json") and os.path.isfile(name))


def zoo_names():
    return sorted(f[:-5] for f in os.listdir(ZOO_DIR) if f.endswith(".json")) if os.path.isdir(ZOO_DIR) else []


def zoo_manifest(name):
    """lucidtl/models/manifests/lucid/<name>.json: Lucid's manifest fields (model_path, input_name, image_shape,
    image_value_range, is_BGR, layers [{name, depth, tags}]) plus url and sha256."""
    path = os.path.join(ZOO_DIR, f"{name}.json")
    if not os.path.isfile(path):
        raise UnknownModelError(f"unknown Lucid zoo model {PREFIX}{name}{did_you_mean(name, zoo_names())}")
    return _read_manifest(path)


def _read_manifest(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read Lucid manifest {path}: {one_line(e, 200)}") from e
    missing = [k for k in ("model_path", "input_name", "image_value_range") if k not in data]
    if not isinstance(data, dict) or missing:
        raise WeightsError(f"Lucid manifest {path} lacks {', '.join(missing) or 'its fields'}; it needs model_path, "
                           "input_name, image_shape and image_value_range (Lucid's load_from_manifest format)")
    return data


# ---- reading a GraphDef ----------------------------------------------------------------------------------

def read_graph_def(path):
    """The GraphDef in a binary `.pb` file, devices cleared (as Lucid's load_graphdef)."""
    from google.protobuf.message import DecodeError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"graph file {path} does not exist; check the path")
    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
    except (DecodeError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"cannot read {path} as a TensorFlow GraphDef ({one_line(e, 100)}); is it a frozen "
                           "graph .pb (a binary GraphDef), complete and not truncated?") from e
    if not graph_def.node or any(not n.op for n in graph_def.node):
        raise WeightsError(f"{path} is not a TensorFlow GraphDef (no graph nodes); pass a frozen graph .pb")
    for node in graph_def.node:
        node.device = ""
    return graph_def


def extract_metadata(graph_def):
    """The JSON dict that Lucid's Model.save embeds as the string Const `lucid_metadata_json`, or None."""
    nodes = [n for n in graph_def.node if n.name == METADATA_NODE]
    if not nodes:
        return None
    try:
        return json.loads(nodes[0].attr["value"].tensor.string_val[0])
    except (IndexError, ValueError) as e:
        raise WeightsError(f"the graph's {METADATA_NODE} node does not hold JSON: {one_line(e, 200)}") from e


def split_name(tensor_name):
    """'op' -> ('op', 0); 'op:2' -> ('op', 2); '^op' -> ('op', None) (a control input)."""
    if tensor_name.startswith("^"):
        return tensor_name[1:], None
    op, _, k = tensor_name.partition(":")
    return op, int(k) if k.isdigit() else 0


# ---- the graph and its names -----------------------------------------------------------------------------

@dataclasses.dataclass
class GraphMeta:
    input_name: str
    image_value_range: tuple  # (lo, hi): numbers, or per-channel lists (caffe models)
    image_shape: tuple = (None, None, 3)
    is_bgr: bool = False
    layers: tuple = ()  # Lucid's layer list: ((name, depth), ...)
    source: str = ""  # where the metadata came from


class LucidGraph:
    """A frozen GraphDef with its metadata: name resolution, static shapes and import into a graph."""

    def __init__(self, graph_def, meta, label):
        self.graph_def, self.meta, self.label = graph_def, meta, label
        self.nodes = {n.name: n for n in graph_def.node}
        name = meta.input_name.split(":")[0]
        if name not in self.nodes:
            raise WeightsError(f"{label} has no input op {name!r}{did_you_mean(name, self._placeholders())}; "
                               "the metadata's input_name must name the graph's image input")
        self.input_op = name
        self.channels = int(meta.image_shape[-1] or 3) if meta.image_shape else 3
        self.consumers = {}
        for node in graph_def.node:
            for inp in node.input:
                self.consumers.setdefault(split_name(inp)[0], []).append(node.name)
        self.shapes = self._infer_shapes()

    def _placeholders(self):
        return [n.name for n in self.graph_def.node if n.op == "Placeholder"]

    def _infer_shapes(self):
        """Static output shapes of every op with the input's height and width unknown (forget_xy)."""
        graph = tf.Graph()
        with graph.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, None, None, self.channels])
            try:
                tf.graph_util.import_graph_def(self.graph_def, input_map={self.input_op + ":0": x}, name="g")
            except (ValueError, TypeError, tf.errors.OpError) as e:
                raise WeightsError(f"cannot import {self.label} as a graph ({one_line(e, 160)}); is the file "
                                   "complete and its input_name right?") from e
        shapes = {}
        for op in graph.get_operations():
            if op.name.startswith("g/"):
                shapes[op.name[2:]] = [(tuple(t.shape) if t.shape.rank is not None else None, t.dtype)
                                       for t in op.outputs]
        return shapes

    # names ------------------------------------------------------------------------------------------
    def _towers(self, concat):
        """The towers of a concatenation, each with a final Relu stripped (Lucid's post_import)."""
        node = self.nodes[concat]
        inputs = [i for i in node.input if not i.startswith("^")]
        towers = inputs[1:] if node.op == "Concat" else inputs[:-1]  # Concat: axis first; ConcatV2: axis last
        out = []
        for t in towers:
            op, k = split_name(t)
            if self.nodes[op].op == "Relu":
                op, k = split_name(self.nodes[op].input[0])
            out.append(f"{op}:{k}")
        return out

    def _lookup(self, name):
        """resolve's answer, or None where resolve would raise (no message built: listed() probes many names)."""
        name = str(name)
        op, k = split_name(name)
        if op in self.nodes and k is not None and op != METADATA_NODE:
            return ("tensor", f"{op}:{k}") if k < len(self.shapes.get(op, [])) else None
        if name.endswith(PRE_RELU):
            base = name[: -len(PRE_RELU)]
            node = self.nodes.get(base)
            if node is not None and node.op in _CONCAT:
                return "concat", self._towers(base)
            if node is not None and node.op in ("Relu", "Relu6"):
                return "tensor", "%s:%d" % split_name(node.input[0])
        return None

    def resolve(self, name):
        """('tensor', 'op:k') or ('concat', ['op:k', ...]) for a Lucid tensor name."""
        found = self._lookup(name)
        if found is not None:
            return found
        name = str(name)
        op, k = split_name(name)
        if op in self.nodes and k is not None and op != METADATA_NODE:
            outs = self.shapes.get(op, [])
            raise UnknownLayerError(f"op {op!r} of {self.label} has {len(outs)} output(s); {name!r} is not one")
        raise UnknownLayerError(
            f"unknown tensor {name!r} in {self.label}{did_you_mean(name, self.names())} "
            "(list them with: python -m lucidtl.render layers --model ...)"
        )

    def shape(self, name):
        kind, ref = self.resolve(name)
        parts = [ref] if kind == "tensor" else ref
        shapes = []
        for r in parts:
            op, k = split_name(r)
            shape, dtype = self.shapes[op][k]
            if shape is None or not dtype.is_floating:
                raise UnknownLayerError(f"tensor {name!r} of {self.label} is not a float tensor of known rank")
            shapes.append(shape)
        if kind == "tensor":
            return shapes[0]
        depth = None if any(s[-1] is None for s in shapes) else sum(s[-1] for s in shapes)
        return tuple(shapes[0][:-1]) + (depth,)

    def names(self):
        """Every addressable name: the ops (graph order) and the added `<concat>_pre_relu` tensors."""
        out = [n.name for n in self.graph_def.node if n.name != METADATA_NODE]
        taken = set(out)
        out += [n.name + PRE_RELU for n in self.graph_def.node if n.op in _CONCAT and n.name + PRE_RELU not in taken]
        return out

    def listed(self):
        """(name, op type, shape, has `_pre_relu`) for the activation-like ops: no constants or inputs,
        no op whose only consumer is a Relu (it is that Relu's `_pre_relu`)."""
        rows = []
        for node in self.graph_def.node:
            outs = self.shapes.get(node.name) or [(None, None)]
            shape, dtype = outs[0]
            if node.op in HIDDEN_OPS or node.name == METADATA_NODE or shape is None or not dtype.is_floating:
                continue
            users = self.consumers.get(node.name, [])
            if users and all(self.nodes[u].op in ("Relu", "Relu6") for u in users):
                continue
            rows.append((node.name, node.op, shape, self._lookup(node.name + PRE_RELU) is not None))
        return rows

    def receptive_field(self, name):
        """((height, width), (stride_y, stride_x)) in input pixels of tensor `name`, from the graph's Conv2D /
        DepthwiseConv2dNative filter sizes and MaxPool / AvgPool windows, strides and dilations."""
        kind, ref = self.resolve(name)
        memo = {}

        def field(op):
            if op in memo:
                return memo[op]
            node = self.nodes[op]
            ins = [] if op == self.input_op else [split_name(i)[0] for i in node.input if not i.startswith("^")]
            parts = [field(i) for i in ins] or [((1, 1), (1, 1))]
            size = tuple(max(p[0][i] for p in parts) for i in range(2))
            jump = tuple(max(p[1][i] for p in parts) for i in range(2))
            k = None
            if node.op in ("Conv2D", "DepthwiseConv2dNative") and len(ins) > 1:
                shape = self.shapes.get(ins[1], [(None, None)])[0][0]
                k = tuple(shape[:2]) if shape and None not in shape[:2] else None
            elif node.op in ("MaxPool", "AvgPool"):
                k = tuple(node.attr["ksize"].list.i[1:3])
            if k is not None:
                s = tuple(node.attr["strides"].list.i[1:3]) or (1, 1)
                d = tuple(node.attr["dilations"].list.i[1:3]) or (1, 1)
                size = tuple(size[i] + (k[i] - 1) * d[i] * jump[i] for i in range(2))
                jump = tuple(jump[i] * s[i] for i in range(2))
            memo[op] = (size, jump)
            return memo[op]

        parts = [field(split_name(r)[0]) for r in ([ref] if kind == "tensor" else ref)]
        return (tuple(max(p[0][i] for p in parts) for i in range(2)),
                tuple(max(p[1][i] for p in parts) for i in range(2)))

    def default_output(self):
        """The model's output: the last layer of Lucid's list present in the graph, else the last float op
        nobody consumes."""
        for name, _ in reversed(self.meta.layers):
            if split_name(name)[0] in self.nodes:
                return name
        sinks = [n.name for n in self.graph_def.node
                 if n.name not in self.consumers and n.op not in HIDDEN_OPS and n.name != METADATA_NODE
                 and self.shapes.get(n.name) and self.shapes[n.name][0][0] is not None
                 and self.shapes[n.name][0][1].is_floating]
        if not sinks:
            raise WeightsError(f"{self.label} has no float output op")
        return sinks[-1]

    # import -----------------------------------------------------------------------------------------
    def _subgraph(self, ops):
        """The nodes that `ops` depend on (graph order), without the input op: the image is mapped in its place
        (an unfed Placeholder would break functions such as a while_loop body)."""
        keep, todo = set(), list(ops)
        while todo:
            name = todo.pop()
            if name in keep:
                continue
            keep.add(name)
            if name != self.input_op:
                todo += [split_name(i)[0] for i in self.nodes[name].input]
        sub = tf.compat.v1.GraphDef()
        sub.versions.CopyFrom(self.graph_def.versions)
        sub.library.CopyFrom(self.graph_def.library)
        sub.node.extend(n for n in self.graph_def.node if n.name in keep and n.name != self.input_op)
        return sub

    @staticmethod
    def _used(graph_def):
        return {split_name(i)[0] for n in graph_def.node for i in n.input}

    def prepare(self, image):
        """[0,1] RGB -> what the graph's input expects: BGR where the model is, then image_value_range."""
        x = tf.cast(image, tf.float32)
        if self.meta.is_bgr:
            x = tf.reverse(x, [-1])
        lo, hi = (np.asarray(v, np.float32) for v in self.meta.image_value_range)
        return lo + x * (hi - lo)

    def build(self, image, names, given=None):
        """The tensors `names`, computed from the [0,1] image by importing the needed part of the graph into
        the current graph; given = {name: tensor} replaces those tensors of the graph (attribution)."""
        refs = [self.resolve(n) for n in names]
        x = self.prepare(image)
        got = {f"{self.input_op}:0": x}  # the input op itself is the prepared image
        replaced = {}
        for name, tensor in (given or {}).items():
            kind, ref = self.resolve(name)
            if kind != "tensor":
                raise UnknownLayerError(f"{name!r} is a concatenation lucidtl adds to {self.label}, not a tensor "
                                        "of its forward pass; use the layer itself")
            replaced[ref if ":" in ref else ref + ":0"] = tensor
        wanted = sorted({r for kind, ref in refs for r in ([ref] if kind == "tensor" else ref)} - set(got))
        if wanted:
            sub = self._subgraph({split_name(r)[0] for r in wanted})
            used = self._used(sub) | {n.name for n in sub.node}
            input_map = {self.input_op + ":0": x} if self.input_op in self._used(sub) else {}
            input_map.update({r: t for r, t in replaced.items() if split_name(r)[0] in used})
            got.update(zip(wanted, tf.graph_util.import_graph_def(sub, input_map=input_map, return_elements=wanted,
                                                                  name="lucid_graph")))
        return [got[ref] if kind == "tensor" else tf.concat([got[r] for r in ref], -1) for kind, ref in refs]


# ---- as a Keras model ------------------------------------------------------------------------------------

class GraphTensors(keras.layers.Layer):
    """Keras layer: [0,1] images -> the named tensors of a LucidGraph (a list, same order)."""

    def __init__(self, graph, names, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.graph, self.names = graph, [str(n) for n in names]
        self.shapes = [self.graph.shape(n) for n in self.names]  # unknown names fail here, in one line
        self._eager = None

    def call(self, images):
        if tf.executing_eagerly():  # an eager call runs the import once, traced
            if self._eager is None:
                self._eager = tf.function(lambda x: self.graph.build(x, self.names), reduce_retracing=True,
                                          autograph=False)
            return self._eager(images)
        return self.graph.build(images, self.names)

    def receptive_field(self, index):
        """Receptive field of output `index` (analysis.examples reads it)."""
        return self.graph.receptive_field(self.names[index])

    def compute_output_shape(self, input_shape):
        return [(input_shape[0],) + tuple(s[1:]) for s in self.shapes]


class LucidGraphModel(keras.Model):
    """A Lucid zoo graph as a functional Keras model: input [B, H, W, C] in [0, 1] (any H, W the graph
    allows), output the graph's output tensor; `named_endpoints` / `named_catalogue` give every tensor
    by Lucid's name (lucidtl.optvis.features uses them)."""

    def __init__(self, graph, name="lucid_graph"):
        inp = keras.Input((None, None, graph.channels), name="input")
        out = GraphTensors(graph, [graph.default_output()], name="graph")(inp)[0]
        super().__init__(inputs=inp, outputs=out, name=name)
        self.lucid_graph = graph

    def named_endpoints(self, names):
        return GraphTensors(self.lucid_graph, names)(self.inputs[0])

    def named_catalogue(self):
        return self.lucid_graph.listed()

    def named_layers(self):
        return self.lucid_graph.names()

    @property
    def lucid_metadata(self):
        return self.lucid_graph.meta


# ---- random weights ------------------------------------------------------------------------------------

def randomize(graph_def, seed=0):
    """A copy with Keras-like fresh weights: Glorot-uniform for the filters of Conv2D / DepthwiseConv2dNative
    / MatMul, zeros for BiasAdd biases; every other constant kept."""
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    nodes = {n.name: n for n in out.node}
    rng = np.random.default_rng(seed)

    def const(ref):
        node = nodes.get(split_name(ref)[0])
        while node is not None and node.op == "Identity":
            node = nodes.get(split_name(node.input[0])[0])
        return node if node is not None and node.op == "Const" else None

    for node in out.node:
        slot = {"Conv2D": 1, "DepthwiseConv2dNative": 1, "MatMul": 1, "BiasAdd": 1}.get(node.op)
        target = const(node.input[slot]) if slot is not None and len(node.input) > slot else None
        if target is None:
            continue
        value = tf.make_ndarray(target.attr["value"].tensor)
        if not np.issubdtype(value.dtype, np.floating):
            continue
        if node.op == "BiasAdd":
            new = np.zeros_like(value)
        else:
            fan_in = int(np.prod(value.shape[:-1])) if value.ndim > 1 else 1
            fan_out = int(value.shape[-1]) if value.ndim else 1
            if node.op == "DepthwiseConv2dNative":
                fan_in, fan_out = int(np.prod(value.shape[:2])), int(np.prod(value.shape[:2]) * value.shape[-1])
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            new = rng.uniform(-limit, limit, value.shape).astype(value.dtype)
        target.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(new))
    return out


# ---- resolving a source ----------------------------------------------------------------------------------

def _meta_from(data, source):
    layers = tuple((d["name"], d.get("depth")) if isinstance(d, dict) else (str(d), None)
                   for d in data.get("layers") or ())
    rng = data["image_value_range"]
    if not isinstance(rng, (list, tuple)) or len(rng) != 2:
        raise WeightsError(f"image_value_range in {source} must be [lo, hi], got {rng!r}")
    shape = tuple(data.get("image_shape") or (None, None, 3))
    return GraphMeta(str(data["input_name"]), tuple(rng), shape, bool(data.get("is_BGR", False)), layers, source)


def _zoo_match(graph_def, path):
    """Metadata of the zoo models whose input op and first layer the graph has (InceptionV1.pb and
    friends carry no metadata of their own); None when no match, an error when they disagree."""
    names = {n.name for n in graph_def.node}
    found = {}
    for zoo in zoo_names():
        data = zoo_manifest(zoo)
        layers = data.get("layers") or []
        first = (layers[0]["name"] if isinstance(layers[0], dict) else layers[0]) if layers else None
        if data["input_name"] in names and first and split_name(first)[0] in names:
            key = json.dumps([data["input_name"], data["image_value_range"], data.get("is_BGR", False)])
            found.setdefault(key, []).append(zoo)
    if not found:
        return None
    if len(found) > 1:
        options = ", ".join(f"{PREFIX}{v[0]}" for v in found.values())
        raise WeightsError(f"{path} carries no Lucid metadata and looks like several zoo models with different "
                           f"inputs ({options}); pass --model {PREFIX}NAME --weights {path}")
    zoos = next(iter(found.values()))
    return _meta_from(zoo_manifest(zoos[0]), f"the zoo manifest of {PREFIX}{zoos[0]} (matched by its op names)")


def _fetch(data, name):
    url = data.get("url") or data["model_path"]
    if url.startswith("gs://"):
        url = "https://storage.googleapis.com/" + url[5:]
    fname = name + os.path.splitext(urllib.parse.urlsplit(url).path)[1]  # zoo names are unique, file names not
    cache = keras_cache_dir()
    check_cached(os.path.join(cache, "lucidtl", fname), data.get("sha256"), url)  # kept, not deleted by get_file
    try:
        path = keras.utils.get_file(fname, origin=url, file_hash=data.get("sha256"), cache_subdir="lucidtl",
                                    cache_dir=cache)
    except Exception as e:
        raise WeightsError(f"cannot download {url} ({one_line(e, 100)}); download it and pass --weights FILE.pb, "
                           f"or place it at {os.path.join(cache, 'lucidtl', fname)}") from e
    return path, url


def load(model, weights=None, **meta_overrides):
    """(graph_def, GraphMeta, label, weights source, random) for `lucid:NAME`, a `.pb` or a Lucid `.json`.

    weights: None / "imagenet" (the model's own file), a `.pb` path (with `lucid:NAME` or a manifest: a local
    copy of the model's file), or "random" (the graph with fresh weights, see randomize).
    meta_overrides: input_name, image_value_range, image_shape, is_BGR (Lucid's metadata fields)."""
    model = os.fspath(model)
    random = weights == "random"
    local = None if weights in (None, "imagenet", "random") else os.fspath(weights)
    if local is not None and not local.endswith(".pb"):
        raise WeightsError(f"weights for Lucid graph {model} must be a frozen graph .pb, 'imagenet' or 'random', "
                           f"got {local!r}")
    data = None
    if model.startswith(PREFIX):
        name = model[len(PREFIX):]
        data = zoo_manifest(name)
        if local is None:
            local, source = _fetch(data, name)
        else:
            source = local
    elif model.endswith(".json"):
        data = _read_manifest(model)
        path = data["model_path"]
        if path.startswith("./"):
            path = os.path.join(os.path.dirname(model), path[2:])
        source = local = local or path
    else:
        if local is not None:
            raise WeightsError(f"a .pb model file holds its own weights; drop --weights {local} "
                               f"(or use --model {PREFIX}NAME --weights {local})")
        source = local = model
    graph_def = read_graph_def(local)
    if data is not None:
        meta = _meta_from(data, model)
    else:
        embedded = extract_metadata(graph_def)
        meta = _meta_from(embedded, f"{model} (Model.save metadata)") if embedded else _zoo_match(graph_def, model)
    if meta_overrides:
        base = dataclasses.asdict(meta) if meta else {"input_name": None, "image_value_range": None}
        fields = {"input_name": "input_name", "image_value_range": "image_value_range",
                  "image_shape": "image_shape", "is_BGR": "is_bgr"}
        base.update({fields[k]: v for k, v in meta_overrides.items() if v is not None})
        meta = GraphMeta(**base)
    if meta is None or meta.input_name is None or meta.image_value_range is None:
        raise WeightsError(
            f"{model} carries no Lucid metadata (Model.save) and matches no zoo model, so its input and value range "
            f"are unknown; pass a Lucid manifest .json naming model_path, input_name, image_shape and "
            f"image_value_range (known zoo models: {', '.join(PREFIX + z for z in zoo_names()[:4])}, ...)")
    if random:
        graph_def = randomize(graph_def)
    return graph_def, meta, source, random


def graph_model(model, weights=None, **meta_overrides):
    """(LucidGraphModel, GraphMeta, weights source, random) for a Lucid graph source (see load)."""
    graph_def, meta, source, random = load(model, weights, **meta_overrides)
    label = os.path.basename(os.fspath(model))
    graph = LucidGraph(graph_def, meta, label)
    stem = label[len(PREFIX):] if label.startswith(PREFIX) else os.path.splitext(label)[0]
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in stem) or "lucid_graph"
    return LucidGraphModel(graph, name=safe), meta, source, random


META_FIELDS = ("input_name", "image_value_range", "image_shape", "is_BGR")


def build(model, weights=None, **kw):
    """(LucidGraphModel, ModelInfo): build_model's branch for Lucid graphs. The model takes [0,1] images
    (its image_value_range is applied inside), so ModelInfo.input_range is (0, 1)."""
    extra = sorted(set(kw) - set(META_FIELDS))
    if extra:
        raise InvalidArgumentError(f"arguments {extra} do not apply to a Lucid graph; it takes "
                                   f"{', '.join(META_FIELDS)}")
    net, meta, source, random = graph_model(model, weights, **kw)
    lo, hi = meta.image_value_range
    note = (f"Lucid graph: input {meta.input_name!r}{', BGR' if meta.is_bgr else ''}, image_value_range "
            f"({_fmt(lo)}, {_fmt(hi)}) applied inside the model; metadata from {meta.source}")
    return net, ModelInfo(os.fspath(model), RANDOM_SOURCE if random else source, (0.0, 1.0), random, note)


def _fmt(v):
    return f"{v:g}" if isinstance(v, (int, float)) else str([round(float(x), 3) for x in v])
