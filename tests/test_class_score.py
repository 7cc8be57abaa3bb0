"""One meaning of "the score of class k" (optvis.features.class_score): the pre-activation of the model's final
softmax / sigmoid wherever it sits: fused into the last Dense, a Softmax / Activation layer of its own, inside a
nested head, or a layer the user names. Attribution, class objectives and the activation atlas' cells all read
it: on each head form they give what the same weights give with a linear head (computed here on that model)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl import attribution
from lucidtl.optvis import features, objectives
from lucidtl.recipes.activation_atlas.main import sample_activations

SIZE, CLASSES = 12, 3
HEADS = ["linear", "fused_softmax", "softmax_layer", "activation_softmax", "activation_sigmoid", "nested_head",
         "sequential"]


def _trunk(x):
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="mixed")(x)
    return keras.layers.GlobalAveragePooling2D(name="pool")(x)


def _build(head):
    if head == "sequential":
        return keras.Sequential([
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
            keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="mixed"),
            keras.layers.GlobalAveragePooling2D(name="pool"), keras.layers.Dense(CLASSES, name="fc"),
            keras.layers.Softmax(name="probs")], name="sequential")
    inp = keras.Input((SIZE, SIZE, 3))
    x = _trunk(inp)
    if head == "nested_head":
        nested = keras.Sequential([keras.Input((5,)), keras.layers.Dense(CLASSES, name="fc"),
                                   keras.layers.Softmax(name="probs")], name="head")
        return keras.Model(inp, nested(x), name=head)
    act = "softmax" if head == "fused_softmax" else None
    x = keras.layers.Dense(CLASSES, activation=act, name="fc")(x)
    if head == "softmax_layer":
        x = keras.layers.Softmax(name="probs")(x)
    elif head.startswith("activation_"):
        x = keras.layers.Activation(head.split("_")[1], name="probs")(x)
    return keras.Model(inp, x, name=head)


def _fc(model):
    return model.get_layer("head").get_layer("fc") if model.name == "nested_head" else model.get_layer("fc")


@pytest.fixture(scope="module")
def nets():
    keras.utils.set_random_seed(3)
    out = {head: _build(head) for head in HEADS}
    ref = out["linear"]
    rng = np.random.default_rng(5)
    for name in ("conv", "mixed", "fc"):  # non-zero biases: the tail is not homogeneous
        layer = ref.get_layer(name)
        layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape).astype(np.float32))
    for head, net in out.items():
        for name in ("conv", "mixed"):
            net.get_layer(name).set_weights(ref.get_layer(name).get_weights())
        _fc(net).set_weights(ref.get_layer("fc").get_weights())
    return out


def _images(n=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 3)).astype(np.float32)


def _logits(ref, x):
    return np.asarray(ref(x, training=False))


@pytest.mark.parametrize("head", HEADS[1:])
def test_score_is_the_logit_of_every_head_form(nets, head):
    x = _images()
    score = keras.Model(nets[head].inputs[0], features.class_score(nets[head]))(x)
    np.testing.assert_allclose(score, _logits(nets["linear"], x), rtol=1e-5, atol=1e-6)
    assert features.channel_count(nets[head], features.SCORE) == CLASSES


@pytest.mark.parametrize("head", HEADS[1:])
@pytest.mark.parametrize("method", ["linear", "integrated"])
def test_attribution_equals_the_linear_heads(nets, head, method):
    x = _images()
    want = attribution.spatial_attribution(nets["linear"], x, "mixed", [0, 2], method=method, steps=4)
    got = attribution.spatial_attribution(nets[head], x, "mixed", [0, 2], method=method, steps=4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # independent: activation x gradient of the logit, by hand from the linear model's own tensors
    if method == "linear":
        ref = nets["linear"]
        split = keras.Model(ref.inputs[0], [ref.get_layer("mixed").output, ref.output])
        with tf.GradientTape() as tape:
            a, logits = split(x, training=False)
            total = tf.reduce_sum(logits[:, 2])
        np.testing.assert_allclose(got[1], (np.asarray(tape.gradient(total, a)) * np.asarray(a)).sum(-1),
                                   rtol=1e-4, atol=1e-6)


def test_a_named_layer_is_the_score_when_given(nets):
    """output= a layer reads that layer: here the probabilities, which give another attribution."""
    x = _images()
    logit = attribution.spatial_attribution(nets["softmax_layer"], x, "mixed", 1)
    prob = attribution.spatial_attribution(nets["softmax_layer"], x, "mixed", 1, output="probs")
    split = keras.Model(nets["softmax_layer"].inputs[0], [nets["softmax_layer"].get_layer("mixed").output,
                                                          nets["softmax_layer"].output])
    with tf.GradientTape() as tape:
        a, p = split(x, training=False)
        total = tf.reduce_sum(p[:, 1])
    np.testing.assert_allclose(prob, (np.asarray(tape.gradient(total, a)) * np.asarray(a)).sum(-1),
                               rtol=1e-4, atol=1e-7)
    assert np.abs(prob - logit).max() > 10 * np.abs(prob).max() * 1e-3


@pytest.mark.parametrize("head", ["softmax_layer", "nested_head", "activation_sigmoid"])
def test_class_objective_reads_the_logit(nets, head):
    x = _images()
    want = _logits(nets["linear"], x)
    for obj in (objectives.class_logit(None, 2), objectives.class_logit(features.SCORE, 2)):
        (layer,) = obj.layers
        fm = features.feature_model(nets[head], [layer])
        value = obj(lambda name, fm=fm: fm(x, training=False))
        np.testing.assert_allclose(float(value), want[:, 2].sum(), rtol=1e-5)
    prob = objectives.class_probability(None, 1)
    fm = features.feature_model(nets[head], [features.SCORE])
    e = np.exp(want - want.max(-1, keepdims=True))
    want_prob = (e / e.sum(-1, keepdims=True))[:, 1].sum()
    np.testing.assert_allclose(float(prob(lambda name: fm(x, training=False))), want_prob, rtol=1e-5)


@pytest.mark.parametrize("head", ["softmax_layer", "activation_softmax", "nested_head"])
def test_atlas_cell_attribution_reads_the_logits(nets, head):
    images = _images(6, seed=1)
    sample = sample_activations(nets[head], "mixed", (images, np.zeros(6, np.int64)), number_activations=12,
                                positions_per_image=2, batch_size=4, class_logit=2)
    ref = nets["linear"]
    split = keras.Model(ref.inputs[0], [ref.get_layer("mixed").output, ref.output])
    with tf.GradientTape() as tape:
        a, logits = split(images, training=False)
        total = tf.reduce_sum(logits[:, 2])
    g, a = np.asarray(tape.gradient(total, a)), np.asarray(a)
    at = (sample.image, sample.yx[:, 0], sample.yx[:, 1])
    want = (g[at] * a[at]).sum(-1)
    np.testing.assert_allclose(sample.attributions, want, rtol=1e-4, atol=1e-7)


def test_render_cli_draws_class_scores_behind_a_softmax_layer(nets, tmp_path):
    """`render --layer class_score --channels 0,2`: the record's float32 values are the linear head's logits
    of the saved PNGs (channel k = class k), and the optimisation raised them."""
    import json

    from lucidtl import imageio
    from lucidtl.models import save_model
    from lucidtl.render import main

    save_model(nets["softmax_layer"], str(tmp_path / "probs.keras"))
    out = tmp_path / "r"
    main(["--model", str(tmp_path / "probs.keras"), "--layer", features.SCORE, "--channels", "0,2", "--size", "16",
          "--steps", "8", "--thresholds", "0,8", "--out", str(out), "--noprogress"])
    record = json.loads((out / f"{features.SCORE}_render.json").read_text())
    logits = {}
    for t in (0, 8):
        images = np.stack([imageio.load_png(str(out / f"{features.SCORE}_{c:04d}_{t}.png")) for c in (0, 2)])
        z = _logits(nets["linear"], tf.image.resize(images, (SIZE, SIZE)))  # the model's fixed input size
        logits[t] = z[0, 0] + z[1, 2]  # image i draws channel (class) i of the batch
        assert record["objective_values_float32"][f"{t}:0-2"] == pytest.approx(float(logits[t]), rel=1e-4,
                                                                               abs=1e-5)
    assert logits[8] > logits[0]
