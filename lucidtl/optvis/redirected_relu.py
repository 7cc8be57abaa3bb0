"""Lucid's redirected ReLU gradient, for the first optimisation steps of a render.

A unit that starts dead gets no gradient from a plain ReLU, so early in a render Lucid lets part of the
gradient through: per batch element, if the ordinary ReLU gradient is all zero, the gradient where x < 0
passes when it would push x up (loss-gradient g < 0, since the loop minimises -objective). From step
`warmup` (17) on, the gradient is the ordinary one.

Works for any Keras model (functional, sequential, subclassed, custom layers): Keras' TF backend computes
ReLU and ReLU6 with the `Relu` / `Relu6` ops, whose gradient is overridden inside `redirect(step)` while the
graph is built. The gradient must then be taken with `tf.gradients` inside the same `tf.function`
(GradientTape ignores gradient_override_map).

As in Lucid, only the model's ops are built under the override (`model_only`): the parameterisation is
built before the model and the objective after it, so their ReLUs keep the plain gradient.
"""
import contextlib
import weakref

import tensorflow as tf

WARMUP_STEPS = 17
_steps = weakref.WeakKeyDictionary()  # graph -> step tensor of the redirect() context traced in it


def _select_per_example(relu_grad, redirected):
    """relu_grad where any of its entries in that batch element is non-zero, else redirected."""
    flat = tf.reshape(relu_grad, [tf.shape(relu_grad)[0], -1])
    alive = tf.reduce_any(tf.not_equal(flat, 0), axis=1)
    alive = tf.reshape(alive, tf.concat([[-1], tf.ones([tf.rank(relu_grad) - 1], tf.int32)], 0))
    return tf.where(alive, relu_grad, redirected)


def redirected_relu_grad(x, grad, upper=None):
    """The warm-up gradient of ReLU (upper=None) or ReLU6 (upper=6) at input x for incoming grad."""
    zero = tf.zeros_like(grad)
    dead = x < 0.0
    blocked = tf.logical_and(x < 0.0, grad > 0.0)  # would push a negative x further down
    if upper is not None:
        dead = tf.logical_or(dead, x > upper)
        blocked = tf.logical_or(blocked, tf.logical_and(x > upper, grad < 0.0))
    relu_grad = tf.where(dead, zero, grad)
    redirected = tf.where(blocked, zero, grad)
    if relu_grad.shape.rank == 0:
        return tf.where(tf.not_equal(relu_grad, 0), relu_grad, redirected)
    return _select_per_example(relu_grad, redirected)


def _switched(op, grad, upper, ordinary):
    x = op.inputs[0]
    step = _steps.get(op.graph)
    if step is None:  # no redirect() step in this graph: ordinary behaviour
        return ordinary(op, grad)
    return tf.cond(
        step < WARMUP_STEPS,
        lambda: redirected_relu_grad(x, grad, upper),
        lambda: ordinary(op, grad),
    )


def _relu_grad(op, grad):
    return tf.raw_ops.ReluGrad(gradients=grad, features=op.outputs[0])


def _relu6_grad(op, grad):
    return tf.raw_ops.Relu6Grad(gradients=grad, features=op.inputs[0])


@tf.RegisterGradient("LucidtlRedirectedRelu")
def _redirected_relu(op, grad):
    return _switched(op, grad, None, _relu_grad)


@tf.RegisterGradient("LucidtlRedirectedRelu6")
def _redirected_relu6(op, grad):
    return _switched(op, grad, 6.0, _relu6_grad)


@contextlib.contextmanager
def redirect(step):
    """Inside a tf.function: ReLU/ReLU6 ops built here get the redirected gradient while step < 17.

    `step` is the 0-based optimiser step (a tensor or variable), read where the context is entered.
    Take gradients with tf.gradients in the same graph (inside or after the context); ReLUs built
    outside the context get the ordinary gradient."""
    graph = tf.compat.v1.get_default_graph()
    if tf.executing_eagerly():
        raise RuntimeError("redirect() must be used while tracing a tf.function")
    _steps[graph] = tf.convert_to_tensor(step)
    with graph.gradient_override_map({"Relu": "LucidtlRedirectedRelu", "Relu6": "LucidtlRedirectedRelu6"}):
        yield


def model_only(model, step):
    """`model` (a callable, e.g. the feature model) whose ops are built under redirect(step) when traced;
    called eagerly, it is the plain model. Lucid's scope: the override covers the model import only."""
    def call(*args, **kwargs):
        if tf.executing_eagerly():
            return model(*args, **kwargs)
        with redirect(step):
            return model(*args, **kwargs)
    return call
