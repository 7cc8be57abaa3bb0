"""SavedModel folders as models: one written by tf.saved_model.save of a tf.Module, one by Keras model.export
(a nested model inside), and lucidtl's own classifier export: listed and rendered by name, values against the
models they came from, `_pre_relu`, and the redirected-ReLU warm-up reaching their ReLUs."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import build_tiny_cnn
from lucidtl import render as render_cli
from lucidtl.errors import UnknownLayerError
from lucidtl.models import build_model
from lucidtl.optvis import features, objectives, param
from lucidtl.optvis.render import Renderer


class Module(tf.Module):
    def __init__(self, bias=0.0):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([3, 3, 3, 4], seed=[1, 2]))
        self.b = tf.Variable(tf.fill([4], float(bias)))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, x):
        return tf.reduce_mean(self.features(x), [1, 2], name="pooled")

    def features(self, x):
        return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, self.w, 1, "SAME"), self.b, name="conv"), name="relu1")


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    module = Module()
    path = str(tmp_path_factory.mktemp("sm") / "module")
    tf.saved_model.save(module, path)
    return path, module


@pytest.fixture(scope="module")
def keras_dir(tmp_path_factory):
    keras.utils.set_random_seed(0)
    inner = build_tiny_cnn()  # name "tiny": conv1, conv1_relu, branch_a/b, mixed (a concat of ReLUs), fused
    inp = keras.Input((None, None, 3), name="images")
    outer = keras.Model(inp, keras.layers.Dense(2, name="head")(inner(inp)), name="outer")
    path = str(tmp_path_factory.mktemp("sm") / "exported")
    outer.export(path, verbose=False)
    return path, outer


X = tf.random.stateless_uniform([2, 12, 12, 3], seed=[3, 4])


def test_tf_module_saved_model_by_op_name(module_dir, tmp_path, capsys):
    path, module = module_dir
    net, info = build_model(path)
    assert "serving_default" in info.note and not info.random_weights
    relu, pre = features.feature_model(net, ["relu1", "relu1_pre_relu"])(X)
    np.testing.assert_allclose(relu, module.features(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(relu, np.maximum(pre, 0), rtol=1e-6)
    listing = render_cli.layers(path)
    assert "relu1" in listing and "yes" in listing.splitlines()[1] and "StatefulPartitionedCall" not in listing
    render_cli.main(["--model", path, "--layer", "relu1", "--channels", "0:2", "--size", "16", "--steps", "2",
                     "--progress", "False", "--out", str(tmp_path / "o")])
    record = json.loads((tmp_path / "o" / "relu1_render.json").read_text())
    assert record["weights"] == path and record["channels"] == [0, 1]
    with pytest.raises(UnknownLayerError, match="relu1"):
        features.endpoint(net, "relu2")


def test_keras_export_by_layer_name_and_nested_path(keras_dir):
    path, outer = keras_dir
    net, _ = build_model(path)
    names = ["tiny/conv1_relu", "tiny/mixed", "tiny/mixed_pre_relu", "tiny/fused", "tiny/fused_pre_relu"]
    got = features.feature_model(net, names)(X)
    want = features.feature_model(outer, names)(X)  # the Keras model's own nested paths
    for name, g, w in zip(names, got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=name)
    rows = {e.name: e for e in features.catalogue(net)}
    assert {"tiny/conv1_relu", "tiny/mixed", "head"} <= set(rows) and rows["tiny/mixed"].pre_relu
    assert rows["tiny/mixed"].channels == 10


def test_lucidtl_classifier_export_renders_by_layer_name(tmp_path):
    from lucidtl.export.savedmodel import export_classifier

    net = build_tiny_cnn()
    path = str(tmp_path / "classifier")
    export_classifier(net, path)
    loaded, _ = build_model(path)
    got = features.feature_model(loaded, ["mixed", "conv1_relu_pre_relu"])(X)
    want = features.feature_model(net, ["mixed", "conv1_relu_pre_relu"])(X)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("step,expected", [(0, 0.05), (17, 0.0)])
def test_redirected_relu_reaches_saved_model_relus(tmp_path, step, expected):
    """bias -1000: every unit of relu1 is dead. Warm-up (step < 17): the upward gradient passes and Adam's
    first update is lr * sign = 0.05 on every pixel variable; from step 17 on: the plain gradient, 0."""
    path = str(tmp_path / "dead")
    tf.saved_model.save(Module(bias=-1000.0), path)
    net, _ = build_model(path)
    r = Renderer(net, objectives.channel("relu1", 0), transforms=[], seed=0,
                 param_f=lambda: param.image(8, fft=False, decorrelate=False))
    r._step.assign(step)
    before = r.variables[0].numpy()
    r.step()
    delta = r.variables[0].numpy() - before
    np.testing.assert_allclose(np.abs(delta).max(), expected, atol=1e-4)
