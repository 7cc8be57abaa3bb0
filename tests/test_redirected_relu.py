"""Lucid's redirected-ReLU gradient cases (spec: lucid.md, 'Lucid's own tests')."""
import numpy as np
import pytest
import tensorflow as tf

from lucidtl.optvis import redirected_relu

# (incoming loss-gradient, x, expected gradient during the warm-up)
RELU_CASES = [(1.0, -1.0, 0.0), (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (-1.0, 1.0, -1.0)]
RELU6_CASES = RELU_CASES + [(1.0, 7.0, 1.0), (-1.0, 7.0, 0.0)]


def _grad(op, x, g, step):
    x = tf.constant(x, tf.float32)
    g = tf.constant(g, tf.float32)

    @tf.function
    def f():
        with redirected_relu.redirect(tf.constant(step)):
            y = op(x)
            return tf.gradients(tf.reduce_sum(y * g), [x])[0]

    return f().numpy()


@pytest.mark.parametrize("g,x,expected", RELU_CASES)
def test_relu_warmup_cases(g, x, expected):
    assert _grad(tf.nn.relu, [x], [g], step=0)[0] == expected


@pytest.mark.parametrize("g,x,expected", RELU6_CASES)
def test_relu6_warmup_cases(g, x, expected):
    assert _grad(tf.nn.relu6, [x], [g], step=16)[0] == expected


@pytest.mark.parametrize("op", [tf.nn.relu, tf.nn.relu6])
def test_step_17_is_ordinary(op):
    x = np.array([[-1.0, 1.0, 7.0, 3.0], [-2.0, -1.0, -3.0, -8.0]], np.float32)
    g = np.array([[-1.0, 1.0, -1.0, 2.0], [-1.0, -1.0, 1.0, -1.0]], np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = op(xt)
    ordinary = tape.gradient(y, xt, output_gradients=tf.constant(g)).numpy()
    np.testing.assert_array_equal(_grad(op, x, g, step=17), ordinary)
    # and at step 16 (warm-up) it differs: the second row is all dead for ReLU
    if op is tf.nn.relu:
        np.testing.assert_array_equal(_grad(op, x, g, step=16)[1], [-1.0, -1.0, 0.0, -1.0])


def test_per_example_choice():
    # row 0 has a live unit, so it keeps the ordinary gradient; row 1 is dead, so it is redirected
    x = np.array([[1.0, -1.0], [-1.0, -2.0]], np.float32)
    g = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    np.testing.assert_array_equal(_grad(tf.nn.relu, x, g, step=0), [[1.0, 0.0], [-1.0, 0.0]])


@pytest.mark.parametrize("fused", [False, True])
def test_keras_relu_layers_are_redirected(fused):
    """Any Keras model: ReLU layers and fused activation='relu' both use the Relu op."""
    import keras

    inp = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu" if fused else None, bias_initializer="ones",
                               kernel_initializer="ones")
    y = conv(inp) if fused else keras.layers.ReLU()(conv(inp))
    model = keras.Model(inp, y)
    x = tf.constant(-np.ones([1, 4, 4, 3], np.float32))  # every unit dead: 3 * -1 + 1 < 0

    @tf.function
    def grads(step):
        with redirected_relu.redirect(step):
            return tf.gradients(-tf.reduce_sum(model(x)), [x])[0]

    assert np.all(grads(tf.constant(17)).numpy() == 0)  # ordinary: nothing gets through
    assert np.all(grads(tf.constant(0)).numpy() < 0)  # warm-up: pushes the dead units up


def test_redirect_outside_tf_function_raises():
    with pytest.raises(RuntimeError):
        with redirected_relu.redirect(0):
            pass


# ---- scope: as in Lucid, only the model's ReLUs are redirected (param built before, objective after) ----

def _lin_model(bias):
    """1x1 conv (kernel ones, given bias) then a ReLU layer: with image 0.5 the conv gives 1.5 + bias."""
    import keras

    inp = keras.Input((None, None, 3))
    lin = keras.layers.Conv2D(2, 1, kernel_initializer="ones", bias_initializer=keras.initializers.Constant(bias),
                              name="lin")(inp)
    return keras.Model(inp, keras.layers.ReLU(name="lin_relu")(lin))


class _ReluParam(tf.Module):
    """image = 0.5 + relu(v), v = -1: every unit of the parameterisation's ReLU starts dead."""

    def __init__(self):
        super().__init__()
        self.v = tf.Variable(-np.ones([1, 4, 4, 3], np.float32))

    def __call__(self):
        return 0.5 + tf.nn.relu(self.v)


def _one_update(model, objective, param_f, step=0):
    from lucidtl.optvis.render import Renderer

    r = Renderer(model, objective, param_f=param_f, transforms=[], seed=0)
    r._step.assign(step)
    before = r.variables[0].numpy()
    r.step()
    return r.variables[0].numpy() - before


def test_param_relu_keeps_plain_gradient_during_warmup():
    # Lucid: d/dv relu(v) = 0 for v < 0 (plain gradient), so Adam's first update leaves v at -1
    delta = _one_update(_lin_model(0.0), "lin_relu:0", _ReluParam, step=0)
    np.testing.assert_array_equal(delta, 0.0)


def test_objective_relu_keeps_plain_gradient_during_warmup():
    from lucidtl.optvis import objectives, param

    # relu(lin - 100) is dead everywhere: its plain gradient is 0, so nothing moves
    dead = objectives.Objective(lambda T: tf.reduce_sum(tf.nn.relu(T("lin")[..., 0] - 100.0)), "dead", layers=["lin"])
    delta = _one_update(_lin_model(0.0), dead, lambda: param.image(4, fft=False, decorrelate=False), step=0)
    np.testing.assert_array_equal(delta, 0.0)


@pytest.mark.parametrize("step,expected", [(0, 0.05), (16, 0.05), (17, 0.0)])
def test_model_relu_is_redirected_in_warmup(step, expected):
    from lucidtl.optvis import param

    # conv output 1.5 - 10 < 0 everywhere: plain gradient 0; the warm-up lets the upward gradient through,
    # d(-objective)/dx < 0 for every pixel (kernel ones), and Adam's first update is lr * sign = +0.05
    delta = _one_update(_lin_model(-10.0), "lin_relu:0", lambda: param.image(4, fft=False, decorrelate=False),
                        step=step)
    np.testing.assert_allclose(delta, expected, atol=1e-4)
