"""Compositional Pattern Producing Network (CPPN) parameterisation (Differentiable Image
Parameterizations, Mordvintsev et al. 2018): a stack of 1x1 convolutions on pixel coordinates."""
import numpy as np
import tensorflow as tf

from lucidtl.optvis.param.base import Param

_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated at +-2


def composite_activation(x, biased=True):
    """concat[atan(x) / 0.67, atan(x)^2 / 0.6]: both halves have RMS ~1 for x ~ N(0, 1).
    biased=False centres the square: (atan(x)^2 - 0.45) / 0.396."""
    x = tf.atan(x)
    if biased:
        return tf.concat([x / 0.67, x * x / 0.6], -1)
    return tf.concat([x / 0.67, (x * x - 0.45) / 0.396], -1)


def relu_normalized_activation(x):
    """(relu(x) - 0.40) / 0.58: zero mean, unit std for x ~ N(0, 1)."""
    return (tf.nn.relu(x) - 0.40) / 0.58


def _dense(n_in, n_out, name, zero_kernel=False):
    """A 1x1 conv as (kernel, bias): kernel variance-scaling fan-in truncated normal (std sqrt(1/n_in)),
    bias N(0, 0.1), as Lucid's slim layers; the output layer's kernel starts at zero."""
    if zero_kernel:
        kernel = tf.zeros([n_in, n_out])
    else:
        kernel = tf.random.truncated_normal([n_in, n_out], stddev=np.sqrt(1.0 / n_in) / _TRUNCATED_NORMAL_STD)
    bias = tf.random.normal([n_out], stddev=0.1)
    return tf.Variable(kernel, name=f"{name}_kernel"), tf.Variable(bias, name=f"{name}_bias")


def cppn(width, batch=1, num_output_channels=3, num_hidden_channels=24, num_layers=8,
         activation_func=composite_activation, normalize=False):
    """A Param making [batch, width, width, num_output_channels] images in (0, 1).

    The input is the (x, y) grid over linspace(-sqrt(3), sqrt(3), width) (unit std per coordinate);
    num_layers hidden 1x1 layers of num_hidden_channels, each followed by (instance norm if normalize, then)
    activation_func; a sigmoid output layer with zero-initialised weights (so it starts near grey).
    All batch elements share the weights and inputs, so they are identical (as in Lucid)."""
    width, batch = int(width), int(batch)
    r = np.sqrt(3.0)
    coords = np.linspace(-r, r, width, dtype=np.float32)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    grid = tf.constant(np.stack([x, y], -1).reshape(-1, 2))  # [H*W, 2], x along columns
    act_channels = int(activation_func(tf.zeros([1, num_hidden_channels])).shape[-1])

    layers, offsets, n_in = [], [], 2
    for i in range(num_layers):
        layers.append(_dense(n_in, num_hidden_channels, f"conv{i}"))
        if normalize:  # slim.instance_norm defaults: learnt offset, no scale, epsilon 1e-6
            offsets.append(tf.Variable(tf.zeros([num_hidden_channels]), name=f"norm{i}_beta"))
        n_in = act_channels
    out_layer = _dense(n_in, num_output_channels, "output", zero_kernel=True)

    def make():
        net = grid
        for i, (kernel, bias) in enumerate(layers):
            net = tf.matmul(net, kernel) + bias
            if normalize:  # one image per batch element, all identical: normalise over pixels
                mean, var = tf.nn.moments(net, axes=[0])
                net = (net - mean) * tf.math.rsqrt(var + 1e-6) + offsets[i]
            net = activation_func(net)
        kernel, bias = out_layer
        rgb = tf.sigmoid(tf.matmul(net, kernel) + bias)
        rgb = tf.reshape(rgb, [1, width, width, num_output_channels])
        return tf.tile(rgb, [batch, 1, 1, 1])

    variables = [v for layer in layers for v in layer] + offsets + list(out_layer)
    return Param(make, variables, name="cppn")
