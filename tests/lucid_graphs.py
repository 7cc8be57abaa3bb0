"""Frozen TF1 graphs in Lucid's model-zoo layouts, written by the tests themselves (tf.compat.v1, random
weights): InceptionV1 ("inception5h": node names, LRN, Concat with the axis first) up to mixed4b, and a
tiny graph frozen and tagged as Lucid's Model.save does (a string Const `lucid_metadata_json`)."""
import json

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

# Lucid's InceptionV1 blocks up to mixed4b: 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool reduce
MIXED = {"mixed3a": (64, 96, 128, 16, 32, 32), "mixed3b": (128, 128, 192, 32, 96, 64),
         "mixed4a": (192, 96, 204, 16, 48, 64), "mixed4b": (160, 112, 224, 24, 64, 64)}


def _conv(x, name, k, cout, rng, stride=1):
    cin = int(x.shape[-1])
    w = v1.constant(rng.normal(0, np.sqrt(2.0 / (k * k * cin)), (k, k, cin, cout)).astype(np.float32),
                    name=f"{name}_w")
    b = v1.constant(rng.normal(0, 0.5, cout).astype(np.float32), name=f"{name}_b")
    conv = v1.nn.conv2d(x, w, [1, stride, stride, 1], "SAME", name=f"{name}_pre_relu/conv")
    return v1.nn.relu(v1.nn.bias_add(conv, b, name=f"{name}_pre_relu"), name=name)


def _mixed(x, name, sizes, rng):
    c1, c3r, c3, c5r, c5, cp = sizes
    t1 = _conv(x, f"{name}_1x1", 1, c1, rng)
    t3 = _conv(_conv(x, f"{name}_3x3_bottleneck", 1, c3r, rng), f"{name}_3x3", 3, c3, rng)
    t5 = _conv(_conv(x, f"{name}_5x5_bottleneck", 1, c5r, rng), f"{name}_5x5", 5, c5, rng)
    pool = v1.nn.max_pool(x, [1, 3, 3, 1], [1, 1, 1, 1], "SAME", name=f"{name}_pool")
    tp = _conv(pool, f"{name}_pool_reduce", 1, cp, rng)
    return tf.raw_ops.Concat(concat_dim=3, values=[t1, t3, t5, tp], name=name)


def inception_v1_graph(seed=0):
    """(tf.Graph, input name) of InceptionV1 (inception5h names and structure) up to mixed4b."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 224, 224, 3], name="input")
        x = _conv(x, "conv2d0", 7, 64, rng, stride=2)
        x = v1.nn.max_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], "SAME", name="maxpool0")
        x = v1.nn.lrn(x, depth_radius=5, bias=1.0, alpha=0.0001, beta=0.75, name="localresponsenorm0")
        x = _conv(x, "conv2d1", 1, 64, rng)
        x = _conv(x, "conv2d2", 3, 192, rng)
        x = v1.nn.lrn(x, depth_radius=5, bias=1.0, alpha=0.0001, beta=0.75, name="localresponsenorm1")
        x = v1.nn.max_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], "SAME", name="maxpool1")
        x = _mixed(x, "mixed3a", MIXED["mixed3a"], rng)
        x = _mixed(x, "mixed3b", MIXED["mixed3b"], rng)
        x = v1.nn.max_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], "SAME", name="maxpool4")
        x = _mixed(x, "mixed4a", MIXED["mixed4a"], rng)
        _mixed(x, "mixed4b", MIXED["mixed4b"], rng)
    return graph, "input"


def write_pb(graph_def, path):
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())
    return str(path)


TINY_META = {"input_name": "images", "image_shape": [32, 32, 3], "image_value_range": [-1, 1]}


def tiny_saved_graph(bias=0.0, seed=0):
    """(frozen GraphDef with Lucid's metadata node, the graph it was frozen from, its session's values):
    images [N,32,32,3] -> conv (ReLU) -> towers a, b (ReLU) -> ConcatV2 `mixed` -> mean -> logits -> probs."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 32, 32, 3], name="images")

        def var(shape, name, scale=0.5):
            return v1.Variable(rng.normal(0, scale, shape).astype(np.float32), name=name)

        conv = v1.nn.relu(v1.nn.conv2d(x, var((3, 3, 3, 8), "conv_w"), [1, 1, 1, 1], "SAME") + bias,
                          name="conv_relu")
        a = v1.nn.relu(v1.nn.conv2d(conv, var((3, 3, 8, 5), "a_w"), [1, 1, 1, 1], "SAME"), name="a")
        b = v1.nn.relu(v1.nn.conv2d(conv, var((1, 1, 8, 4), "b_w"), [1, 1, 1, 1], "SAME"), name="b")
        mixed = v1.concat([a, b], -1, name="mixed")
        pooled = v1.reduce_mean(mixed, [1, 2], name="pool")
        logits = v1.matmul(pooled, var((9, 6), "fc_w"), name="logits")
        v1.nn.softmax(logits, name="probs")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["probs"])
    meta_graph = tf.Graph()  # Lucid's infuse_metadata: a string Const named lucid_metadata_json
    with meta_graph.as_default():
        v1.constant(json.dumps(TINY_META), name="lucid_metadata_json")
    frozen.node.extend([meta_graph.as_graph_def().node[0]])
    return frozen


def session_run(graph_def, input_name, value_range, images, fetches):
    """The fetched tensors of graph_def run by a tf.compat.v1.Session, imported as Lucid's import_graph does:
    the input op replaced by a placeholder of any height and width (forget_xy) fed images mapped from [0,1]
    onto value_range."""
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, None, None, images.shape[-1]])
        lo, hi = value_range
        v1.import_graph_def(graph_def, {input_name: lo + x * (hi - lo)}, name="import")
        with v1.Session(graph=graph) as sess:
            return sess.run([graph.get_tensor_by_name(f"import/{f}" if ":" in f else f"import/{f}:0")
                             for f in fetches], {x: images})
