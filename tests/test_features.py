import numpy as np
import pytest
import tensorflow as tf

from lucidtl.errors import UnknownLayerError
from lucidtl.optvis import features


def test_endpoint_and_pre_relu(tiny_cnn):
    x = tf.random.stateless_uniform([2, 12, 10, 3], seed=[1, 2])
    m = features.feature_model(tiny_cnn, ["conv1", "conv1_relu_pre_relu", "conv1_relu"])
    conv, pre, post = m(x)
    np.testing.assert_allclose(pre, conv)
    np.testing.assert_allclose(post, np.maximum(conv, 0))


def test_concat_pre_relu_is_concat_of_branch_pre_relus(tiny_cnn):
    x = tf.random.stateless_uniform([1, 9, 9, 3], seed=[3, 4])
    m = features.feature_model(tiny_cnn, ["mixed_pre_relu", "branch_a", "branch_b", "mixed"])
    pre, a, b, mixed = m(x)
    np.testing.assert_allclose(pre, np.concatenate([a, b], -1))
    np.testing.assert_allclose(mixed, np.maximum(pre, 0))
    assert pre.shape[-1] == 10


def test_unknown_layer_lists_closest(tiny_cnn):
    with pytest.raises(UnknownLayerError) as e:
        features.endpoint(tiny_cnn, "conv1_rel")
    msg = str(e.value)
    assert "conv1_relu" in msg and "\n" not in msg and msg.startswith("unknown layer 'conv1_rel'")


def test_fused_activation_pre_relu_is_the_linear_layer(tiny_cnn):
    """Conv2D(activation="relu") (VGG's convs): `_pre_relu` is the convolution before its ReLU, same weights."""
    x = tf.random.stateless_uniform([1, 9, 9, 3], seed=[5, 6])
    pre, post, mixed = features.feature_model(tiny_cnn, ["fused_pre_relu", "fused", "mixed"])(x)
    conv = tiny_cnn.get_layer("fused")
    by_hand = tf.nn.conv2d(mixed, conv.kernel, 2, "SAME") + conv.bias
    np.testing.assert_allclose(pre, by_hand, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(post, np.maximum(pre, 0), rtol=1e-6)
    assert (np.asarray(pre) < 0).any()
    entry = {e.name: e for e in features.catalogue(tiny_cnn)}["fused"]
    assert entry.pre_relu and entry.activation == "relu" and tiny_cnn.get_layer("fused").activation.__name__ == "relu"
    with pytest.raises(UnknownLayerError, match="not a ReLU"):
        features.endpoint(tiny_cnn, "logits_pre_relu")


def test_catalogue(tiny_cnn):
    cat = {e.name: e for e in features.catalogue(tiny_cnn)}
    assert cat["mixed"].channels == 10 and cat["mixed"].pre_relu
    assert cat["conv1_relu"].pre_relu and not cat["conv1"].pre_relu
    assert cat["logits"].channels == 4 and cat["logits"].kind == "Dense"
    assert features.channel_count(tiny_cnn, "branch_b_relu") == 4


def test_subclassed_model_error():
    import keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 1)

        def call(self, x):
            return self.conv(x)

    with pytest.raises(UnknownLayerError, match="subclassed"):
        features.endpoint(Net(), "conv")
