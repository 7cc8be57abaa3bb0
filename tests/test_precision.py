"""Render precision: the network computes in bfloat16 / float16 (a rebuilt copy, same weights), everything else
in float32; float32 is today's loop unchanged; one rule for hardware without a fast path (refused)."""
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl import imageio
from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import objectives, param, precision
from lucidtl.optvis.render import Renderer, evaluate, render_channels

from conftest import build_tiny_cnn, cli_exit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from bench_precision import with_bn_statistics  # noqa: E402


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "tiny.keras"
    build_tiny_cnn(seed=0).save(path)
    return str(path)


@pytest.fixture
def slow_ok(monkeypatch):
    monkeypatch.setenv(precision.ALLOW_SLOW, "1")


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_lowered_model_computes_low_with_the_same_weights(tiny_cnn, name):
    low = precision.lowered(tiny_cnn, name)
    assert low is not tiny_cnn and tiny_cnn.get_layer("conv1").compute_dtype == "float32"  # the user's untouched
    assert {layer.compute_dtype for layer in low.layers if layer.weights} == {name}
    assert all(w.dtype == "float32" for w in low.weights)  # variables stay float32 (Keras' mixed policy)
    for a, b in zip(low.weights, tiny_cnn.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = tf.random.stateless_uniform([2, 12, 12, 3], seed=[1, 2])
    got, want = low(x), tiny_cnn(x)
    assert got.dtype == name
    np.testing.assert_allclose(np.asarray(tf.cast(got, tf.float32)), want, rtol=0.05, atol=0.02)
    assert precision.lowered(tiny_cnn, "float32") is tiny_cnn


def test_lowered_model_follows_later_weight_changes(tiny_cnn):
    model = build_tiny_cnn(seed=3)
    low = precision.lowered(model, "bfloat16")
    kernel = model.get_layer("conv1").kernel
    kernel.assign(kernel * 2.0)  # e.g. a training step between two renders of a callback
    assert precision.lowered(model, "bfloat16") is low  # rebuilt once, weights copied again
    np.testing.assert_array_equal(low.get_layer("conv1").kernel.numpy(), kernel.numpy())


def test_bfloat16_render_keeps_image_gradient_and_adam_in_float32(tiny_cnn, slow_ok):
    r = Renderer(tiny_cnn, objectives.channel("mixed", 2, batch=0) + objectives.channel("fused", 1, batch=1),
                 param_f=lambda: param.image(16, batch=2), transforms=[], seed=0, precision="bfloat16")
    floats = [v for v in r.variables + list(r.optimizer.variables) if "int" not in str(v.dtype)]
    assert len(floats) > len(r.variables) and all(str(v.dtype) in ("float32", "<dtype: 'float32'>") for v in floats)
    before = r.evaluate()
    r.run(thresholds=(12,), verbose=False)
    assert r.image().dtype == np.float32 and r.evaluate() > before
    # evaluate() is float32 on the untransformed image: the same number as the float32 model gives
    assert r.evaluate() == pytest.approx(evaluate(tiny_cnn, r.objective, r.image()), rel=1e-6)


def test_bfloat16_picture_close_to_float32_picture(tiny_cnn, slow_ok):
    pairs = [("mixed", 2), ("mixed", 7), ("conv1_relu", 3)]
    f32 = render_channels(tiny_cnn, pairs, size=16, steps=30, seed=1, transforms="none")
    b16 = render_channels(tiny_cnn, pairs, size=16, steps=30, seed=1, transforms="none", precision="bfloat16")
    assert not np.array_equal(f32, b16)  # the network really computed in another type
    for i, (layer, c) in enumerate(pairs):
        score = lambda img: evaluate(tiny_cnn, objectives.channel(layer, c), img[i:i + 1])  # noqa: E731
        assert score(b16) == pytest.approx(score(f32), rel=0.1)


def test_float32_is_the_default_loop(tiny_cnn):
    kw = dict(param_f=lambda: param.image(16, batch=2), seed=5)
    obj = objectives.channel("mixed", 1, batch=0) + objectives.channel("mixed", 8, batch=1)
    a, b = Renderer(tiny_cnn, obj, **kw), Renderer(tiny_cnn, obj, precision="float32", **kw)
    assert b._features32 is b._features  # no second model: float32 values come from the render's own
    for r in (a, b):
        r.run(thresholds=(20,), verbose=False)
    np.testing.assert_array_equal(a.image(), b.image())


def test_no_fast_path_is_refused_in_one_line(tiny_cnn, monkeypatch):
    monkeypatch.delenv(precision.ALLOW_SLOW, raising=False)
    monkeypatch.setattr(precision, "fast_path", lambda p: (p == "float32", "no bfloat16 units here"))
    with pytest.raises(InvalidArgumentError, match="precision bfloat16 refused: no bfloat16 units here; use "
                                                   "precision float32 .*LUCIDTL_ALLOW_SLOW_PRECISION=1"):
        Renderer(tiny_cnn, "mixed:0", precision="bfloat16")
    with pytest.raises(InvalidArgumentError, match="unknown precision 'float64'; choose one of float32"):
        Renderer(tiny_cnn, "mixed:0", precision="float64")


def test_fast_path_rules(monkeypatch):
    precision.fast_path.cache_clear()
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    try:
        monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "amx_bf16"})
        assert precision.fast_path("bfloat16") == (True, "CPU (amx_bf16)")
        assert precision.fast_path("float16")[0] is False  # float16 on a CPU: never (oneDNN has no fast path)
        precision.fast_path.cache_clear()
        monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f"})
        ok, why = precision.fast_path("bfloat16")
        assert not ok and "AMX-BF16 or AVX512-BF16" in why
        assert precision.fast_path("float32") == (True, "float32")
    finally:
        precision.fast_path.cache_clear()


def test_models_it_cannot_take_are_refused(slow_ok):
    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(InvalidArgumentError, match="needs a functional or Sequential Keras model"):
        precision.lowered(Sub(), "bfloat16")

    class Graph:  # what a Lucid zoo graph offers (lucidtl.models.lucid_zoo)
        def named_endpoints(self, names):
            return []

    with pytest.raises(InvalidArgumentError, match="not available for Lucid zoo graphs"):
        precision.lowered(Graph(), "bfloat16")


def test_custom_layer_classes_are_rebuilt(slow_ok):
    class Doubler(keras.layers.Layer):  # not registered: found among the model's own layer classes
        def call(self, x):
            return 2.0 * x

    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    model = keras.Model(inp, keras.layers.ReLU(name="relu")(Doubler(name="double")(x)))
    low = precision.lowered(model, "bfloat16")
    assert low.get_layer("double").compute_dtype == "bfloat16" and isinstance(low.get_layer("double"), Doubler)


def _render_main(argv, capsys):
    from lucidtl.render import main

    return cli_exit(main, argv, capsys)


def test_render_records_precision_and_float32_values_of_the_pngs(tmp_path, tiny_file, slow_ok, capsys):
    """The record's float32 values are the objective of the PNGs as written, recomputed here from the files."""
    from lucidtl.render import render

    out = tmp_path / "r"
    res = render(model=tiny_file, layer="mixed", channels="1,8", size=16, steps=20, thresholds=[5], out=str(out),
                 progress=False, precision="bfloat16")
    rec = json.loads(open(res.record).read())
    assert rec["precision"] == "bfloat16" and set(rec["objective_values_float32"]) == {"5:1-8", "20:1-8"}
    model = build_tiny_cnn(seed=0)  # the file's model
    for t in (5, 20):
        imgs = np.stack([imageio.load_png(out / f"mixed_{c:04d}_{t}.png") for c in (1, 8)])
        obj = objectives.channel("mixed", 1, batch=0) + objectives.channel("mixed", 8, batch=1)
        assert rec["objective_values_float32"][f"{t}:1-8"] == pytest.approx(evaluate(model, obj, imgs), rel=1e-5)
    # a resumed render cannot switch precision
    code, cap = _render_main(["--model", tiny_file, "--layer", "mixed", "--channels", "1,8", "--size", "16",
                              "--steps", "20", "--thresholds", "5", "--out", str(out), "--progress", "false"], capsys)
    assert code == 2 and "other settings (precision)" in cap.err


def test_render_cli_bad_precision_one_line_nothing_written(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(precision.ALLOW_SLOW, raising=False)
    out = tmp_path / "never"
    code, cap = _render_main(["--precision", "float64", "--out", str(out)], capsys)
    assert code == 2 and "--precision" in cap.err and "float32" in cap.err and len(cap.err.strip().splitlines()) == 1
    if not precision.fast_path("float16")[0]:  # a CPU machine: float16 refused before anything is built
        code, cap = _render_main(["--precision", "float16", "--weights", "random", "--out", str(out)], capsys)
        assert code == 2 and "precision float16 refused" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not out.exists()


def test_plan_line_says_bfloat16_is_faster_where_measured(tmp_path, tiny_file, capsys, monkeypatch):
    from lucidtl.render import render

    monkeypatch.setattr(precision, "fast_path", lambda p: (True, "CPU (amx_bf16)"))
    assert precision.hint("float32") == (
        "note: this CPU (amx_bf16) computes bfloat16 fast: --precision bfloat16 rendered 1.4x faster than float32 "
        "on a Xeon with AMX-BF16 (InceptionV1 Mixed_4c, 128 px, batch 8); other machines, models and sizes differ "
        "(docs/guide/precision.md)")
    assert precision.hint("bfloat16") is None
    render(model=tiny_file, layer="mixed", channels="1", size=16, steps=1, out=str(tmp_path / "a"), progress=True)
    assert capsys.readouterr().out.count("--precision bfloat16 rendered 1.4x faster than float32 on a Xeon") == 1
    monkeypatch.setattr(precision, "fast_path", lambda p: (p == "float32", "none"))
    assert precision.hint("float32") is None


def test_atlas_cannot_mix_precisions(tmp_path, tiny_file, slow_ok):
    from lucidtl.atlas import job

    kw = dict(weights=tiny_file, model=tiny_file, layers="mixed", channels="0:2", size=16, steps=2,
              out=str(tmp_path / "atlas"), progress=False)
    job.render(precision="bfloat16", **kw)
    before = sorted(os.listdir(tmp_path / "atlas"))
    assert json.loads((tmp_path / "atlas" / "atlas.json").read_text())["precision"] == "bfloat16"
    records = job.read_manifest(tmp_path / "atlas")
    assert len(records) == 2 and all(isinstance(r["objective"], float) for r in records)
    with pytest.raises(InvalidArgumentError, match="other settings \\(precision: 'bfloat16', not 'float32'\\)"):
        job.render(precision="float32", **kw)
    assert sorted(os.listdir(tmp_path / "atlas")) == before  # nothing written


def _conv_bn_model(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="a_conv")(inp)
    a = keras.layers.BatchNormalization(scale=False, name="a_pre_relu")(a)
    a = keras.layers.ReLU(name="a")(a)
    b = keras.layers.Conv2D(5, 1, name="b_conv")(a)  # with a bias, and read twice: not folded
    c = keras.layers.BatchNormalization(name="c_bn")(b)
    model = keras.Model(inp, keras.layers.Concatenate(name="mixed")([keras.layers.ReLU(name="c")(c), b]))
    return with_bn_statistics(model, seed, mean_sd=0.3, variance=(0.3, 3.0))


def test_batch_norms_folded_into_their_convs_in_the_lowered_copy():
    """y = BN(conv(x)) = conv'(x) with kernel * s and bias beta - mean * s, s = gamma / sqrt(var + eps): the
    folded layer keeps its name (its _pre_relu endpoint), a conv read twice keeps its batch norm."""
    from lucidtl.optvis import features

    model = _conv_bn_model()
    low = precision.lowered(model, "bfloat16")
    assert isinstance(low.get_layer("a_pre_relu"), keras.layers.Identity)
    assert isinstance(low.get_layer("c_bn"), keras.layers.BatchNormalization)
    assert low.get_layer("a_conv").use_bias and not model.get_layer("a_conv").use_bias
    bn, conv = model.get_layer("a_pre_relu"), low.get_layer("a_conv")
    s = 1.0 / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    np.testing.assert_allclose(conv.kernel.numpy(), model.get_layer("a_conv").kernel.numpy() * s, rtol=1e-6)
    np.testing.assert_allclose(conv.bias.numpy(), bn.beta.numpy() - bn.moving_mean.numpy() * s, rtol=1e-5,
                               atol=1e-7)
    x = tf.random.stateless_uniform([2, 10, 10, 3], seed=[3, 4])
    for name in ("a_pre_relu", "a", "mixed"):
        want = features.feature_model(model, [name])(x)
        got = tf.cast(features.feature_model(low, [name])(x), tf.float32)
        np.testing.assert_allclose(got, want, rtol=0.03, atol=0.03)
    bn.moving_mean.assign(bn.moving_mean + 1.0)  # the statistics change (a training step): folded again
    low2 = precision.lowered(model, "bfloat16")
    assert low2 is low
    np.testing.assert_allclose(conv.bias.numpy(), bn.beta.numpy() - bn.moving_mean.numpy() * s, rtol=1e-5,
                               atol=1e-7)
