"""Attribution against its definitions: linear = activation x gradient (computed here independently, by
rebuilding the tiny CNN's tail by hand); integrated gradients are complete (sum = logit(a) - logit(0))."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import build_tiny_cnn
from lucidtl import attribution
from lucidtl.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def tiny():
    """The tiny CNN with non-zero biases (with zero biases its tail is positively homogeneous, and the linear
    approximation would be complete too)."""
    model = build_tiny_cnn()
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape).astype(np.float32))
    return model


def _images(n=3, size=12, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype(np.float32)


def _tail_by_hand(model, a):
    """logits of the tiny CNN from the `mixed` activations, written out with its weights (no Keras model)."""
    fused, dense = model.get_layer("fused"), model.get_layer("logits")
    y = tf.nn.conv2d(a, fused.kernel, strides=2, padding="SAME") + fused.bias
    y = tf.reduce_mean(tf.nn.relu(y), axis=(1, 2))
    return tf.matmul(y, dense.kernel) + dense.bias


def test_linear_attribution_is_activation_times_gradient(tiny):
    x = _images()
    a = keras.Model(tiny.inputs[0], tiny.get_layer("mixed").output)(x)
    with tf.GradientTape() as tape:
        tape.watch(a)
        score = tf.reduce_sum(_tail_by_hand(tiny, a)[:, 2])
    want = (a * tape.gradient(score, a)).numpy()
    got = attribution.layer_attribution(tiny, x, "mixed", 2)
    assert got.shape == (3, 12, 12, 10) and np.abs(want).max() > 1e-4
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    spatial = attribution.spatial_attribution(tiny, x, "mixed", [2, 0])
    channel = attribution.channel_attribution(tiny, x, "mixed", [2, 0])
    assert spatial.shape == (2, 3, 12, 12) and channel.shape == (2, 3, 10)
    np.testing.assert_allclose(spatial[0], want.sum(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(channel[0], want.sum((1, 2)), rtol=1e-4, atol=1e-6)


def test_a_branch_layer_keeps_the_other_branch_fixed(tiny):
    """branch_a_relu is not a cut of the graph: its attribution holds branch_b at its actual values."""
    x = _images(2, seed=1)
    lower = keras.Model(tiny.inputs[0], [tiny.get_layer(n).output for n in ("branch_a_relu", "branch_b_relu")])
    a, b = lower(x)
    with tf.GradientTape() as tape:
        tape.watch(a)
        score = tf.reduce_sum(_tail_by_hand(tiny, tf.concat([a, b], -1))[:, 1])
    want = (a * tape.gradient(score, a)).numpy()
    got = attribution.layer_attribution(tiny, x, "branch_a_relu", 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def _smooth_cnn(seed=3):
    """A tiny CNN whose tail after `block` is smooth (softplus), with non-zero biases."""
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer="random_normal", name="block")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="softplus", bias_initializer="random_normal")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(4, bias_initializer="random_normal", name="logits")(x)
    return keras.Model(inp, x)


def test_integrated_gradients_are_complete():
    """sum(attr) = logit(a) - logit(baseline) within 1e-3 relative at 64 steps (smooth tail: the midpoint
    rule's error is O(1/N^2)); a ReLU tail converges as the steps grow."""
    x = _images(2, seed=2) * 4
    attr = attribution.Attributor(_smooth_cnn(), "block")
    for baseline in (None, 0.25):
        a, ig = attr(x, [0, 3], method="integrated", steps=64, baseline=baseline)
        full, base = attr.logits(a, x), attr.logits(np.zeros_like(a) + (baseline or 0), x)
        for i, k in enumerate((0, 3)):
            want = full[:, k] - base[:, k]
            got = ig[i].sum((1, 2, 3))
            assert np.all(np.abs(want) > 1e-3) and np.all(np.abs(got - want) <= 1e-3 * np.abs(want)), (got, want)
    # the linear approximation is not complete here
    _, lin = attr(x, [0], method="linear")
    base = attr.logits(np.zeros_like(a), x)[:, 0]
    assert not np.allclose(lin[0].sum((1, 2, 3)), full[:, 0] - base, rtol=1e-2)


def test_integrated_gradients_converge_on_a_relu_tail(tiny):
    x = _images(2, seed=2)
    attr = attribution.Attributor(tiny, "mixed")
    errors = []
    for steps in (4, 256):
        a, ig = attr(x, [0], method="integrated", steps=steps)
        want = attr.logits(a, x)[:, 0] - attr.logits(np.zeros_like(a), x)[:, 0]
        errors.append(np.abs(ig[0].sum((1, 2, 3)) - want).max() / np.abs(want).max())
    assert errors[1] < 0.05 and errors[1] < errors[0] / 4, errors


def test_softmax_head_is_read_before_the_softmax(tmp_path):
    from lucidtl.train.heads import add_head

    base = build_tiny_cnn()
    backbone = keras.Model(base.input, base.get_layer("fused").output)
    net = add_head(backbone, 3, top="single")
    x = _images(2, seed=3)
    attr = attribution.Attributor(net, "fused")
    a = attr.activations(x)
    dense = net.get_layer("predictions")
    pooled = np.asarray(a).mean((1, 2))
    np.testing.assert_allclose(attr.logits(a, x), pooled @ dense.kernel.numpy() + dense.bias.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_classes_by_index_or_name_and_the_errors():
    names = ["tabby", "beagle", "pug"]
    assert attribution.resolve_classes("all", 3, names) == [0, 1, 2]
    assert attribution.resolve_classes("pug,0", 3, names) == [2, 0]
    assert attribution.resolve_classes([1, "tabby"], 3, names) == [1, 0]
    with pytest.raises(InvalidArgumentError, match=r"class 3 is out of range: the output has 3 classes \(0..2\)"):
        attribution.resolve_classes("3", 3, names)
    with pytest.raises(InvalidArgumentError, match="'zebra' is not a class.*tabby, beagle, pug"):
        attribution.resolve_classes("zebra", 3, names)
    with pytest.raises(InvalidArgumentError, match="no class names"):
        attribution.resolve_classes("pug", 3)


def test_heatmap_colours():
    img = np.full((8, 8, 3), 0.5)
    spatial = np.zeros((4, 4))
    spatial[0, 0], spatial[3, 3] = 1.0, -1.0
    h = attribution.heatmap(img, spatial)
    assert h.shape == (8, 8, 3)
    assert h[0, 0, 0] > h[0, 0, 2] and h[7, 7, 2] > h[7, 7, 0]  # orange for, blue against


def test_lucid_graph_attribution_is_activation_times_gradient(tmp_path):
    """A Lucid frozen graph (images -> conv -> towers -> `mixed` -> mean -> logits -> probs): its tail is
    linear, so d logit_k / d mixed[h, w, c] = fc_w[c, k] / (H W) exactly; the score is read before the Softmax."""
    import lucid_graphs as lg
    from lucidtl.models import build_model

    gd = lg.tiny_saved_graph()
    net, _ = build_model(lg.write_pb(gd, tmp_path / "tiny.pb"))
    fc = next(tf.make_ndarray(n.attr["value"].tensor) for n in gd.node if n.name.startswith("fc_w"))
    x = _images(2, size=32, seed=4)
    attr = attribution.Attributor(net, "mixed")
    assert (attr.num_classes, attr.channels) == (6, 9)
    a, lin = attr(x, [1, 4])
    for i, k in enumerate((1, 4)):
        np.testing.assert_allclose(lin[i], a * fc[:, k] / (32 * 32), rtol=1e-4, atol=1e-8)
    _, ig = attr(x, [1], method="integrated", steps=8)  # linear tail: integrated gradients = linear
    np.testing.assert_allclose(ig[0], lin[0], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(attr.logits(a, x), (a.mean((1, 2)) @ fc), rtol=1e-4, atol=1e-6)
