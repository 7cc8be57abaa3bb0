"""Attribution at a layer inside a nested keras.applications backbone (the fine-tuning tutorials' pattern:
Sequential([Input, base, pool, Dense]) or a functional wrapper calling base(x, training=False)): the model is
split in its flat graph, so the nested layer's tensor is on the path to the class score. Checked against an
independent split made here from the backbone's own graph (base input -> layer, layer -> base output) and the
head's weights written out by hand."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl import attribution

SIZE, CLASSES = 32, 3
LAYER = "expanded_conv_2_add"  # a residual block's output: the backbone above it reads nothing else


@pytest.fixture(scope="module")
def base():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3),
                                               alpha=0.75, minimalistic=True, include_preprocessing=False)


def _wrap(base, kind):
    if kind == "sequential":
        return keras.Sequential([keras.Input((SIZE, SIZE, 3)), base, keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(CLASSES, activation="softmax", name="head")], name="seq")
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inp)
    x = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    x = keras.layers.Dense(CLASSES, name="head")(x)
    return keras.Model(inp, keras.layers.Softmax()(x), name="fn")


@pytest.fixture(scope="module", params=["sequential", "functional"])
def wrapped(request, base):
    model = _wrap(base, request.param)
    rng = np.random.default_rng(1)
    model.get_layer("head").bias.assign(rng.normal(0, 0.5, CLASSES).astype(np.float32))
    return request.param, model


def _independent(base, model, kind, x, classes, steps=None):
    """activation x gradient (steps None) or integrated gradients along the activations from 0 (midpoint
    rule, `steps` points), of the head's logit, from a split of the backbone's own graph."""
    lower = keras.Model(base.inputs[0], base.get_layer(LAYER).output)
    upper = keras.Model(base.get_layer(LAYER).output, base.output)
    head = model.get_layer("head")
    a = lower(x * 2.0 - 1.0 if kind == "functional" else x, training=False)

    def grads(at):
        out = []
        for k in classes:
            with tf.GradientTape() as tape:
                tape.watch(at)
                pooled = tf.reduce_mean(upper(at, training=False), axis=(1, 2))
                logit = tf.reduce_sum((tf.matmul(pooled, head.kernel) + head.bias)[:, k])
            out.append(tape.gradient(logit, at))
        return tf.stack(out)

    if steps is None:
        return np.asarray(a), np.asarray(grads(a) * a[None])
    total = sum(grads(a * ((n + 0.5) / steps)) for n in range(steps))
    return np.asarray(a), np.asarray(total / steps * a[None])


@pytest.mark.parametrize("method", ["linear", "integrated"])
def test_nested_layer_attribution_is_activation_times_gradient(base, wrapped, method):
    kind, model = wrapped
    x = np.random.default_rng(2).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    steps = None if method == "linear" else 3
    a_want, attr_want = _independent(base, model, kind, x, [0, 2], steps)
    attributor = attribution.Attributor(model, f"{base.name}/{LAYER}")
    a, attr = attributor(x, [0, 2], method=method, steps=steps or 64)
    np.testing.assert_allclose(a, a_want, rtol=1e-4, atol=1e-5)
    scale = np.abs(attr_want).max()
    assert scale > 0
    np.testing.assert_allclose(attr, attr_want, rtol=1e-3, atol=1e-4 * scale)
    spatial = attribution.spatial_attribution(model, x, LAYER, 2, method=method, steps=steps or 64)  # bare name
    np.testing.assert_allclose(spatial, attr_want[1].sum(-1), rtol=1e-3, atol=1e-3 * scale)


def test_analyze_attribution_cli_on_a_nested_run(base, tmp_path, capsys):
    """The user's own model.fit with IterationCheckpoint, then `python -m lucidtl.analyze attribution` at a
    layer inside the nested backbone: each row is the mean over the images of activation x gradient."""
    from lucidtl import analyze
    from lucidtl.analysis import tables
    from lucidtl.train.callbacks import IterationCheckpoint
    from lucidtl.train.run import load_checkpoint

    model = _wrap(base, "sequential")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, SIZE, SIZE, 3)).astype("float32")
    model.compile(keras.optimizers.SGD(1e-3), "categorical_crossentropy", run_eagerly=True)
    run = str(tmp_path / "run")
    model.fit(x, keras.utils.to_categorical([0, 1, 2, 0], CLASSES), batch_size=2, epochs=1, verbose=0,
              callbacks=[IterationCheckpoint(run, save_at="2", save_format="keras")])
    images = (rng.uniform(size=(3, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    np.savez(tmp_path / "images.npz", images=images, labels=np.array([0, 1, 2]))
    path = f"{base.name}/{LAYER}"
    analyze.main(["attribution", "--run", run, "--layers", path, "--classes", "0,2", "--dataset",
                  str(tmp_path / "images.npz"), "--indices", "0", "--noprogress", "--out", str(tmp_path / "a")])
    rows = tables.read_csv(str(tmp_path / "a" / "attribution.csv"))
    saved = load_checkpoint(run, 2)
    inner = saved.get_layer(base.name)
    _, attr = _independent(inner, saved, "sequential", images.astype(np.float32) / 255, [0, 2])
    want = attr.sum((2, 3)).mean(1)  # [classes, channels]: summed over positions, mean over the images
    assert {r["layer"] for r in rows} == {path} and len(rows) == 2 * want.shape[-1]
    for r in rows:
        k = [0, 2].index(r["class"])
        assert r["attribution"] == pytest.approx(want[k, r["channel"]], rel=1e-3, abs=1e-4 * float(np.abs(want).max()))
