"""Colour: Lucid's decorrelated colour space and the squash into valid [0,1] values."""
import numpy as np
import tensorflow as tf

from lucidtl.optvis.param.base import Param

# Square root of ImageNet's colour correlation (from its SVD); columns are the decorrelated axes.
color_correlation_svd_sqrt = np.asarray([[0.26, 0.09, 0.02],
                                         [0.27, 0.00, -0.05],
                                         [0.27, -0.09, 0.03]], np.float32)
max_norm_svd_sqrt = np.max(np.linalg.norm(color_correlation_svd_sqrt, axis=0))  # largest column norm
color_mean = np.asarray([0.48, 0.46, 0.41], np.float32)


def _linear_decorrelate_color(t):
    """Map colours from the decorrelated space to RGB: reshape(t, [-1, 3]) @ (C / max_norm).T."""
    t = tf.convert_to_tensor(t, tf.float32)
    matrix = (color_correlation_svd_sqrt / max_norm_svd_sqrt).T
    flat = tf.matmul(tf.reshape(t, [-1, 3]), matrix)
    return tf.ensure_shape(tf.reshape(flat, tf.shape(t)), t.shape)


decorrelate = _linear_decorrelate_color


@tf.custom_gradient
def constrain_L_inf(x):
    """clip(x, -1, 1) whose gradient passes everywhere except, at or beyond the edge, the part whose
    descent step would push x further out (x * grad < 0; descent moves x by -grad).

    Lucid's version zeroes x * grad > 0 instead, which under minimisation blocks the step back inside;
    we follow the intent ("zero outward gradient at the edge")."""
    def grad(dy):
        outward = tf.logical_and(tf.abs(x) >= 1.0, x * dy < 0.0)
        return tf.where(outward, tf.zeros_like(dy), dy)

    return tf.clip_by_value(x, -1.0, 1.0), grad


def to_valid_rgb(t, decorrelate=False, sigmoid=True):
    """Colours of t's last axis made valid: optional decorrelated -> RGB, then squashed into [0,1].

    t: a tensor (returns a tensor) or a Param (returns the Param computing this on its output).
    decorrelate: read the colours as Lucid's decorrelated space. Only 3-channel tensors have one; for
      other channel counts (grayscale, multispectral) it is skipped.
    sigmoid: True -> sigmoid(t); False -> add color_mean (when decorrelated) and clip 2t-1 to [-1,1],
      /2 + 0.5, with the edge gradient of constrain_L_inf.
    """
    if isinstance(t, Param):
        return t.map(lambda x: to_valid_rgb(x, decorrelate, sigmoid), name="to_valid_rgb")
    t = tf.convert_to_tensor(t, tf.float32)
    rotate = bool(decorrelate) and t.shape[-1] == 3
    if rotate:
        t = _linear_decorrelate_color(t)
    if sigmoid:
        return tf.sigmoid(t)
    if rotate:
        t = t + color_mean
    return constrain_L_inf(2.0 * t - 1.0) / 2.0 + 0.5
