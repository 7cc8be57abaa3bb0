"""render_vis / Renderer semantics (spec: lucid.md, 'render_vis')."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import features, objectives, param
from lucidtl.optvis.render import Renderer, default_optimizer, evaluate, render_vis

from conftest import build_tiny_cnn


def test_default_optimizer_is_lucids_adam():
    opt = default_optimizer()
    assert isinstance(opt, keras.optimizers.Adam)
    assert float(opt.learning_rate) == pytest.approx(0.05)
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == (0.9, 0.999, 1e-8)


def test_threshold_t_means_t_plus_one_updates(tiny_cnn):
    """The image kept at threshold t has had t+1 updates; threshold 0 is valid."""
    kw = dict(param_f=lambda: param.image(16), transforms=[], seed=3, verbose=False)
    imgs = render_vis(tiny_cnn, "conv1_relu:1", thresholds=(0, 2), **kw)
    r = Renderer(tiny_cnn, "conv1_relu:1", param_f=lambda: param.image(16), transforms=[], seed=3)
    start = r.image()
    r.step()
    np.testing.assert_allclose(imgs[0], r.image(), atol=1e-6)
    assert not np.allclose(start, imgs[0])
    r.step()
    r.step()
    np.testing.assert_allclose(imgs[1], r.image(), atol=1e-6)
    assert r.steps_done == 3
    assert len(imgs) == 2 and imgs[0].dtype == np.float32 and imgs[0].shape == (1, 16, 16, 3)


def test_traced_once_with_changing_sizes(tiny_cnn):
    """One trace of the warm-up step (redirected ReLU, steps 0..16) and one of the plain step."""
    r = Renderer(tiny_cnn, "mixed:3", param_f=lambda: param.image(24, batch=2), seed=0)  # standard transforms
    r.run(thresholds=(20,), verbose=False)
    assert r.traces == 2
    plain = Renderer(tiny_cnn, "mixed:3", param_f=lambda: param.image(24, batch=2), seed=0,
                     relu_gradient_override=False)
    plain.run(thresholds=(20,), verbose=False)
    assert plain.traces == 1


def test_same_seed_same_picture_different_seed_different(tiny_cnn):
    kw = dict(param_f=lambda: param.image(20), thresholds=(5,), verbose=False)
    a = render_vis(tiny_cnn, "mixed:2", seed=7, **kw)[0]
    b = render_vis(tiny_cnn, "mixed:2", seed=7, **kw)[0]
    c = render_vis(tiny_cnn, "mixed:2", seed=8, **kw)[0]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_objective_increases(tiny_cnn):
    r = Renderer(tiny_cnn, objectives.channel("mixed", 4), param_f=lambda: param.image(24), transforms=[],
                 seed=0)
    before = r.objective_value()
    r.run(thresholds=(30,), verbose=False)
    assert r.objective_value() > before + 1e-3


def test_batch_of_channels_one_image_each(tiny_cnn):
    """sum_i channel(layer, c_i, batch=i): each image maximises its own channel."""
    chans = [0, 3, 5]
    obj = sum((objectives.channel("mixed", c, batch=i) for i, c in enumerate(chans)), 0)
    imgs = render_vis(tiny_cnn, obj, param_f=lambda: param.image(24, batch=3), transforms=[], seed=1,
                      thresholds=(60,), verbose=False)[0]
    acts = keras.Model(tiny_cnn.inputs[0], tiny_cnn.get_layer("mixed").output)(imgs).numpy().mean(axis=(1, 2))
    for i, c in enumerate(chans):  # image i excites channel c_i more than the other images do
        others = [acts[j, c] for j in range(3) if j != i]
        assert acts[i, c] > max(others)


def test_evaluate_matches_manual(tiny_cnn):
    img = tf.random.stateless_uniform([2, 10, 10, 3], seed=[5, 6])
    manual = keras.Model(tiny_cnn.inputs[0], tiny_cnn.get_layer("branch_b_relu").output)(img)[..., 1]
    assert evaluate(tiny_cnn, "branch_b_relu:1", img) == pytest.approx(float(tf.reduce_mean(manual)), rel=1e-5)


def test_input_range_maps_image(tiny_cnn):
    img = tf.random.stateless_uniform([1, 8, 8, 3], seed=[1, 1])
    a = evaluate(tiny_cnn, "conv1:0", img, input_range=(-1, 1))
    b = evaluate(tiny_cnn, "conv1:0", img * 2 - 1)
    assert a == pytest.approx(b, rel=1e-5)


def test_fixed_size_model_gets_resized_input():
    model = build_tiny_cnn(fixed_size=20)
    imgs = render_vis(model, "mixed:1", param_f=lambda: param.image(32), thresholds=(2,), seed=0,
                      verbose=False)
    assert imgs[0].shape == (1, 32, 32, 3)


def test_grayscale_and_multichannel_models():
    for channels in (1, 5):
        model = build_tiny_cnn(channels=channels)
        imgs = render_vis(model, "mixed:0", param_f=lambda c=channels: param.image(16, channels=c),
                          thresholds=(1,), seed=0, verbose=False)
        assert imgs[0].shape == (1, 16, 16, channels)


def test_channel_mismatch_is_a_clear_error():
    model = build_tiny_cnn(channels=1)
    with pytest.raises(InvalidArgumentError, match="channels=1"):
        Renderer(model, "mixed:0", param_f=lambda: param.image(16), seed=0)


def test_bad_thresholds(tiny_cnn):
    for bad in ((-1,), (2.5,), ("a",), ()):
        with pytest.raises(InvalidArgumentError):
            render_vis(tiny_cnn, "mixed:0", thresholds=bad, verbose=False)


def test_verbose_prints_threshold_and_value(tiny_cnn, capsys):
    render_vis(tiny_cnn, "mixed:0", param_f=lambda: param.image(16), thresholds=(0, 3), seed=0)
    lines = capsys.readouterr().out.split("\n")
    assert lines[0].split()[0] == "0" and lines[1].split()[0] == "3"
    float(lines[1].split()[1])


def test_mixed_precision(tiny_cnn):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_tiny_cnn()
        assert model.get_layer("conv1").compute_dtype == "float16"
        r = Renderer(model, "mixed:2", param_f=lambda: param.image(16), transforms=[], seed=0)
        before = r.objective_value()
        r.run(thresholds=(10,), verbose=False)
        assert r.image().dtype == np.float32 and r.objective_value() > before
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_custom_objectives_layers_found_by_dry_run(tiny_cnn):
    """Lucid-style custom objectives (wrap_objective, or a bare fn(T)) need not declare their layers."""
    @objectives.wrap_objective
    def centre_mean(layer, n):
        return lambda T: tf.reduce_mean(T(layer)[:, 1:-1, 1:-1, n]) + 0.0 * tf.reduce_sum(T("input"))

    o = centre_mean("mixed", 2)
    assert o.layers is None and (o + objectives.channel("conv1", 0)).layers is None
    img = tf.random.stateless_uniform([2, 12, 12, 3], seed=[9, 9])
    acts = keras.Model(tiny_cnn.inputs[0], tiny_cnn.get_layer("mixed").output)(img)[:, 1:-1, 1:-1, 2]
    assert evaluate(tiny_cnn, o, img) == pytest.approx(float(tf.reduce_mean(acts)), rel=1e-5)
    r = Renderer(tiny_cnn, lambda T: tf.reduce_mean(T("branch_a_relu")[..., 1]),
                 param_f=lambda: param.image(16), transforms=[], seed=0)
    assert r.layers == ["branch_a_relu"]
    before = r.objective_value()
    r.run(thresholds=(10,), verbose=False)
    assert r.objective_value() > before


def _plain_autodiff(obj):
    """The same objective without its one-pass gradient or its pruning hints (plain autodiff)."""
    return objectives.Objective(obj.fn, obj.name, layers=obj.layers)


def test_channel_means_gradient_equals_autodiff_bit_for_bit(tiny_cnn):
    """A sum of channel means gets its gradient in one pass (not N full-size tensors added up): the same
    numbers to the last bit, for batch-specific, all-image and negative channel indices."""
    obj = sum((objectives.channel("mixed", c, batch=i) for i, c in enumerate([0, 7, 9, -1])), 0)
    obj = obj + objectives.channel("mixed", 4)
    assert obj.picks is not None and obj.channels == {"mixed": frozenset({0, 7, 9, -1, 4})}
    feats = features.feature_model(tiny_cnn, ["mixed"])
    x = tf.random.stateless_uniform([4, 14, 14, 3], seed=[4, 2])

    @tf.function
    def value_and_grad(o, x):
        acts = feats(x)

        def T(name):
            return acts

        T.sole_reader = True
        v = o(T)
        return v, tf.gradients(-v, [x])[0], tf.gradients(-v, [acts])[0]

    plain = _plain_autodiff(obj)
    v1, gx1, ga1 = value_and_grad(obj, x)
    v2, gx2, ga2 = value_and_grad(plain, x)
    assert float(v1) == float(v2)
    np.testing.assert_array_equal(ga1, ga2)
    np.testing.assert_array_equal(gx1, gx2)
    assert np.count_nonzero(ga1) == 8 * 14 * 14  # 4 images x their channel, and channel 4 of all 4 images
    ops = lambda o: {op.type for op in value_and_grad.get_concrete_function(o, x).graph.get_operations()}  # noqa
    assert "StridedSliceGrad" in ops(plain) and "StridedSliceGrad" not in ops(obj)


def test_partial_feature_model_runs_only_the_branches_read(tiny_cnn):
    x = tf.random.stateless_uniform([2, 11, 11, 3], seed=[8, 1])
    full = features.feature_model(tiny_cnn, ["mixed"])(x).numpy()
    part = features.partial_feature_model(tiny_cnn, "mixed", {7})  # channel 7 is in branch_b (channels 6..9)
    got = part(x).numpy()
    np.testing.assert_array_equal(got[..., 6:], full[..., 6:])
    assert not got[..., :6].any() and full[..., :6].any()
    pre = features.partial_feature_model(tiny_cnn, "mixed_pre_relu", {0, 1})
    np.testing.assert_array_equal(pre(x)[..., :6], features.feature_model(tiny_cnn, ["branch_a"])(x))
    assert features.partial_feature_model(tiny_cnn, "mixed", {0, 9}) is None  # every branch needed
    assert features.partial_feature_model(tiny_cnn, "conv1_relu", {0}) is None  # not a concatenation


@pytest.mark.parametrize("negative", [False, True])
def test_pruned_render_equals_full_render(tiny_cnn, negative):
    """A render reading channel 7 of `mixed` skips branch_a; the picture is the same to the last bit (also for
    Lucid's negative visualisation, which autodiff differentiates)."""
    obj = objectives.channel("mixed", 7, batch=0) + objectives.channel("mixed", 8, batch=1)
    obj = -obj if negative else obj
    kw = dict(param_f=lambda: param.image(20, batch=2), seed=4)
    fast = Renderer(tiny_cnn, obj, **kw)
    slow = Renderer(tiny_cnn, _plain_autodiff(obj), **kw)
    assert not isinstance(fast._features, keras.Model) and isinstance(slow._features, keras.Model)
    for r in (fast, slow):
        r.run(thresholds=(20,), verbose=False)
    np.testing.assert_array_equal(fast.image(), slow.image())
